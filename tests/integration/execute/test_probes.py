"""Health probes after a real apply: a change that breaks its service is restored by aegisd.

aegis-benign 1.0 -> 1.1 in a throwaway root; a loopback HTTP server stands in for the
service and answers 500 once the package's state file says 1.1 configured it. Policy
names an HTTP probe on it for ``aegis-*``; aegisd retries until the signed deadline,
then restores the kept 1.0 .deb (no new approval) and the request ends ``rolled_back``.
"""

from __future__ import annotations

import http.server
import json
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from aegis.execute.verifications import Verifications

from .chain_helpers import AEGIS, AEGISCTL, SignedRequest, apply_argv, run_cli, signed_request
from .conftest import REPO, Daemon

pytestmark = pytest.mark.root


class _Service:
    """An HTTP 'service' on loopback: 200 while aegis-benign 1.0 is configured, else 500."""

    def __init__(self, always_ok: bool = False) -> None:
        self.root: Path | None = None
        svc = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                state = svc.root / "var/lib/aegis-benign/state" if svc.root else None
                healthy = always_ok or (
                    state is not None
                    and state.is_file()
                    and state.read_text().strip() == "configured"
                )
                self.send_response(200 if healthy else 500)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def _health(port: int, within: str, confirm: bool = False, settle: str | None = None) -> str:
    return (
        f'\n[health]\nwithin = "{within}"\n\n[[health.packages]]\nmatch = ["aegis-benign"]\n'
        f'probes = ["http:http://127.0.0.1:{port}/"]\n'
        f"confirm = {'true' if confirm else 'false'}\n"
        + (f'settle = "{settle}"\n' if settle else "")
    )


@pytest.fixture
def service() -> Iterator[_Service]:
    svc = _Service()
    yield svc
    svc.close()


def benign_request(
    base: Path, svc: _Service, within: str, *, confirm: bool = False, settle: str | None = None
) -> SignedRequest:
    """aegis-benign 1.0 installed, 1.1 planned, signed with policy's probe on ``svc``."""

    def before(root: Any) -> None:
        svc.root = root.root

    return signed_request(
        base,
        "aegis-benign=1.1",
        preinstall=("aegis-benign=1.0",),
        before_plan=before,
        policy_extra=_health(svc.port, within, confirm, settle),
    )


def _events(d: Daemon, request_id: str) -> list[dict[str, Any]]:
    return [e for e in d.audit_events() if e.get("request_id") == request_id]


def _state(sr: SignedRequest) -> str:
    out = run_cli([*AEGIS, "show", sr.request_id, "--json"], sr.env).stdout
    state: str = json.loads(out)["request"]["state"]
    return state


def _version(sr: SignedRequest) -> str:
    from aegis.ecosystems.apt.dpkg import dpkg_status

    return dpkg_status(sr.root.root, {})["aegis-benign:all"][0]


def _daemon(sr: SignedRequest, sock_dir: Path, tmp_path: Path) -> Daemon:
    return Daemon(
        sr.home,
        sock_dir / "a.sock",
        sr.env,
        ["--public-key-hex", sr.signer_pub],
        tmp_path / "aegisd.log",
    ).start()


def test_a_failing_probe_rolls_the_change_back(
    tmp_path: Path, sock_dir: Path, service: _Service
) -> None:
    # A long deadline, but probes still failing 3 s after the run restore then.
    sr = benign_request(tmp_path, service, "1h", settle="3s")
    signed = json.loads(sr.execution_plan.read_text())
    assert signed["verification"]["settle_s"] == 3
    assert signed["verification"]["probes"][0]["target"] == f"http://127.0.0.1:{service.port}/"
    d = _daemon(sr, sock_dir, tmp_path)
    t0 = time.monotonic()
    out = run_cli(
        apply_argv(sr.execution_plan, sr.signer_pub, d.socket, "--json"), sr.env, ok=False
    )
    assert out.returncode == 9, (out.stdout, out.stderr, d.log.read_text())
    assert time.monotonic() - t0 < 60  # settle, not the hour
    assert "rolled back" in out.stderr
    assert _version(sr) == "1.0"
    assert _state(sr) == "rolled_back"
    kinds = [e["kind"] for e in _events(d, sr.request_id)]
    assert kinds[:3] == ["apply-started", "apply-finished", "verify-started"]
    assert kinds[-2:] == ["rollback-started", "rollback-finished"]
    started = next(e for e in _events(d, sr.request_id) if e["kind"] == "rollback-started")
    assert started["details"]["cause"] == "probe-failed"
    assert started["details"]["probes"][0]["detail"] == "HTTP 500"
    assert started["details"]["argv"][-1].endswith(".deb")  # the kept 1.0, nothing else
    finished = next(e for e in _events(d, sr.request_id) if e["kind"] == "rollback-finished")
    assert finished["decision"]["outcome"] == "rolled-back"
    assert finished["details"]["left_over"] == []
    # Settled: a new change may run again.
    assert Verifications(d.cfg.ledger_path).open_rows() == []
    # What on-call alerts on (the monitor's textfile).
    from aegis.config import load_config
    from aegis.workflow.health_metrics import health_text

    text = health_text(load_config(sr.env))
    assert 'aegis_probe_failures_total{ecosystem="apt"} 1' in text
    assert 'aegis_rollbacks_total{ecosystem="apt",cause="probe-failed"} 1' in text
    assert "aegis_rollbacks_failed 0" in text


