"""Real applies through aegisd into throwaway roots: success, replay, moved state, races."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from aegis.devtools import testrepo
from aegis.execute.ledger import Ledger

from .chain_helpers import make_chain

pytestmark = pytest.mark.root


@pytest.fixture
def chain(tmp_path: Path, key_set):  # type: ignore[no-untyped-def]
    return make_chain(tmp_path, key_set)


def _daemon(make_daemon, chain, **env):  # type: ignore[no-untyped-def]
    extra = {k: v for k, v in chain.env.items() if k in ("AEGIS_APT_CONFIG", "AEGIS_DPKG_ROOT")}
    extra.update(env)
    return make_daemon(env_extra=extra, home=chain.home)


def test_apply_installs_is_audited_and_never_replays(make_daemon, chain) -> None:  # type: ignore[no-untyped-def]
    d = _daemon(make_daemon, chain)
    data = chain.sign(chain.plan("aegis-tool"))
    answer = d.submit(data)
    assert answer.ok, answer
    assert answer.exit_status == 0
    assert chain.installed() == {"aegis-base": "1.2", "aegis-tool": "2.0"}
    started, finished = [e for e in d.audit_events() if e["kind"].startswith("apply-")][-2:]
    assert started["kind"] == "apply-started"
    assert finished["kind"] == "apply-finished"
    assert finished["actor"]["uid"] == 0
    assert finished["actor"]["signer"] == "alice"
    assert finished["actor"]["approvers"] == ["bob"]
    argv = finished["argv"]
    assert argv[0] == "/usr/bin/apt-get"
    assert argv[argv.index("install") + 1] == "--trivial-only"
    # Both packages by the verified files aegisd fetched (docs/apt-trust.md), then removed.
    assert finished["details"]["fetched"]["files"] == 2
    assert all(a.startswith(str(d.cfg.deb_dir) + "/") for a in argv[argv.index("--") + 1 :])
    assert not list(d.cfg.deb_dir.iterdir())
    assert finished["exit_status"] == 0
    assert len(finished["output_hashes"]["stdout_sha256"]) == 64
    assert finished["details"]["drift"] == []
    assert finished["decision"]["rule_ids"]
    assert d.audit_events()[-1]["kind"] == "checkpoint"
    again = d.submit(data)
    assert again.refusal == "refused:replayed"
    d.stop()
    d.start()
    assert d.submit(data).refusal == "refused:replayed"
    [row] = Ledger(d.cfg.ledger_path).entries()
    assert (row.state, row.exit_status, row.outcome) == ("finished", 0, "succeeded")


def test_a_version_1_apt_plan_signed_before_the_upgrade_still_applies(make_daemon, chain) -> None:  # type: ignore[no-untyped-def]
    """Schema 1 (no integrity on changes and targets) stays accepted for apt until it expires."""
    from dataclasses import replace

    from aegis.sign.execution_plan import (
        EXECUTION_PLAN_SCHEMA_V1,
        execution_plan_body,
        execution_plan_bytes,
        parse_execution_plan,
    )
    from aegis.sign.keys import sign_canonical

    plan = chain.plan("aegis-tool")
    assert all(c.integrity.startswith("sha256:") for c in plan.changes)
    # What the analyzer wrote before changes carried integrity, signed as version 1.
    old = replace(plan, changes=tuple(replace(c, integrity="") for c in plan.changes))
    ep = replace(parse_execution_plan(chain.sign(old)), schema_version=EXECUTION_PLAN_SCHEMA_V1)
    ep = replace(ep, signature_hex=sign_canonical(execution_plan_body(ep), chain.keys.signer))
    data = execution_plan_bytes(ep)
    assert b'"integrity"' not in data
    answer = _daemon(make_daemon, chain).submit(data)
    assert answer.ok, answer
    assert chain.installed() == {"aegis-base": "1.2", "aegis-tool": "2.0"}


def test_package_state_moved_after_signing_refused(make_daemon, chain) -> None:  # type: ignore[no-untyped-def]
    d = _daemon(make_daemon, chain)
    data = chain.sign(chain.plan("aegis-tool"))
    testrepo.run_apt(chain.root, "install", "-y", "aegis-benign")
    answer = d.submit(data)
    assert answer.refusal == "refused:rederivation"
    assert "package state moved" in answer.message
    assert "installed packages outside the delta changed" in answer.message
    assert "aegis-tool" not in chain.installed()
    assert Ledger(d.cfg.ledger_path).entries() == []


def test_refused_rederivation_leaves_no_snapshot_files(make_daemon, chain) -> None:  # type: ignore[no-untyped-def]
    """The snapshot's files, read beside the re-derivation, go when the plan is refused."""
    testrepo.run_apt(chain.root, "install", "-y", "--allow-downgrades", "aegis-base=1.0")
    d = _daemon(make_daemon, chain)
    plan = chain.plan("aegis-base=1.2")  # replaces 1.0: aegisd keeps it for a rollback
    data = chain.sign(plan)
    testrepo.run_apt(chain.root, "install", "-y", "aegis-benign")
    answer = d.submit(data)
    assert answer.refusal == "refused:rederivation", answer
    kept = d.cfg.rollback_cache_dir
    assert not kept.exists() or not list(kept.iterdir())
    assert chain.installed()["aegis-base"] == "1.0"


