"""What the npm, pip, Go and Cargo figures share: environment, keys, signing, aegisd, timing.

Not a benchmark itself (the runner skips modules named ``_*``). Each figure module keeps
its own rounds and its own JSON keys; :func:`apply_figures` writes the apply keys they
have in common, unchanged.
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parents[2]
"""The repository: every CLI and aegisd run imports Aegis from here."""


def env_for(home: Path) -> dict[str, str]:
    """This process's environment with a private AEGIS_HOME and no other AEGIS_* setting."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AEGIS_")}
    env.update(AEGIS_HOME=str(home), AEGIS_HOST_ID="bench-host", AEGIS_AUDIT_SYSLOG="0",
               PYTHONPATH=str(HERE))  # fmt: skip
    return env


def keyset(where: Path) -> dict[str, Any]:
    """A signer and an approver key pair written under ``where``: keys and public hex."""
    from aegis.sign import keys

    sp, spub = keys.write_keypair(where, "signer")
    ap, apub = keys.write_keypair(where, "approver")
    return {"signer": keys.load_signing_key(sp), "approver": keys.load_signing_key(ap),
            "spub": spub, "apub": apub}  # fmt: skip


def sign(cfg: Any, plan: Any, signer: Any, approver: Any) -> bytes:
    """The signed execution plan of ``plan`` (approved when its decision asks for it)."""
    from aegis.ecosystems import for_tool
    from aegis.execute.apply import binding_from_result
    from aegis.model import plan_hash
    from aegis.policy.engine import evaluate
    from aegis.policy.result import result_hash
    from aegis.policy.run import load_policy
    from aegis.sign.approvals import build_approval
    from aegis.sign.execution_plan import build_execution_plan, execution_plan_bytes

    now = datetime.now(UTC)
    result = evaluate(plan, None, load_policy(cfg), now)
    approvals: tuple[Any, ...] = ()
    if result.controls.approval.count:
        approvals = (
            build_approval(plan_id=plan.plan_id, plan_hash=plan_hash(plan),
                           policy_hash=result_hash(result), approver_id="bob", role="approver",
                           reason="bench", now=now, expires_in=timedelta(hours=1),
                           key=approver),
        )  # fmt: skip
    ep = build_execution_plan(
        execution_id=secrets.token_hex(16), request_id=None, plan=plan,
        policy=binding_from_result(result), review_hash=None, approvals=approvals,
        argv=for_tool(plan.intent.tool).derive_argv(plan, cfg), now=now,
        expires_in=timedelta(hours=1), signer_id="alice", key=signer,
    )  # fmt: skip
    return execution_plan_bytes(ep)


def timed(
    argv: list[str] | tuple[str, ...],
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
    timeout: float = 300,
) -> float:
    """Seconds one command took; it must succeed."""
    t0 = time.perf_counter()
    subprocess.run(argv, env=env, check=True, capture_output=True, cwd=cwd, timeout=timeout)
    return time.perf_counter() - t0


@contextmanager
def aegisd(env: dict[str, str], keys: dict[str, Any]) -> Iterator[Path]:
    """An aegisd on a private socket, answering pings; stopped on exit."""
    from aegis.execute.protocol import Request, call

    sock = Path(tempfile.mkdtemp(prefix="aegisd-bench-", dir="/tmp")) / "s.sock"
    proc = subprocess.Popen(
        [sys.executable, "-m", "aegis.execute.aegisd", "--socket", str(sock),
         "--public-key-hex", keys["spub"], "--approval-public-key-hex", keys["apub"]],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=HERE,
    )  # fmt: skip
    try:
        for _ in range(300):
            try:
                call(str(sock), Request(op="ping"), timeout_s=5)
                break
            except Exception:
                time.sleep(0.02)
        yield sock
    finally:
        proc.terminate()
        proc.wait()
        shutil.rmtree(sock.parent, ignore_errors=True)


def through_aegisd(cfg: Any, env: dict[str, str], ep: Path, spub: str, sock: Path) -> float:
    """Seconds ``service.apply`` of the signed plan ``ep`` took through aegisd; it must apply."""
    from aegis.execute import service

    old = dict(os.environ)
    os.environ.clear()
    os.environ.update(env)
    try:
        t0 = time.perf_counter()
        out = service.apply(cfg, ep, spub, socket=sock)
        took = time.perf_counter() - t0
    finally:
        os.environ.clear()
        os.environ.update(old)
    assert out.answer["ok"], out.answer
    return took


def apply_figures(prefix: str, raw: float, through: float, *, net: bool) -> dict[str, Any]:
    """The apply keys (goal <= 1.3x + 0.3 s); ``net``: also the ratio with 0.3 s taken off."""
    out: dict[str, Any] = {
        f"{prefix}_raw_s": round(raw, 3),
        f"{prefix}_aegisd_s": round(through, 3),
        f"{prefix}_ratio": round(through / raw, 2),
    }
    if net:  # the goal with its allowance taken off first: <= 1.3 when the goal is met
        out[f"{prefix}_ratio_net"] = round((through - 0.3) / raw, 2)
    out[f"{prefix}_goal_s"] = round(1.3 * raw + 0.3, 3)
    out[f"{prefix}_goal_met"] = through <= 1.3 * raw + 0.3
    return out
