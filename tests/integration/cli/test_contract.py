"""The operator contract, line by line, as written (its user-facing form is
docs/operator-guide.md and docs/agents.md in this repository).

Every command runs as a real process through the installed console scripts (``aegis``,
``aegisctl``) or exactly as the contract spells it (``packaging/verify-native.sh``,
``PYTHONPATH=tools/policy-helper/src python3 -m aegis_policy_helper report ...`` on the
system python3), against the signed test repository in a throwaway root, with a
temporary AEGIS_HOME (which relocates ``/var/log/aegis/audit.jsonl`` and
``/run/aegis/*.sock``). aegisd runs for real on its Unix socket.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import pytest

from aegis import api
from aegis.config import load_config
from aegis.devtools import policy_plans as pp
from aegis.devtools import testrepo
from aegis.policy import rules
from tests.conftest import require_root

REPO = Path(__file__).resolve().parents[3]
GUIDE = REPO / "docs/operator-guide.md"
BIN = Path(sys.executable).parent
SYSTEM_PYTHON = Path("/usr/bin/python3")

# Copied by hand from the contract's "Deny Interpretation" (never imported from aegis).
PHRASE_REPO = (
    "untrusted or weakly pinned package repository: require an explicit trusted Signed-By "
    "keyring and approved source."
)
PHRASE_SOURCE = (
    "target source or evidence is denied: do not work around direct URL, local path, "
    "replacement, unsigned repo, downgrade, or missing provenance blocks."
)
PHRASE_METACHAR = (
    "command preview contains shell metacharacters: reject the request; command previews "
    "must be argv arrays."
)
PHRASE_VULN = (
    "critical vulnerability evidence: install only an approved fixed version or deny the operation."
)
UNITS = (
    "aegis-reviewd.service",
    "aegisd.service",
    "aegis-monitor.service",
    "aegis-monitor.timer",
    "aegis-unattended.service",
    "aegis-unattended.timer",
)
SOCKETS = {
    "aegis-reviewd.socket": "/run/aegis/aegis-reviewd.sock",
    "aegisd.socket": "/run/aegis/aegisd.sock",
}


@dataclass
class Lab:
    """A temporary AEGIS_HOME configured for a throwaway root using the test repository."""

    home: Path
    root: testrepo.AptRoot
    env: dict[str, str]
    tmp: Path

    def run(
        self, *argv: str, env: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(
            [str(a) for a in argv],
            env=env or self.env,
            capture_output=True,
            text=True,
            cwd=REPO,
            timeout=180,
            check=False,
        )
        assert "Traceback" not in proc.stderr, proc.stderr
        return proc

    def aegis(self, *args: str) -> subprocess.CompletedProcess[str]:
        return self.run(str(BIN / "aegis"), *args)

    def aegisctl(self, *args: str) -> subprocess.CompletedProcess[str]:
        return self.run(str(BIN / "aegisctl"), *args)

    def plan(self, target: str, *, rc: int = 0) -> tuple[Path, dict[str, object]]:
        """``aegis apt install <pkg> --plan --json``: the plan path and the document.

        ``rc`` 3: the analysis failed (e.g. a direct path), yet the plan is recorded."""
        proc = self.aegis("apt", "install", target, "--plan", "--json")
        assert proc.returncode == rc, proc.stderr
        doc = json.loads(proc.stdout)
        return Path(doc["plan_path"]), doc

    def decide(self, plan: Path) -> tuple[int, str, dict[str, object]]:
        """review (skipped by configuration), then policy as text and as JSON."""
        assert self.aegis("review", str(plan), "--no-review").returncode == 0
        text = self.aegis("policy", str(plan))
        doc = json.loads(self.aegis("policy", str(plan), "--json").stdout)["result"]
        return text.returncode, text.stdout + text.stderr, doc


def _policy_text(repo: testrepo.Repo) -> str:
    default = (REPO / "aegis/policy/default_policy.toml").read_text()
    return default + (
        f'\n[[sources]]\nname = "test"\nuri = "{repo.uri}"\nsuite = "{repo.suite}"\n'
        f'component = "main"\nsigner_fingerprint = "{repo.fingerprint}"\n'
        'packages = ["aegis-*"]\n'
    )


@pytest.fixture
def lab(tmp_path: Path, test_repo: testrepo.Repo) -> Lab:
    root = testrepo.make_root(tmp_path / "root", [test_repo])
    testrepo.apt_update(root)
    home = tmp_path / "home"
    etc = home / "etc/aegis"
    (etc / "keys/approvers").mkdir(parents=True)
    (etc / "policy.toml").write_text(_policy_text(test_repo))
    (etc / "aegis.toml").write_text(
        f'apt_config = "{root.apt_config}"\ndpkg_root = "{root.root}"\n'
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("AEGIS_")}
    env.update(
        AEGIS_HOME=str(home),
        AEGIS_HOST_ID="test-host",
        AEGIS_AUDIT_SYSLOG="0",
        PYTHONPATH=str(REPO),
    )
    return Lab(home, root, env, tmp_path)


def _fired(result: dict[str, object]) -> dict[str, dict[str, object]]:
    fired = result["fired"]
    assert isinstance(fired, list)
    return {f["rule_id"]: f for f in fired}


def _printed_path(output: str, label: str) -> Path:
    match = re.search(rf"^{label}: (/\S+)$", output, re.MULTILINE)
    assert match, (label, output)
    path = Path(match.group(1))
    assert path.is_file(), path
    return path


# -- Deny Interpretation -------------------------------------------------------------------


def test_deny_phrases_are_the_contracts_verbatim() -> None:
    assert (rules.PHRASE_REPOSITORY, rules.PHRASE_SOURCE) == (PHRASE_REPO, PHRASE_SOURCE)
    assert (rules.PHRASE_METACHAR, rules.PHRASE_VULN) == (PHRASE_METACHAR, PHRASE_VULN)
    # The operator guide quotes each interpretation verbatim, one a line, for people.
    lines = GUIDE.read_text(encoding="utf-8").splitlines()
    for phrase in (PHRASE_REPO, PHRASE_SOURCE, PHRASE_METACHAR, PHRASE_VULN):
        assert f"> {phrase}" in lines


def test_weakly_pinned_repository_denies_with_its_phrase(lab: Lab) -> None:
    # libssl3 comes from the test repository, approved only for aegis-*.
    plan, _ = lab.plan("libssl3")
    code, out, result = lab.decide(plan)
    assert code == 5
    assert result["decision"] == "deny"
    assert _fired(result)["repo.weakly-pinned"]["contract"] == PHRASE_REPO
    assert f"deny repo.weakly-pinned: {PHRASE_REPO}" in out


@pytest.mark.parametrize(
    ("target", "rule_id"),
    [("./local.deb", "target.direct-path"), ("http://example.invalid/x.deb", "target.url")],
)
def test_direct_url_or_local_path_denies_with_its_phrase(
    lab: Lab, target: str, rule_id: str
) -> None:
    # Not analyzed (exit 3), but recorded as a plan that policy denies; never run.
    plan, doc = lab.plan(target, rc=3)
    assert doc["plan"]["changes"] == []  # type: ignore[index]
    code, out, result = lab.decide(plan)
    assert code == 5
    assert _fired(result)[rule_id]["contract"] == PHRASE_SOURCE
    assert f"deny {rule_id}: {PHRASE_SOURCE}" in out


def test_shell_metacharacters_in_a_command_preview_deny_with_its_phrase(lab: Lab) -> None:
    # The analyzer never writes such a preview; a plan submitted by someone else can.
    cfg = load_config(lab.env)
    plan = replace(pp.clean_plan(), command_preview=("/usr/bin/apt-get", "install", "x;id"))
    path = api.submit_plan(cfg, plan, "mallory").plan_path
    code, out, result = lab.decide(path)
    assert code == 5
    assert _fired(result)["command.metachar"]["contract"] == PHRASE_METACHAR
    assert f"deny command.metachar: {PHRASE_METACHAR}" in out


def _tracker(path: Path, entries: dict[str, tuple[str, str]]) -> Path:
    doc = {
        source: {
            f"CVE-2026-{1000 + i}": {
                "description": "test",
                "releases": {
                    "bookworm": {
                        "status": "resolved",
                        "urgency": urgency,
                        "fixed_version": fixed,
                        "repositories": {"bookworm": fixed},
                    }
                },
            }
        }
        for i, (source, (urgency, fixed)) in enumerate(sorted(entries.items()))
    }
    path.write_text(json.dumps(doc))
    return path


def test_vulnerability_denies_use_the_severity_mapping(lab: Lab) -> None:
    tracker = _tracker(
        lab.tmp / "tracker.json",
        {"aegis-tool": ("high", "2.1"), "aegis-benign": ("medium", "1.2")},
    )
    imported = lab.aegis("vulndb", "import", str(tracker))
    assert imported.returncode == 0, imported.stderr
    # high -> critical (docs/vulnerabilities.md): the contract's phrase.
    plan, doc = lab.plan("aegis-tool")
    (vuln,) = doc["plan"]["vulnerabilities"]  # type: ignore[index]
    assert (vuln["critical"], vuln["fixed_version"], vuln["fixed_by_plan"]) == (True, "2.1", False)
    code, out, result = lab.decide(plan)
    assert code == 5
    fired = _fired(result)
    assert fired["vuln.fixed-available"]["contract"] == PHRASE_VULN
    assert "vuln.fixed-available-noncritical" not in fired
    assert f"deny vuln.fixed-available: {PHRASE_VULN}" in out
    # medium -> not critical: still denied (a fix exists), but never called critical.
    plan, doc = lab.plan("aegis-benign")
    (vuln,) = doc["plan"]["vulnerabilities"]  # type: ignore[index]
    assert (vuln["critical"], vuln["urgency"]) == (False, "medium")
    code, out, result = lab.decide(plan)
    assert code == 5
    fired = _fired(result)
    assert "vuln.fixed-available" not in fired
    noncritical = fired["vuln.fixed-available-noncritical"]
    assert noncritical["contract"] is None
    assert "non-critical" in str(noncritical["reason"])
    assert "critical vulnerability evidence" not in out


# -- AI Agent Test Prompt --------------------------------------------------------------------


def test_agent_flow_without_a_reachable_model(lab: Lab) -> None:
    # "Verify native service health with packaging/verify-native.sh": read-only, here on a
    # host (or root) without the services it must say so and exit non-zero, not crash.
    bare = lab.tmp / "bare-root"
    bare.mkdir()
    check = lab.run("packaging/verify-native.sh", "--root", str(bare))
    assert check.returncode == 1
    assert "FAIL  unit aegisd.service is not installed" in check.stdout
    assert "the Aegis services are not installed here" in check.stdout
    # "create a read-only plan for aegis apt install <pkg> --plan"
    text = lab.aegis("apt", "install", "aegis-tool", "--plan")
    assert text.returncode == 0, text.stderr
    plan = _printed_path(text.stdout, "plan")
    assert re.search(r"^request: r-[0-9a-f]+$", text.stdout, re.MULTILINE)
    # "Inspect the plan": --json names the plan file and carries the plan itself.
    _, doc = lab.plan("aegis-tool")
    inner = doc["plan"]
    assert isinstance(inner, dict)
    assert Path(str(doc["plan_path"])).is_file()
    assert [c["name"] for c in inner["changes"]] == ["aegis-base", "aegis-tool"]
    preview = inner["command_preview"]
    assert preview[0] == "/usr/bin/apt-get"
    at = preview.index("install")
    assert preview[at : at + 3] == ["install", "--trivial-only", "--"]
    for key in ("repositories", "provenance", "vulnerabilities", "rollback", "signals"):
        assert key in inner, key
    assert json.loads(plan.read_bytes())["plan_id"] == plan.stem
    # "run aegis review <plan>": nothing listens on aegis-reviewd's socket. The review is
    # recorded as failed (not a crash, not stranded) and says so; its path is printed.
    assert not load_config(lab.env).reviewd_socket.exists()
    review = lab.aegis("review", str(plan))
    assert review.returncode == 0, review.stderr
    assert "aegis-reviewd is not reachable" in review.stderr
    assert re.search(r"^status\s+failed$", review.stdout, re.MULTILINE)
    assert "policy will require approval" in review.stdout
    review_path = _printed_path(review.stdout, "review")
    assert json.loads(review_path.read_bytes())["status"] == "failed"
    # "run aegis policy <plan>": the failed review fails closed into approval (exit 8).
    policy = lab.aegis("policy", str(plan))
    assert policy.returncode == 8, policy.stderr
    assert re.search(r"^decision\s+require-approval$", policy.stdout, re.MULTILINE)
    assert re.search(r"^controls\s+approval by 1 \(approver\)", policy.stdout, re.MULTILINE)
    result = json.loads(_printed_path(policy.stdout, "policy result").read_bytes())
    assert result["decision"] == "require-approval"
    assert result["review"]["status"] == "unverified"  # an unsigned failed review never counts
    assert "review.unverified" in {f["rule_id"] for f in result["fired"]}
    # Nothing was signed or applied: no execution plan, no audit log.
    cfg = load_config(lab.env)
    assert not list(cfg.state_dir.glob("execution-plans/*.json"))
    assert not cfg.audit_path.exists()


def test_review_with_the_model_endpoint_down_requires_approval(lab: Lab) -> None:
    # The other "no model reachable": the endpoint itself is down (--direct, dev key).
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again before use: connection refused
    keys = load_config(lab.env).keys_dir
    assert lab.aegisctl("keygen", "--out", str(keys), "--role", "review").returncode == 0
    env = {
        **lab.env,
        "AEGIS_AI_BASE_URL": f"http://127.0.0.1:{port}/v1",
        "AEGIS_AI_MODEL": "deepseek-v4-flash",
        "AEGIS_AI_TIMEOUT_S": "5",
    }
    plan, _ = lab.plan("aegis-tool")
    review = lab.run(str(BIN / "aegis"), "review", str(plan), "--direct", "--json", env=env)
    assert review.returncode == 0, review.stderr
    doc = json.loads(review.stdout)
    assert doc["review"]["status"] == "failed"
    assert Path(doc["path"]).is_file()
    policy = lab.run(str(BIN / "aegis"), "policy", str(plan), "--json", env=env)
    assert policy.returncode == 8
    assert json.loads(policy.stdout)["result"]["decision"] == "require-approval"


def test_apt_upgrade_plan(lab: Lab) -> None:
    testrepo.run_apt(lab.root, "install", "-y", "aegis-base=1.0")
    text = lab.aegis("apt", "upgrade", "--plan")
    assert text.returncode == 0, text.stderr
    plan = json.loads(_printed_path(text.stdout, "plan").read_bytes())
    assert plan["intent"]["operation"] == "upgrade"
    assert [(c["name"], c["action"], c["candidate_version"]) for c in plan["changes"]] == [
        ("aegis-base", "upgrade", "1.2")
    ]


# -- Sign, apply through aegisd, audit, policy helper -----------------------------------------


@pytest.fixture
def aegisd(lab: Lab) -> Iterator[tuple[str, Path]]:
    """Operator keys (signer alice, approver bob) and a real aegisd trusting alice."""
    keys = lab.tmp / "operator-keys"
    for role, name in (("signer", "alice"), ("approver", "bob")):
        made = lab.aegisctl("keygen", "--out", str(keys), "--role", role, "--name", name)
        assert made.returncode == 0, made.stderr
    shutil.copyfile(keys / "bob.pub", lab.home / "etc/aegis/keys/approvers/bob.pub")
    signer = (keys / "alice.pub").read_text().strip()
    log = (lab.tmp / "aegisd.log").open("wb")
    proc = subprocess.Popen(
        [str(BIN / "aegisd"), "--public-key-hex", signer], env=lab.env, cwd=REPO, stderr=log
    )
    sock = load_config(lab.env).aegisd_socket
    try:
        for _ in range(200):
            if sock.exists() or proc.poll() is not None:
                break
            time.sleep(0.05)
        assert sock.exists(), (lab.tmp / "aegisd.log").read_text()
        yield signer, keys
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        log.close()


def test_sign_apply_audit_and_policy_helper_as_written(lab: Lab, aegisd: tuple[str, Path]) -> None:
    require_root("dpkg installs into the throwaway root and aegisd admits root or aegis-apply")
    signer, keys = aegisd
    cfg = load_config(lab.env)
    # Planning, advisory review, deterministic policy (approval required).
    plan, _ = lab.plan("aegis-tool")
    assert lab.aegis("review", str(plan), "--no-review").returncode == 0
    assert lab.aegis("policy", str(plan)).returncode == 8
    # "aegisctl sign only when the policy result is not deny and required approvals ...
    # are satisfied": refused before the approval, signed after it.
    sign = ("sign", "--plan", str(plan), "--key", str(keys / "alice.key"), "--signer", "alice")
    refused = lab.aegisctl(*sign)
    assert refused.returncode != 0
    assert refused.stderr.startswith("Error: ")
    approve = lab.aegisctl(
        "approve", str(plan), "--reason", "change window", "--key", str(keys / "bob.key"),
        "--approver", "bob",
    )  # fmt: skip
    assert approve.returncode == 0, approve.stderr
    signed = lab.aegisctl(*sign)
    assert signed.returncode == 0, signed.stderr
    execution_plan = _printed_path(signed.stdout, "execution plan")
    assert execution_plan.parent == cfg.state_dir / "execution-plans"
    # "aegisctl apply --execution-plan <file> --public-key-hex <key>" through aegisd.
    apply = lab.aegisctl(
        "apply", "--execution-plan", str(execution_plan), "--public-key-hex", signer
    )
    assert apply.returncode == 0, apply.stdout + apply.stderr
    assert re.search(r"^result\s+applied$", apply.stdout, re.MULTILINE)
    _printed_path(apply.stdout, "executor result")
    installed = subprocess.run(
        ["dpkg-query", f"--root={lab.root.root}", "-W", "aegis-tool"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert installed.stdout.split() == ["aegis-tool", "2.0"]
    # "/var/log/aegis/audit.jsonl or aegisctl audit-path" (relocated under AEGIS_HOME).
    audit_path = lab.aegisctl("audit-path")
    assert audit_path.stdout == f"{lab.home}/var/log/aegis/audit.jsonl\n"
    log = Path(audit_path.stdout.strip())
    kinds = [json.loads(line)["event"]["kind"] for line in log.read_text().splitlines()]
    assert kinds[-1] == "checkpoint"  # every apply ends with a signed checkpoint
    verify = lab.aegis("audit", "verify")
    assert verify.returncode == 0, verify.stdout + verify.stderr
    assert "not covered" not in verify.stderr  # the apply's checkpoint covers the apply
    witness = cfg.log_dir / "audit-witness.jsonl"  # aegisd's default, used by default
    assert re.search(rf"^witness\s+{re.escape(str(witness))} \(seq \d+\)$", verify.stdout, re.M)
    _policy_helper_as_written(lab, execution_plan, signer, (keys / "bob.pub").read_text().strip())
    # Truncation (the apply's events rolled back) is caught against the default witness.
    lines = log.read_bytes().splitlines(keepends=True)
    log.write_bytes(b"".join(lines[:-2]))
    truncated = lab.aegis("audit", "verify", "--json")
    assert truncated.returncode == 4
    assert "truncated" in {p["kind"] for p in json.loads(truncated.stdout)["problems"]}


def _policy_helper_as_written(lab: Lab, execution_plan: Path, signer: str, approver: str) -> None:
    """The contract's report command on the system python3 with only PYTHONPATH set."""
    if not SYSTEM_PYTHON.exists():  # pragma: no cover - Debian always has it
        pytest.fail("the contract runs the policy helper with the system python3")
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": "tools/policy-helper/src"}
    out = lab.tmp / "policy-helper-report.json"
    base = [
        "python3", "-m", "aegis_policy_helper", "report",
        "--execution-plan", str(execution_plan),
        "--execution-public-key-hex", signer,
        "--approval-public-key-hex", approver,
        "--out", str(out),
        "--lm", "openai/deepseek-v4-flash",
        "--api-base", "http://localhost:8000/v1",
        "--api-key", "local",
    ]  # fmt: skip
    for extra in ((), ("--skip-dspy",)):
        out.unlink(missing_ok=True)
        proc = lab.run(*base, *extra, env=env)
        assert proc.returncode == 0, proc.stderr
        assert proc.stdout == f"report: {out}\n"
        report = json.loads(out.read_bytes())
        assert report["verification"]["execution_signature_verified"] is True
        assert report["verification"]["approvals_verified"] is True
        analysis = report["dspy_analysis"]
        assert analysis["trust"] == "untrusted-advice"
        if extra:
            assert analysis == {**analysis, "status": "skipped", "reason": "--skip-dspy"}
        elif analysis["status"] == "skipped":  # no DSPy on this python3: said, not hidden
            assert "DSPy is not installed" in proc.stderr
    # Untrusted keys: no report, exit 4; the fixture-only flag writes one, loudly.
    wrong = [a if a != signer else approver for a in base]
    out.unlink()
    refused = lab.run(*wrong, "--skip-dspy", env=env)
    assert refused.returncode == 4
    assert not out.exists()
    unsafe = lab.run(*wrong, "--skip-dspy", "--allow-unverified-execution-signature", env=env)
    assert unsafe.returncode == 0
    assert "Unsafe" in unsafe.stderr
    assert json.loads(out.read_bytes())["verification"]["execution_signature_verified"] is False


