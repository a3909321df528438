"""Apply figure (issues 5, 20): signed apply through aegisd vs the same apt-get run directly.

Both sides install the same fixture (``aegis-tool`` and its dependency) into identical
fresh throwaway roots built from the same signed test repository, in this one run:

- ``direct_s``: ``apt-get install --trivial-only -- aegis-base=1.2 aegis-tool=2.0`` run
  directly with the root's private APT_CONFIG.
- ``aegisd_s``: ``aegis.execute.service.apply`` of a signed execution plan: local
  verification, submission over aegisd's socket, aegisd's checks (signature, host, time,
  ledger, approvals, its own re-derivation, policy, argv), ``dpkg --audit``, snapshot
  decision, the exact-file binding (each planned .deb fetched by its planned URI and
  verified by its planned SHA-256 into aegisd's root-only directory; apt installs those
  files with no source list: docs/apt-trust.md "One file from plan to install"), ledger
  ``started``/``finished`` (fsync'd), the run, dpkg status comparison and the fsync'd
  audit events with a checkpoint.

Medians over ROUNDS fresh root pairs. Goal: ``aegisd_s <= 1.5 * direct_s + 0.3``.
``fetch_s`` is the binding's own share of ``aegisd_s`` (aegisd's ``fetched.duration_ms``).
"""

from __future__ import annotations

import os
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROUNDS = 3
SET = ("aegis-base=1.2", "aegis-tool=2.0")
"""What both sides install (the direct side names it; aegisd's plan resolves to it)."""
HERE = Path(__file__).resolve().parents[2]


def _policy(repo: Any) -> str:
    default = (HERE / "aegis/policy/default_policy.toml").read_text()
    return default + (
        f'\n[[sources]]\nname = "test"\nuri = "{repo.uri}"\nsuite = "{repo.suite}"\n'
        f'component = "main"\nsigner_fingerprint = "{repo.fingerprint}"\npackages = ["aegis-*"]\n'
    )


def _sign(cfg: Any, signer: Any, approver: Any) -> bytes:
    from aegis.ecosystems.apt.argv import derive_argv
    from aegis.ecosystems.apt.plan import analyze_apt
    from aegis.execute.apply import binding_from_result
    from aegis.model import Intent, Operation, Tool, plan_hash
    from aegis.policy.engine import evaluate
    from aegis.policy.result import result_hash
    from aegis.policy.run import load_policy
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
    )
    return execution_plan_bytes(ep)


def _round(
    tmp: Path, repo: Any, *, signer: Any, spub: str, approver: Any, apub: str
) -> tuple[float, float, float]:
    from aegis.config import load_config
    from aegis.devtools import testrepo
    from aegis.execute import service
    from aegis.execute.protocol import Request, call

    direct_root = testrepo.make_root(tmp / "direct", [repo])
    testrepo.apt_update(direct_root)
    root = testrepo.make_root(tmp / "aegisd", [repo])
    testrepo.apt_update(root)
    home = tmp / "home"
    env = {k: v for k, v in os.environ.items() if not k.startswith("AEGIS_")}
    env.update(
        AEGIS_HOME=str(home),
        AEGIS_HOST_ID="bench-host",
        AEGIS_AUDIT_SYSLOG="0",
        AEGIS_APT_CONFIG=str(root.apt_config),
        AEGIS_DPKG_ROOT=str(root.root),
        PYTHONPATH=str(HERE),
    )
    cfg = load_config(env)
    cfg.etc_dir.mkdir(parents=True, exist_ok=True)
    cfg.policy_path.write_text(_policy(repo))
    data = _sign(cfg, signer, approver)
    ep_path = tmp / "ep.json"
    ep_path.write_bytes(data)
    sock = Path(tempfile.mkdtemp(prefix="aegisd-bench-", dir="/tmp")) / "s.sock"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "aegis.execute.aegisd",
            "--socket",
            str(sock),
            "--public-key-hex",
            spub,
            "--approval-public-key-hex",
            apub,
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
        t0 = time.perf_counter()
        testrepo.run_apt(direct_root, "install", "--trivial-only", "--", *SET)
        direct = time.perf_counter() - t0
        old = dict(os.environ)
        os.environ.clear()
        os.environ.update(env)
        try:
            t0 = time.perf_counter()
            out = service.apply(cfg, ep_path, spub, socket=sock)
            through = time.perf_counter() - t0
        finally:
            os.environ.clear()
            os.environ.update(old)
        assert out.answer["ok"], out.answer
        fetched = out.answer["result"]["fetched"]
        # The binding ran: aegis-base and aegis-tool, each by its verified file.
        assert fetched["files"] == len(SET), fetched
    finally:
        proc.terminate()
        proc.wait()
        shutil.rmtree(sock.parent, ignore_errors=True)
    return direct, through, fetched["duration_ms"] / 1000


def run() -> dict[str, Any]:
    """Median seconds of both sides, their ratio and whether the goal holds."""
    from aegis.devtools import testrepo
    from aegis.sign import keys

    base = Path(tempfile.mkdtemp(prefix="aegis-bench-apply-"))
    try:
        repo = testrepo.build_repo(base / "repo")
        sp, spub = keys.write_keypair(base / "keys", "signer")
        ap, apub = keys.write_keypair(base / "keys", "approver")
        signer, approver = keys.load_signing_key(sp), keys.load_signing_key(ap)
        directs, throughs, fetches = [], [], []
        for i in range(ROUNDS):
            d, t, f = _round(
                base / f"r{i}", repo, signer=signer, spub=spub, approver=approver, apub=apub
            )
            directs.append(d)
            throughs.append(t)
            fetches.append(f)
    finally:
        shutil.rmtree(base, ignore_errors=True)
    direct, through = statistics.median(directs), statistics.median(throughs)
    return {
        "direct_s": round(direct, 3),
        "aegisd_s": round(through, 3),
        "aegisd_over_direct": round(through / direct, 2),
        "fetch_s": round(statistics.median(fetches), 3),
        "exact_file_binding": True,
        "goal_s": round(1.5 * direct + 0.3, 3),
        "goal_met": through <= 1.5 * direct + 0.3,
    }


if __name__ == "__main__":
    print(run())
