"""Health-probe figure (issue 15): what verifying a change costs aegisd beyond its probes.

Each round installs the same fixture (``aegis-tool`` and its dependency) through aegisd
into three fresh throwaway roots built from one signed test repository, in this one run:

- ``plain_s``: ``aegis.execute.service.apply`` of a plan whose policy names no probe;
- ``probed_s``: the same with policy's ``[health]`` naming a TCP and an HTTP probe on
  loopback servers that answer at once: aegisd records the deadline (fsync'd), runs the
  probes, records and audits ``verify-passed`` with a checkpoint before it answers;
- ``confirm_s``: with ``confirm = true`` the apply answers ``verifying``; the time of the
  ``confirm`` request that keeps it (ledger write, audit event, checkpoint).

``probe_s`` is the probes' own time (their ``duration_ms`` as aegisd reports them).
Medians over ROUNDS. Goal: ``probed_s - plain_s - probe_s <= 0.2`` and ``confirm_s <= 0.2``.
"""

from __future__ import annotations

import http.server
import os
import secrets
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROUNDS = 3
GOAL_S = 0.2
HERE = Path(__file__).resolve().parents[2]


class _Quiet(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


def _policy(repo: Any, port: int | None, confirm: bool) -> str:
    default = (HERE / "aegis/policy/default_policy.toml").read_text()
    text = default + (
        f'\n[[sources]]\nname = "test"\nuri = "{repo.uri}"\nsuite = "{repo.suite}"\n'
        f'component = "main"\nsigner_fingerprint = "{repo.fingerprint}"\npackages = ["aegis-*"]\n'
    )
    if port is not None:
        text += (
            '\n[[health.packages]]\nmatch = ["aegis-tool"]\n'
            f'probes = ["tcp:127.0.0.1:{port}", "http:http://127.0.0.1:{port}/"]\n'
            f"confirm = {'true' if confirm else 'false'}\n"
        )
    return text


def _sign(cfg: Any, signer: Any, approver: Any) -> bytes:
    from aegis.ecosystems.apt.argv import derive_argv
    from aegis.ecosystems.apt.plan import analyze_apt
    from aegis.execute.apply import binding_from_result
    from aegis.model import Intent, Operation, Tool, plan_hash
    from aegis.policy.engine import evaluate
    from aegis.policy.result import result_hash
    from aegis.policy.run import load_policy, verification_for
    from aegis.sign.approvals import Approval, build_approval
    from aegis.sign.execution_plan import build_execution_plan, execution_plan_bytes

    now = datetime.now(UTC)
    intent = Intent(Tool.APT, Operation.INSTALL, ("aegis-tool",), "bench", "2026-01-01T00:00:00Z")
    plan = analyze_apt(cfg, intent, now)
    result = evaluate(plan, None, load_policy(cfg), now)
    approvals: tuple[Approval, ...] = ()
    if result.controls.approval.count:
        approvals = (
            build_approval(
                plan_id=plan.plan_id,
                plan_hash=plan_hash(plan),
                policy_hash=result_hash(result),
                approver_id="bob",
                role="approver",
                reason="bench",
                now=now,
                expires_in=timedelta(hours=1),
                key=approver,
            ),
        )
    ep = build_execution_plan(
        execution_id=secrets.token_hex(16),
        request_id=None,
        plan=plan,
        policy=binding_from_result(result),
        review_hash=None,
        approvals=approvals,
        argv=derive_argv(plan, dpkg_root=cfg.dpkg_root),
        now=now,
        expires_in=timedelta(hours=1),
        signer_id="alice",
        key=signer,
        verification=verification_for(cfg, plan),
    )
    return execution_plan_bytes(ep)


def _setup(
    tmp: Path, repo: Any, keys: dict[str, Any], port: int | None, confirm: bool
) -> tuple[Any, dict[str, str], Path]:
    """A fresh root, its AEGIS_HOME with the policy, and the signed execution plan."""
    from aegis.config import load_config
    from aegis.devtools import testrepo

    root = testrepo.make_root(tmp / "root", [repo])
    testrepo.apt_update(root)
    env = {k: v for k, v in os.environ.items() if not k.startswith("AEGIS_")}
    env.update(
        AEGIS_HOME=str(tmp / "home"),
        AEGIS_HOST_ID="bench-host",
        AEGIS_AUDIT_SYSLOG="0",
        AEGIS_APT_CONFIG=str(root.apt_config),
        AEGIS_DPKG_ROOT=str(root.root),
        PYTHONPATH=str(HERE),
    )
    cfg = load_config(env)
    cfg.etc_dir.mkdir(parents=True, exist_ok=True)
    cfg.policy_path.write_text(_policy(repo, port, confirm))
    old = dict(os.environ)
    os.environ.clear()
    os.environ.update(env)
    try:
        ep_path = tmp / "ep.json"
        ep_path.write_bytes(_sign(cfg, keys["signer"], keys["approver"]))
    finally:
        os.environ.clear()
        os.environ.update(old)
    return cfg, env, ep_path


def _apply(
    tmp: Path, repo: Any, keys: dict[str, Any], port: int | None, confirm: bool
) -> tuple[float, float, float]:
    """(apply seconds, probes' own seconds, confirm seconds) in a fresh root."""
    from aegis.execute import service
    from aegis.execute.protocol import Request, call

    cfg, env, ep_path = _setup(tmp, repo, keys, port, confirm)
    old = dict(os.environ)
    sock = Path(tempfile.mkdtemp(prefix="aegisd-bench-", dir="/tmp")) / "s.sock"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "aegis.execute.aegisd",
            "--socket",
            str(sock),
            "--public-key-hex",
            keys["spub"],
            "--approval-public-key-hex",
            keys["apub"],
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        cwd=HERE,
    )
    try:
        for _ in range(300):
            try:
                call(str(sock), Request(op="ping"), timeout_s=5)
                break
            except Exception:
                time.sleep(0.02)
        os.environ.clear()
        os.environ.update(env)
        try:
            t0 = time.perf_counter()
            out = service.apply(cfg, ep_path, keys["spub"], socket=sock)
            took = time.perf_counter() - t0
        finally:
            os.environ.clear()
            os.environ.update(old)
        assert out.answer["ok"], out.answer
        v = out.answer["result"].get("verification") or {}
        probes = sum(p["duration_ms"] for p in v.get("probes", [])) / 1000
        confirm_s = 0.0
        if port is not None:
            assert v["state"] == ("verifying" if confirm else "passed"), v
        if confirm:
            t0 = time.perf_counter()
            ans = call(str(sock), Request(op="confirm", execution_id=out.execution_id))
            confirm_s = time.perf_counter() - t0
            assert ans.state == "passed", ans
    finally:
        proc.terminate()
        proc.wait()
        shutil.rmtree(sock.parent, ignore_errors=True)
    return took, probes, confirm_s


