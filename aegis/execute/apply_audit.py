"""The audit log and the child environment around aegisd's run (aegis/execute/apply.py).

A log that cannot take ``apply-started`` is the refusal ``refused:audit-log`` while the
execution id is still unused. Once the run happened, a failed ``apply-finished`` or
checkpoint does not change what happened: the answer says so (``audit_error``), the
client exits non-zero and the request stays short of ``audited``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from aegis.early.npm_tool import NPM
from aegis.ecosystems.npm import logs_dir as npm_logs_dir
from aegis.errors import AegisError
from aegis.execute import ledger as ledger_mod
from aegis.execute.dpkg_lock import run_apt_config
from aegis.execute.protocol import Answer

if TYPE_CHECKING:
    from aegis.execute.daemon import Aegisd
    from aegis.execute.runner import RunResult
    from aegis.sign.execution_plan import ExecutionPlan

REFUSED_AUDIT_LOG = "refused:audit-log"


def audit_refusal(e: AegisError) -> str:
    """The refusal message for a log that cannot take ``apply-started``."""
    return f"the audit log cannot be written, nothing ran: {e.message}"


def run_env(
    d: Aegisd, argv: tuple[str, ...], env: dict[str, str], *, dpkg_locked: bool
) -> dict[str, str]:
    """The child's environment; for an apt plan, under aegisd's frontend lock (dpkg_lock.py).

    dpkg is told its frontend holds the lock; apt-get (which cannot be told) runs with
    its own locking off through aegisd's configuration file, except ``update``, which
    takes only the lists lock and keeps it. Other ecosystems' runs hold no dpkg lock, so
    their children are told nothing, except npm, whose debug log stays in aegisd's npm
    cache whatever a project's ``.npmrc`` says.
    """
    if argv and argv[0] == NPM:
        # npm runs as root here and reads the project's own .npmrc (its owner's file):
        # its debug log would be written wherever that file's logs-dir says, a directory
        # npm creates. The environment outranks a project's configuration in npm.
        return {**env, "npm_config_logs_dir": npm_logs_dir(d.cfg)}
    if not dpkg_locked:
        return dict(env)
    out = {**env, "DPKG_FRONTEND_LOCKED": "1"}
    if argv and argv[0] == "/usr/bin/apt-get" and "update" not in argv[1:2]:
        out["APT_CONFIG"] = str(run_apt_config(d.cfg.aegisd_dir, env.get("APT_CONFIG")))
    return out


def audit_finished(
    d: Aegisd, base: dict[str, Any], result: RunResult, details: dict[str, Any]
) -> tuple[dict[str, Any], str | None]:
    """Write ``apply-finished`` and a checkpoint; return the event and what failed, if any.

    The run happened and the ledger says so; a failed append leaves the log as it was
    and is said loudly: in the answer, aegisd's journal and its failure counter.
    """
    audit_error: str | None = None
    event: dict[str, Any] = {}
    try:
        event = d.audit.append(
            "apply-finished",
            {
                **base,
                "exit_status": result.exit_status,
                "output_hashes": {
                    "stdout_sha256": result.stdout_sha256,
                    "stderr_sha256": result.stderr_sha256,
                },
                "details": details,
            },
        )
    except AegisError as e:
        audit_error = f"apply-finished not written: {e.message}"
    problem = d.audit.checkpoint()
    if problem is not None and audit_error is None:
        audit_error = f"checkpoint not written: {problem}"
    return event, audit_error


def finished_answer(
    d: Aegisd,
    ep: ExecutionPlan,
    result: RunResult,
    details: dict[str, Any],
    event: dict[str, Any],
) -> Answer:
    """The answer for a run that happened, whatever its outcome."""
    outcome = details["outcome"]
    message = {
        "succeeded": "applied",
        "timeout": f"timed out after {d.settings.run_timeout_s}s",
        "refused-by-apt-trivial-only": "apt refused: not a trivial operation any more "
        "(a dependency or package changed since signing)",
        "failed": f"command exited {result.exit_status}",
    }[outcome]
    if details["drift"]:
        message += f"; drift: {len(details['drift'])} difference(s) from the signed delta"
    return Answer(
        ok=result.exit_status == 0,
        message=message,
        refusal=None,
        execution_id=ep.execution_id,
        state=ledger_mod.FINISHED,
        exit_status=result.exit_status,
        result={
            **details,
            "argv": list(ep.argv),
            "request_id": ep.request_id,
            "stdout_sha256": result.stdout_sha256,
            "stderr_sha256": result.stderr_sha256,
            "stdout_tail": result.stdout_tail[-4000:],
            "stderr_tail": result.stderr_tail[-4000:],
            "audit_event_hash": event.get("event_hash"),
            "audit_seq": event.get("seq"),
        },
    )