def test_dpkg_audit_dirty_refused_pointing_to_recover(make_daemon, chain) -> None:  # type: ignore[no-untyped-def]
    d = _daemon(make_daemon, chain)
    data = chain.sign(chain.plan("aegis-tool"))
    status = chain.root.status
    status.write_text(
        "Package: aegis-half\nStatus: install ok half-configured\nPriority: optional\n"
        "Section: misc\nMaintainer: t <t@example.invalid>\nArchitecture: all\nVersion: 1.0\n"
        "Description: half\n\n"
    )
    # A dirty dpkg also moves the package state: the half-configured entry differs, so
    # this plan is refused at re-derivation or at dpkg --audit, never run.
    answer = d.submit(data)
    assert answer.ok is False
    assert answer.refusal in ("refused:dpkg-audit", "refused:rederivation")
    data2 = chain.sign(chain.plan("aegis-benign"))
    answer2 = d.submit(data2)
    assert answer2.refusal == "refused:dpkg-audit", answer2
    assert "aegisctl recover --plan" in answer2.message
    last = d.audit_events()[-1]
    assert (last["kind"], last["decision"]["rule_ids"]) == ("apply-refused", ["refused:dpkg-audit"])
    assert Ledger(d.cfg.ledger_path).entries() == []
    assert "aegis-benign" not in chain.installed()


def _arm(hook_dir: Path, point: str) -> None:
    (hook_dir / f"{point}.wait").touch()