def _wait(cond: Any, what: str, d: Daemon, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, (what, d.log.read_text())
        time.sleep(0.05)


def _probed(d: Daemon) -> bool:
    rows = Verifications(d.cfg.ledger_path).open_rows()
    return bool(rows and rows[0].probes)


def test_a_restart_during_verification_resumes_it_and_never_reruns_the_apply(
    tmp_path: Path, sock_dir: Path, service: _Service
) -> None:
    sr = benign_request(tmp_path, service, "8s")
    d = _daemon(sr, sock_dir, tmp_path)
    client = subprocess.Popen(
        apply_argv(sr.execution_plan, sr.signer_pub, d.socket, "--json"),
        env=sr.env,
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        _wait(
            lambda: any(e["kind"] == "verify-started" for e in _events(d, sr.request_id)),
            "verify-started",
            d,
        )
        # ... and its first round of probes answered (the row exists once verify-started).
        _wait(lambda: _probed(d), "first probe round", d)
        d.kill()  # SIGKILL while verifying: the probes fail, the deadline has not passed
    finally:
        client.kill()
        client.wait()
    rows = Verifications(d.cfg.ledger_path)
    [row] = rows.open_rows()
    assert row.state == "verifying"
    assert _version(sr) == "1.1"
    # The last probe results are kept with the row, not in aegisd's memory only.
    assert [(p["ok"], p["detail"]) for p in row.probes] == [(False, "HTTP 500")]
    d.start()
    _wait(lambda: rows.get(row.execution_id).state == "rolled-back", "restore", d)  # type: ignore[union-attr]
    # Status, show and doctor say what the probes answered, from aegisd's published rows.
    shown = json.loads(run_cli([*AEGIS, "show", sr.request_id, "--json"], sr.env).stdout)
    assert shown["verification"]["state"] == "rolled-back"
    assert shown["verification"]["probes"][0]["detail"] == "HTTP 500"
    human = run_cli([*AEGIS, "show", sr.request_id], sr.env).stdout
    assert "FAILED http:" in human
    for _ in range(4):  # resume records aegisd's decision one step per pass
        run_cli([*AEGIS, "resume"], sr.env, ok=False)
        if _state(sr) == "verifying":
            break
    doctor = json.loads(run_cli([*AEGIS, "doctor", "--json"], sr.env, ok=False).stdout)
    check = next(c for c in doctor["checks"] if c["name"] == "verifications")
    assert sr.request_id in check["detail"]
    assert "FAILED http:" in check["detail"]
    assert "HTTP 500" in check["detail"]
    events = _events(d, sr.request_id)
    kinds = [e["kind"] for e in events]
    assert kinds.count("apply-started") == 1
    resumed = next(e for e in events if e["kind"] == "verify-resumed")
    started = next(e for e in events if e["kind"] == "verify-started")
    assert resumed["details"]["deadline"] == started["details"]["deadline"] == row.deadline
    assert _version(sr) == "1.0"
    # aegis resume records aegisd's decision in the request (one step per pass).
    for _ in range(4):
        run_cli([*AEGIS, "resume"], sr.env, ok=False)
    assert _state(sr) == "rolled_back"


def test_a_plan_signed_without_the_probes_policy_asks_is_refused(
    tmp_path: Path, make_daemon: Any, key_set: Any
) -> None:
    """A trusted signer cannot drop (or swap) the health probes: aegisd derives them too."""
    from .chain_helpers import make_chain

    chain = make_chain(tmp_path, key_set)
    chain.cfg.policy_path.write_text(
        chain.cfg.policy_path.read_text()
        + '\n[[health.packages]]\nmatch = ["aegis-*"]\nprobes = ["tcp:127.0.0.1:1"]\n'
    )
    extra = {k: v for k, v in chain.env.items() if k in ("AEGIS_APT_CONFIG", "AEGIS_DPKG_ROOT")}
    d = make_daemon(env_extra=extra, home=chain.home)
    answer = d.submit(chain.sign(chain.plan("aegis-base")))  # signed with no verification
    assert answer.ok is False
    assert answer.refusal == "refused:policy"
    assert "health probes" in answer.message
    assert "aegis-base" not in chain.installed()


def test_no_confirmation_by_the_deadline_restores_a_healthy_change(
    tmp_path: Path, sock_dir: Path
) -> None:
    """The dead-man: policy asks a person; nobody confirms; aegisd puts 1.0 back."""
    svc = _Service(always_ok=True)
    try:
        sr = benign_request(tmp_path, svc, "4s", confirm=True)
        d = _daemon(sr, sock_dir, tmp_path)
        out = run_cli(apply_argv(sr.execution_plan, sr.signer_pub, d.socket, "--json"), sr.env)
        doc = json.loads(out.stdout)
        assert doc["request_state"] == "verifying"  # apply returns: a person decides
        assert doc["answer"]["result"]["verification"]["probes_passed"] is True
        rows = Verifications(d.cfg.ledger_path)
        _wait(lambda: rows.get(doc["execution_id"]).state == "rolled-back", "restore", d)  # type: ignore[union-attr]
        row = rows.get(doc["execution_id"])
        assert row is not None
        assert row.cause == "unconfirmed"
        assert _version(sr) == "1.0"
        late = run_cli(
            [*AEGISCTL, "confirm", sr.request_id, "--socket", str(d.socket)], sr.env, ok=False
        )
        assert late.returncode == 6, (late.stdout, late.stderr)
        for _ in range(3):
            run_cli([*AEGIS, "resume"], sr.env, ok=False)
        assert _state(sr) == "rolled_back"
    finally:
        svc.close()


def test_an_interrupted_run_resolved_applied_is_verified_by_its_probes_then_audited(
    tmp_path: Path, sock_dir: Path
) -> None:
    """aegisd dies after the run, before recording it: the operator resolves it applied,
    and the signed probes decide from then on, as after any run (no stuck 'applied')."""
    svc = _Service(always_ok=True)
    try:
        sr = benign_request(tmp_path, svc, "60s")
        hooks = tmp_path / "hooks"
        hooks.mkdir()
        (hooks / "after-run.wait").touch()
        env = {**sr.env, "AEGIS_TEST_HOOKS": "1", "AEGIS_TEST_HOOK_DIR": str(hooks)}
        d = Daemon(
            sr.home, sock_dir / "a.sock", env, ["--public-key-hex", sr.signer_pub],
            tmp_path / "aegisd.log",
        ).start()  # fmt: skip
        client = subprocess.Popen(
            apply_argv(sr.execution_plan, sr.signer_pub, d.socket),
            env=sr.env,
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        _wait((hooks / "after-run.reached").exists, "the run", d)
        d.kill()  # the package is in place; aegisd never recorded the run's end
        _, err = client.communicate(timeout=60)
        assert client.returncode == 10, err
        assert _version(sr) == "1.1"
        (hooks / "after-run.wait").unlink()
        d.start()
        xid = json.loads(sr.execution_plan.read_text())["execution_id"]
        row = Verifications(d.cfg.ledger_path).get(xid)
        assert row is not None
        assert row.state == "abandoned"  # nothing aegisd could verify by itself
        assert _state(sr) == "interrupted"
        out = run_cli(
            [*AEGISCTL, "resolve", sr.request_id, "--as", "applied", "--reason",
             "dpkg shows aegis-benign 1.1 ii", "--key", str(sr.keys / "alice.key"),
             "--socket", str(d.socket), "--json"],
            sr.env,
        )  # fmt: skip
        assert json.loads(out.stdout)["state"] == "audited", out.stderr
        assert _state(sr) == "audited"
        events = _events(d, sr.request_id)
        kinds = [e["kind"] for e in events]
        assert kinds.count("apply-started") == 1  # never run again
        assert kinds[-3:] == ["resolve", "verify-started", "verify-passed"]
        started = next(e for e in events if e["kind"] == "verify-started")
        assert started["details"]["after"] == "resolution"
        assert Verifications(d.cfg.ledger_path).open_rows() == []
        d.stop()
    finally:
        svc.close()