def run() -> dict[str, Any]:
    """Median seconds of the plain and probed applies, the overhead, and the goal."""
    from aegis.devtools import testrepo
    from aegis.sign import keys as keys_mod

    base = Path(tempfile.mkdtemp(prefix="aegis-bench-health-"))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Quiet)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    port = server.server_address[1]
    try:
        repo = testrepo.build_repo(base / "repo")
        sp, spub = keys_mod.write_keypair(base / "keys", "signer")
        ap, apub = keys_mod.write_keypair(base / "keys", "approver")
        keys = {
            "signer": keys_mod.load_signing_key(sp),
            "approver": keys_mod.load_signing_key(ap),
            "spub": spub,
            "apub": apub,
        }
        plain, probed, own, confirms = [], [], [], []
        for i in range(ROUNDS):
            plain.append(_apply(base / f"p{i}", repo, keys, None, False)[0])
            took, probes, _ = _apply(base / f"h{i}", repo, keys, port, False)
            probed.append(took)
            own.append(probes)
            confirms.append(_apply(base / f"c{i}", repo, keys, port, True)[2])
    finally:
        server.shutdown()
        server.server_close()
        shutil.rmtree(base, ignore_errors=True)
    p, h, o = statistics.median(plain), statistics.median(probed), statistics.median(own)
    c = statistics.median(confirms)
    overhead = h - p - o
    return {
        "plain_s": round(p, 3),
        "probed_s": round(h, 3),
        "probe_s": round(o, 3),
        "overhead_s": round(overhead, 3),
        "confirm_s": round(c, 3),
        "goal_s": GOAL_S,
        "goal_met": overhead <= GOAL_S and c <= GOAL_S,
    }


if __name__ == "__main__":
    socket.setdefaulttimeout(None)
    print(run())