def _wait(hook_dir: Path, point: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not (hook_dir / f"{point}.reached").exists():
        assert time.monotonic() < deadline, f"{point} never reached"
        time.sleep(0.02)


def test_sigkill_after_started_is_never_rerun(make_daemon, chain, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    hooks = tmp_path / "hooks"
    hooks.mkdir()
    d = _daemon(make_daemon, chain, AEGIS_TEST_HOOKS="1", AEGIS_TEST_HOOK_DIR=str(hooks))
    data = chain.sign(chain.plan("aegis-tool"))
    _arm(hooks, "after-started")
    errors: list[BaseException] = []

    def submit() -> None:
        try:
            d.submit(data)
        except BaseException as e:
            errors.append(e)

    t = threading.Thread(target=submit)
    t.start()
    _wait(hooks, "after-started")
    d.kill()
    t.join(30)
    assert errors, "the client must see aegisd vanish"
    [row] = Ledger(d.cfg.ledger_path).entries()
    assert row.state == "started"
    (hooks / "after-started.wait").unlink()
    d.start()
    again = d.submit(data)
    assert again.refusal == "refused:replayed"
    assert "aegis-tool" not in chain.installed()


def test_sigkill_before_started_resubmission_works(make_daemon, chain, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    hooks = tmp_path / "hooks"
    hooks.mkdir()
    d = _daemon(make_daemon, chain, AEGIS_TEST_HOOKS="1", AEGIS_TEST_HOOK_DIR=str(hooks))
    data = chain.sign(chain.plan("aegis-tool"))
    _arm(hooks, "before-started")
    errors: list[BaseException] = []

    def submit() -> None:
        try:
            d.submit(data)
        except BaseException as e:
            errors.append(e)

    t = threading.Thread(target=submit)
    t.start()
    _wait(hooks, "before-started")
    d.kill()
    t.join(30)
    assert errors
    assert Ledger(d.cfg.ledger_path).entries() == []
    (hooks / "before-started.wait").unlink()
    d.start()
    answer = d.submit(data)
    assert answer.ok, answer
    assert chain.installed()["aegis-tool"] == "2.0"


def test_a_build_published_between_rederivation_and_run_is_not_installed(  # type: ignore[no-untyped-def]
    make_daemon, tmp_path: Path, key_set
) -> None:
    """The archive republishes aegis-late 1.0 with a new dependency after aegisd verified it.

    aegisd already holds the planned build (by its SHA-256) and apt sees no source: the
    inspected, signed build is installed, never the new one, and nothing it would pull in.
    """
    specs = (testrepo.PackageSpec("aegis-late", "1.0"), testrepo.PackageSpec("aegis-newdep", "1.0"))
    repo = testrepo.build_repo(tmp_path / "repo", packages=specs)
    chain = make_chain(tmp_path, key_set, repo)
    hooks = tmp_path / "hooks"
    hooks.mkdir()
    d = _daemon(make_daemon, chain, AEGIS_TEST_HOOKS="1", AEGIS_TEST_HOOK_DIR=str(hooks))
    data = chain.sign(chain.plan("aegis-late"))
    _arm(hooks, "before-run")
    answers: list[object] = []
    t = threading.Thread(target=lambda: answers.append(d.submit(data)))
    t.start()
    _wait(hooks, "before-run")
    # The archive now says aegis-late 1.0 depends on a package the plan never listed.
    late = (testrepo.PackageSpec("aegis-late", "1.0", depends="aegis-newdep"), specs[1])
    testrepo.build_repo(tmp_path / "repo", packages=late)
    testrepo.apt_update(chain.root)
    (hooks / "before-run.go").touch()
    t.join(60)
    [answer] = answers
    assert answer.ok, answer  # type: ignore[attr-defined]
    finished = [e for e in d.audit_events() if e["kind"] == "apply-finished"][-1]
    assert finished["details"]["outcome"] == "succeeded"
    assert finished["details"]["drift"] == []
    assert chain.installed() == {"aegis-late": "1.0"}
    status = chain.root.status.read_text()
    late = status[status.index("Package: aegis-late") :].split("\n\n", 1)[0]
    assert "Depends" not in late  # the planned build, not the republished one


@pytest.mark.parametrize(
    ("how", "code"),
    [
        ("argv", "refused:argv"),
        ("relabel", "refused:policy"),
    ],
    ids=["argv-not-derived", "decision-relabelled-by-trusted-signer"],
)
def test_validly_signed_but_wrong_is_refused(make_daemon, chain, how: str, code: str) -> None:  # type: ignore[no-untyped-def]
    d = _daemon(make_daemon, chain)
    plan = chain.plan("aegis-tool")
    if how == "argv":
        data = chain.sign(plan, argv=("/usr/bin/apt-get", "-y", "install", "--", "aegis-tool"))
    else:
        data = chain.sign(plan, relabel="allow")
    answer = d.submit(data)
    assert answer.refusal == code, answer
    assert d.audit_events()[-1]["decision"]["rule_ids"] == [code]
    assert chain.installed() == {}
    assert Ledger(d.cfg.ledger_path).entries() == []


def test_client_disconnect_never_aborts_a_run(make_daemon, chain, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    import socket as socketlib

    from aegis.execute.protocol import Request, encode_frame, request_to_dict

    hooks = tmp_path / "hooks"
    hooks.mkdir()
    d = _daemon(make_daemon, chain, AEGIS_TEST_HOOKS="1", AEGIS_TEST_HOOK_DIR=str(hooks))
    data = chain.sign(chain.plan("aegis-tool"))
    _arm(hooks, "before-run")
    client = socketlib.socket(socketlib.AF_UNIX, socketlib.SOCK_STREAM)
    client.connect(str(d.socket))
    req = Request(op="apply", execution_plan=data.decode())
    client.sendall(encode_frame(request_to_dict(req)))
    _wait(hooks, "before-run")
    client.close()  # the operator's terminal goes away mid-run
    (hooks / "before-run.go").touch()
    deadline = time.monotonic() + 60
    while not any(e["kind"] == "apply-finished" for e in d.audit_events()):
        assert time.monotonic() < deadline
        time.sleep(0.05)
    [row] = Ledger(d.cfg.ledger_path).entries()
    assert (row.state, row.exit_status) == ("finished", 0)
    assert chain.installed()["aegis-tool"] == "2.0"


def test_a_change_outside_the_signed_delta_is_audited_as_drift(  # type: ignore[no-untyped-def]
    make_daemon, chain, tmp_path: Path
) -> None:
    hooks = tmp_path / "hooks"
    hooks.mkdir()
    d = _daemon(make_daemon, chain, AEGIS_TEST_HOOKS="1", AEGIS_TEST_HOOK_DIR=str(hooks))
    data = chain.sign(chain.plan("aegis-tool"))
    _arm(hooks, "before-run")
    answers: list[object] = []
    t = threading.Thread(target=lambda: answers.append(d.submit(data)))
    t.start()
    _wait(hooks, "before-run")
    # Another package manager cannot start mid-run: aegisd holds dpkg's frontend lock.
    other = testrepo.run_apt(chain.root, "install", "-y", "aegis-benign", check=False)
    assert other.returncode == 100
    assert "lock-frontend" in other.stderr
    # Someone changes dpkg's database behind every lock, mid-run: still audited as drift.
    status = chain.root.root / "var/lib/dpkg/status"
    with status.open("a") as f:
        f.write(
            "\nPackage: aegis-benign\nStatus: install ok installed\nVersion: 1.1\n"
            "Architecture: all\nMaintainer: x <x@example.org>\nDescription: planted\n"
        )
    (hooks / "before-run.go").touch()
    t.join(60)
    [answer] = answers
    assert answer.ok is True  # type: ignore[attr-defined]
    assert "drift: 1 difference(s) from the signed delta" in answer.message  # type: ignore[attr-defined]
    finished = [e for e in d.audit_events() if e["kind"] == "apply-finished"][-1]
    [line] = finished["details"]["drift"]
    assert line.startswith("aegis-benign:")
    assert "not in the signed delta, changed from absent to 1.1 installed" in line
    assert chain.installed()["aegis-tool"] == "2.0"
