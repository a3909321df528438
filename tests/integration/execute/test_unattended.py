"""aegis unattended run: a security fix applied with no human, everything else waits.

Real apt repositories (the distribution's stand-in and a "security" one signed by its
own key), a throwaway root, a real aegisd, the automation key in the key directory, and
the CLI as the timer runs it.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from aegis.devtools import testrepo
from aegis.devtools.testrepo_packages import PackageSpec
from aegis.sign import keys

from .chain_helpers import AEGIS, Chain, Keys, make_chain, policy_text, run_cli
from .conftest import Daemon

pytestmark = pytest.mark.root


def _policy(chain: Chain, sec: testrepo.Repo) -> str:
    return policy_text(chain.repo) + (
        f'\n[[sources]]\nname = "security"\nuri = "{sec.uri}"\nsuite = "{sec.suite}"\n'
        f'component = "main"\nsigner_fingerprint = "{sec.fingerprint}"\n'
        'packages = ["aegis-*"]\n'
        "\n[automation]\nenabled = true\nmax_delta = 10\n"
        f'[[automation.sources]]\nuri = "{sec.uri}"\nsuite = "{sec.suite}"\n'
        f'signer_fingerprint = "{sec.fingerprint}"\n'
    )


@pytest.fixture
def setup(tmp_path: Path, key_set: Keys, sock_dir: Path):  # type: ignore[no-untyped-def]
    repo = testrepo.build_repo(tmp_path / "repo")
    sec = testrepo.build_repo(
        tmp_path / "security",
        suite="aegis-security",
        key_name="security",
        packages=[PackageSpec("aegis-base", "1.3", description="security fix")],
    )
    chain = make_chain(tmp_path, key_set, repo)
    root = testrepo.make_root(tmp_path / "root2", [repo, sec])
    testrepo.apt_update(root)
    testrepo.run_apt(root, "install", "-y", "aegis-base=1.2")
    chain = replace(chain, root=root)
    chain.env.update(
        AEGIS_APT_CONFIG=str(root.apt_config),
        AEGIS_DPKG_ROOT=str(root.root),
        AEGIS_REVIEW="false",  # no model here: a review skipped by configuration
        AEGIS_RUN_DIR=str(sock_dir),
    )
    chain.cfg.policy_path.write_text(_policy(chain, sec))
    tracker = tmp_path / "tracker.json"
    tracker.write_text(json.dumps({"zlib": {}}))
    run_cli([*AEGIS, "vulndb", "import", str(tracker)], chain.env)
    keys.write_keypair(chain.cfg.keys_dir / "automation", "signer", name="automation")
    d = Daemon(
        chain.home,
        sock_dir / "aegisd.sock",
        dict(chain.env),
        ["--public-key-hex", key_set.signer_pub, "--approval-public-key-hex", key_set.approver_pub],
        tmp_path / "aegisd.log",
    ).start()
    yield chain, d
    d.stop()


def _run(chain: Chain) -> tuple[int, dict[str, Any]]:
    proc = run_cli([*AEGIS, "unattended", "run", "--json"], chain.env, ok=False)
    return proc.returncode, json.loads(proc.stdout)


def test_security_fix_is_applied_with_no_human(setup) -> None:  # type: ignore[no-untyped-def]
    chain, d = setup
    code, report = _run(chain)
    assert (code, report["status"]) == (0, "applied"), report
    assert report["packages"] == ["aegis-base 1.2 -> 1.3"]
    assert chain.installed()["aegis-base"] == "1.3"
    finished = [e for e in d.audit_events() if e["kind"] == "apply-finished"][-1]
    assert finished["actor"]["signer"] == "automation"
    assert finished["exit_status"] == 0
    shown = json.loads(run_cli([*AEGIS, "show", report["request_id"], "--json"], chain.env).stdout)
    triggers = [h["trigger"] for h in shown["history"]]
    assert "sign_automation" in triggers
    assert shown["request"]["state"] in ("applied", "audited")
    # Nothing left: the next pass does nothing, and the apply is not an out-of-band change.
    code, again = _run(chain)
    assert (code, again["status"]) == (0, "nothing-to-do")
    assert not [e for e in d.audit_events() if e["kind"] == "out-of-band-change"]


def test_a_non_security_upgrade_waits_for_a_human(setup) -> None:  # type: ignore[no-untyped-def]
    chain, _ = setup
    testrepo.run_apt(chain.root, "install", "-y", "aegis-benign=1.0")
    code, report = _run(chain)
    assert (code, report["status"]) == (8, "waiting"), report
    assert any("aegis-benign" in r and "not an automation source" in r for r in report["reasons"])
    assert chain.installed()["aegis-base"] == "1.2"
    # Nobody asked for it, so nobody waits on it: it is stuck at once, made by automation.
    first = report["request_id"]
    stuck = _stuck(chain)
    assert [r["id"] for r in stuck] == [first]
    assert stuck[0]["actor"] == "automation"
    assert stuck[0]["state"] == "policy"
    why = stuck[0]["waiting_for_human"]
    assert "outside the automation scope" in why
    assert "aegis-benign" in why
    assert stuck[0]["stuck_reason"].startswith("waiting for a human: ")
    table = run_cli([*AEGIS, "requests", "--stuck"], chain.env).stdout
    assert f"{first} (automation) waits for a human: outside the automation scope" in table
    # The next pass finds the same delta: its request replaces the first, never beside it.
    code, again = _run(chain)
    assert (code, again["status"]) == (8, "waiting"), again
    assert again["superseded"] == [first]
    assert [r["id"] for r in _stuck(chain)] == [again["request_id"]]
    old = json.loads(run_cli([*AEGIS, "show", first, "--json"], chain.env).stdout)
    assert old["request"]["state"] == "cancelled"
    assert old["history"][-1]["actor"] == "automation"
    assert again["request_id"] in old["history"][-1]["facts"]["reason"]
    # A human's cancel ends it: nothing is left waiting.
    run_cli([*AEGIS, "cancel", again["request_id"], "--reason", "seen"], chain.env)
    assert _stuck(chain) == []


def _stuck(chain: Chain) -> list[dict[str, Any]]:
    out = run_cli([*AEGIS, "requests", "--stuck", "--json"], chain.env).stdout
    return list(json.loads(out)["requests"])


def test_an_upgrade_needing_a_new_dependency_waits(setup) -> None:  # type: ignore[no-untyped-def]
    chain, _ = setup
    testrepo.run_apt(chain.root, "install", "-y", "aegis-held=1.0")
    code, report = _run(chain)
    assert (code, report["status"]) == (8, "waiting"), report
    assert any("aegis-held" in r and "held-back" in r for r in report["reasons"])


def test_a_hand_signed_plan_outside_the_scope_is_refused(setup) -> None:  # type: ignore[no-untyped-def]
    chain, d = setup
    auto = chain.cfg.keys_dir / "automation" / "automation.key"
    pub = keys.public_hex(keys.load_signing_key(auto))
    forged = replace(chain, keys=replace(chain.keys, signer_path=auto, signer_pub=pub))
    answer = d.submit(forged.sign(forged.plan("aegis-benign=1.0")))
    assert answer.refusal == "refused:automation-scope", answer
    assert "not an upgrade" in answer.message
    assert "aegis-benign" not in chain.installed()
    refused = d.audit_events()[-1]
    assert refused["decision"]["rule_ids"] == ["refused:automation-scope"]
    # The same key is no signer key: the ordinary signer path does not take it either.
    assert pub not in {p.read_text().strip() for p in chain.cfg.keys_dir.glob("signers/*.pub")}


def test_disabled_automation_does_nothing(setup) -> None:  # type: ignore[no-untyped-def]
    chain, _ = setup
    text = chain.cfg.policy_path.read_text().replace("enabled = true", "enabled = false")
    chain.cfg.policy_path.write_text(text)
    code, report = _run(chain)
    assert (code, report["status"]) == (0, "disabled")
    assert chain.installed()["aegis-base"] == "1.2"