# -- Service readiness: units, sockets, doctor ----------------------------------------------


def _unit(name: str) -> dict[str, list[str]]:
    keys: dict[str, list[str]] = {}
    for line in (REPO / "packaging/systemd" / name).read_text().splitlines():
        if "=" in line and not line.lstrip().startswith(("#", ";")):
            key, _, value = line.partition("=")
            keys.setdefault(key.strip(), []).append(value.strip())
    return keys


def test_units_sockets_and_paths_are_the_contracts() -> None:
    present = {p.name for p in (REPO / "packaging/systemd").iterdir()}
    assert set(UNITS) | set(SOCKETS) == present
    for unit, path in SOCKETS.items():
        assert _unit(unit)["ListenStream"] == [path]
    for unit in UNITS:
        for program in (v.split()[0].lstrip("-@:+!") for v in _unit(unit).get("ExecStart", [])):
            # "If unit paths point at /usr/bin/aegis or /usr/libexec/aegis, the host has
            # stale units": ours never do.
            assert not program.startswith(("/usr/bin/aegis", "/usr/libexec/aegis")), program
            assert program.startswith("/opt/aegis/bin/"), program
    assert _unit("aegis-monitor.service")["Type"] == ["oneshot"]  # inactive after a run
    assert "timers.target" in _unit("aegis-monitor.timer")["WantedBy"]


