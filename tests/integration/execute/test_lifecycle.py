"""The request lifecycle around aegisd: interrupted never re-runs; cancel revokes."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import pytest

from aegis.execute.ledger import Ledger

from .chain_helpers import AEGIS, apply_argv, run_cli, signed_request
from .conftest import Daemon

pytestmark = pytest.mark.root


def _state(env: dict[str, str], request_id: str) -> str:
    out = run_cli([*AEGIS, "requests", "--json"], env).stdout
    [req] = [r for r in json.loads(out)["requests"] if r["id"] == request_id]
    return str(req["state"])


def test_sigkill_after_started_leaves_interrupted_and_never_reruns(
    tmp_path: Path, sock_dir: Path
) -> None:
    sr = signed_request(tmp_path)
    hooks = tmp_path / "hooks"
    hooks.mkdir()
    (hooks / "after-started.wait").touch()
    env = {**sr.env, "AEGIS_TEST_HOOKS": "1", "AEGIS_TEST_HOOK_DIR": str(hooks)}
    d = Daemon(
        sr.home,
        sock_dir / "a.sock",
        env,
        ["--public-key-hex", sr.signer_pub],
        tmp_path / "aegisd.log",
    ).start()
    apply = apply_argv(sr.execution_plan, sr.signer_pub, d.socket)
    client = subprocess.Popen(
        apply, env=sr.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    deadline = time.monotonic() + 60
    while not (hooks / "after-started.reached").exists():
        assert time.monotonic() < deadline
        time.sleep(0.02)
    d.kill()
    _, err = client.communicate(timeout=60)
    assert client.returncode == 10, err
    assert _state(sr.env, sr.request_id) == "interrupted"
    (hooks / "after-started.wait").unlink()
    d.start()
    run_cli([*AEGIS, "resume"], sr.env, ok=False)
    assert _state(sr.env, sr.request_id) == "interrupted"
    again = run_cli(apply, sr.env, ok=False)
    assert again.returncode == 6
    [row] = Ledger(d.cfg.ledger_path).entries()
    assert row.state == "started"
    assert (
        "aegis-tool"
        not in subprocess.run(
            ["dpkg-query", f"--root={sr.root.root}", "-W"],
            capture_output=True,
            text=True,
            check=False,
        ).stdout
    )
    d.stop()


def test_cancel_of_signed_request_revokes_its_execution_id(tmp_path: Path, sock_dir: Path) -> None:
    sr = signed_request(tmp_path)
    d = Daemon(
        sr.home,
        sock_dir / "a.sock",
        sr.env,
        ["--public-key-hex", sr.signer_pub],
        tmp_path / "aegisd.log",
    ).start()
    env = {**sr.env, "AEGIS_RUN_DIR": str(sock_dir)}
    # The revoker talks to cfg.aegisd_socket: point the run dir at this daemon's socket.
    (sock_dir / "aegisd.sock").symlink_to(d.socket)
    run_cli([*AEGIS, "cancel", sr.request_id, "--reason", "window closed"], env)
    assert _state(sr.env, sr.request_id) == "cancelled"
    [row] = Ledger(d.cfg.ledger_path).entries()
    assert row.state == "revoked"
    from aegis.execute.protocol import Request, call

    answer = call(str(d.socket), Request(op="apply", execution_plan=sr.execution_plan.read_text()))
    assert answer.refusal == "refused:revoked"
    d.stop()


def test_resume_of_applying_asks_the_ledger_and_never_reruns(
    tmp_path: Path, sock_dir: Path
) -> None:
    sr = signed_request(tmp_path)
    hooks = tmp_path / "hooks"
    hooks.mkdir()
    (hooks / "after-started.wait").touch()
    env = {**sr.env, "AEGIS_TEST_HOOKS": "1", "AEGIS_TEST_HOOK_DIR": str(hooks)}
    d = Daemon(
        sr.home,
        sock_dir / "a.sock",
        env,
        ["--public-key-hex", sr.signer_pub],
        tmp_path / "aegisd.log",
    ).start()
    client = subprocess.Popen(
        apply_argv(sr.execution_plan, sr.signer_pub, d.socket),
        env=sr.env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 60
    while not (hooks / "after-started.reached").exists():
        assert time.monotonic() < deadline
        time.sleep(0.02)
    client.kill()  # the operator's terminal died too: the request is left in applying
    client.wait()
    d.kill()
    assert _state(sr.env, sr.request_id) == "applying"
    # aegisd is down: resume reads its ledger (root may), finds started without finished.
    run_cli([*AEGIS, "resume"], sr.env, ok=False)
    assert _state(sr.env, sr.request_id) == "interrupted"
    [row] = Ledger(d.cfg.ledger_path).entries()
    assert row.state == "started"


def test_resume_records_a_run_that_finished_after_the_client_died(
    tmp_path: Path, sock_dir: Path
) -> None:
    sr = signed_request(tmp_path)
    hooks = tmp_path / "hooks"
    hooks.mkdir()
    (hooks / "before-run.wait").touch()
    env = {**sr.env, "AEGIS_TEST_HOOKS": "1", "AEGIS_TEST_HOOK_DIR": str(hooks)}
    d = Daemon(
        sr.home,
        sock_dir / "a.sock",
        env,
        ["--public-key-hex", sr.signer_pub],
        tmp_path / "aegisd.log",
    ).start()
    env_sock = {**sr.env, "AEGIS_RUN_DIR": str(sock_dir)}
    (sock_dir / "aegisd.sock").symlink_to(d.socket)
    client = subprocess.Popen(
        apply_argv(sr.execution_plan, sr.signer_pub, d.socket),
        env=sr.env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 60
    while not (hooks / "before-run.reached").exists():
        assert time.monotonic() < deadline
        time.sleep(0.02)
    client.kill()
    client.wait()
    (hooks / "before-run.go").touch()
    while Ledger(d.cfg.ledger_path).entries()[0].state != "finished":
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert _state(sr.env, sr.request_id) == "applying"
    run_cli([*AEGIS, "resume"], env_sock, ok=False)
    assert _state(sr.env, sr.request_id) == "applied"
    # applied -> audited is resume's too, and only once the request's events verify:
    # with one audit line edited the request stays applied.
    log = d.cfg.audit_path
    original = log.read_bytes()
    lines = original.splitlines(keepends=True)
    lines[1] = lines[1].replace(b'"host":"', b'"host":"x', 1)
    log.write_bytes(b"".join(lines))
    report = json.loads(run_cli([*AEGIS, "resume", "--json"], env_sock, ok=False).stdout)
    [item] = [i for i in report["items"] if i["request_id"] == sr.request_id]
    assert (item["action"], item["state_after"]) == ("skipped", "applied")
    assert _state(sr.env, sr.request_id) == "applied"
    log.write_bytes(original)
    report = json.loads(run_cli([*AEGIS, "resume", "--json"], env_sock).stdout)
    [item] = [i for i in report["items"] if i["request_id"] == sr.request_id]
    assert (item["action"], item["trigger"]) == ("advanced", "audit")
    assert _state(sr.env, sr.request_id) == "audited"
    d.stop()


def _apply_cli(sr, d: Daemon, pub: str) -> subprocess.CompletedProcess[str]:  # type: ignore[no-untyped-def]
    return run_cli(
        apply_argv(sr.execution_plan, pub, d.socket),
        sr.env,
        ok=False,
    )


def test_aegisctl_apply_exits_4_when_aegisd_does_not_trust_the_signer(
    tmp_path: Path, sock_dir: Path
) -> None:
    from aegis.sign import keys

    sr = signed_request(tmp_path)
    _, other_pub = keys.write_keypair(tmp_path / "other", "signer")
    d = Daemon(
        sr.home, sock_dir / "a.sock", sr.env, ["--public-key-hex", other_pub], tmp_path / "log"
    ).start()
    proc = _apply_cli(sr, d, sr.signer_pub)  # verifies locally, then aegisd refuses
    assert proc.returncode == 4, (proc.stdout, proc.stderr)
    assert "refused:signature" in proc.stderr
    assert Ledger(d.cfg.ledger_path).entries() == []  # nothing ran
    assert _state(sr.env, sr.request_id) == "failed"  # refused, with the refusal recorded
    d.stop()


def test_aegisctl_apply_exits_9_when_the_command_fails(tmp_path: Path, sock_dir: Path) -> None:
    sr = signed_request(tmp_path)
    hooks = tmp_path / "hooks"
    hooks.mkdir()
    (hooks / "before-run.wait").touch()
    env = {**sr.env, "AEGIS_TEST_HOOKS": "1", "AEGIS_TEST_HOOK_DIR": str(hooks)}
    d = Daemon(
        sr.home, sock_dir / "a.sock", env, ["--public-key-hex", sr.signer_pub], tmp_path / "log"
    ).start()
    client = subprocess.Popen(
        apply_argv(sr.execution_plan, sr.signer_pub, d.socket),
        env=sr.env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 60
    while not (hooks / "before-run.reached").exists():
        assert time.monotonic() < deadline
        time.sleep(0.02)
    # The verified files aegisd fetched vanish after every check passed: apt fails.
    for deb in [*(tmp_path / "repo").rglob("*.deb"), *d.cfg.deb_dir.glob("*.deb")]:
        deb.unlink()
    (hooks / "before-run.go").touch()
    _, err = client.communicate(timeout=120)
    assert client.returncode == 9, err
    assert _state(sr.env, sr.request_id) == "failed"
    [row] = Ledger(d.cfg.ledger_path).entries()
    assert (row.state, row.outcome) == ("finished", "failed")
    finished = [e for e in d.audit_events() if e["kind"] == "apply-finished"][-1]
    assert finished["exit_status"] == 100
    d.stop()


def test_aegisctl_apply_exits_5_when_aegisds_policy_now_denies(
    tmp_path: Path, sock_dir: Path
) -> None:
    sr = signed_request(tmp_path)
    # After signing, this host's policy turns the plan's rule into a deny.
    policy = sr.home / "etc/aegis/policy.toml"
    policy.write_text(policy.read_text() + '\n[rules."apt.upgrade-clean"]\neffect = "deny"\n')
    d = Daemon(
        sr.home, sock_dir / "a.sock", sr.env, ["--public-key-hex", sr.signer_pub], tmp_path / "log"
    ).start()
    proc = _apply_cli(sr, d, sr.signer_pub)
    assert proc.returncode == 5, (proc.stdout, proc.stderr)
    assert "refused:policy" in proc.stderr
    assert "says deny" in proc.stderr
    assert Ledger(d.cfg.ledger_path).entries() == []
    # A refusal naming a request is covered by a checkpoint right away.
    *_, last, checkpoint = d.audit_events()
    assert last["decision"]["rule_ids"] == ["refused:policy"]
    assert checkpoint["kind"] == "checkpoint"
    d.stop()