def test_systemd_analyze_verify_accepts_the_units() -> None:
    if shutil.which("systemd-analyze") is None:
        pytest.fail("systemd-analyze is required (apt-get install systemd)")
    names = [*UNITS, *SOCKETS]
    proc = subprocess.run(
        ["systemd-analyze", "verify", "--man=no", "--recursive-errors=no", *names],
        cwd=REPO / "packaging/systemd",
        capture_output=True,
        text=True,
        check=False,
    )
    # Outside a staged install the only complaints allowed are the missing programs
    # and users; any other stderr line is a unit problem (docs/testing.md "systemd without
    # booting").
    noise = ("/opt/aegis/bin/", "is not executable", "No such file or directory")
    problems = [
        line for line in proc.stderr.splitlines() if line and not any(n in line for n in noise)
    ]
    assert problems == []


def test_doctor_reports_missing_services_clearly(lab: Lab) -> None:
    doctor = lab.aegis("doctor")
    assert doctor.returncode == 7
    assert re.search(r"^Error: \d+ check\(s\) failed: .*aegisd socket", doctor.stderr, re.M)
    checks = {c["name"]: c for c in json.loads(lab.aegis("doctor", "--json").stdout)["checks"]}
    assert checks["aegisd socket"]["status"] == "fail"
    assert str(load_config(lab.env).aegisd_socket) in checks["aegisd socket"]["detail"]
