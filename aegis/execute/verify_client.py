"""The client half of verification: record in the request what aegisd's verifier decided.

aegisd decides (aegis/execute/verifier.py); the request's lifecycle only records it,
from aegisd's answers: ``applied -> verifying`` once the run's answer names a
verification, then ``verifying -> audited`` when it passed (and the request's audit
events verify), or ``verifying -> rolling_back -> rolled_back`` (``rollback_failed``)
when aegisd restored the snapshot. ``aegisctl apply`` waits for the outcome unless
policy asks for a human confirmation; ``aegisctl confirm`` and ``aegis resume`` settle
it later. Every step here is read from aegisd's ledger, so running one twice is harmless.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from aegis.audit.stage import request_audit_verifies
from aegis.errors import AegisError, ExecutionFailed, StateError
from aegis.execute.client import _refusal_error, ledger_status, socket_path
from aegis.execute.protocol import Request, call
from aegis.sign.execution_plan import parse_execution_plan
from aegis.workflow import access

if TYPE_CHECKING:
    from aegis.config import Config

ACTOR = "aegisctl"
POLL_S = 0.1
GRACE_S = 900.0
"""How long past the deadline ``aegisctl apply`` waits for aegisd's restore to finish."""
WAITING = ("pending", "verifying", "rolling-back")


def needs_human(v: dict[str, Any]) -> bool:
    """True while only an operator's ``aegisctl confirm`` can settle ``v``."""
    return (
        v.get("state") == "verifying" and bool(v.get("confirm")) and v.get("confirmed_by") is None
    )


def poll(cfg: Config, xid: str, sock: str | None, v: dict[str, Any]) -> dict[str, Any]:
    """Ask aegisd until ``v`` settles or only a human can settle it."""
    # aegisd decides by its deadline; past it (plus a restore's time) the client stops
    # waiting and leaves the request verifying for aegis resume.
    give_up = time.monotonic() + _seconds_left(v) + GRACE_S
    while v.get("state") in WAITING and not needs_human(v) and time.monotonic() < give_up:
        time.sleep(POLL_S)
        status = ledger_status(cfg, xid, sock)
        if status is None:
            return v
        v = (status.result or {}).get("verification") or v
    return v


def _seconds_left(v: dict[str, Any]) -> float:

    try:
        deadline = datetime.fromisoformat(str(v.get("deadline")).replace("Z", "+00:00"))
    except ValueError:
        return 0.0
    return max(0.0, (deadline - datetime.now(UTC)).total_seconds())


def _state(cfg: Config, request_id: str) -> str:

    return access.get_request(cfg, request_id).state


def _fire(cfg: Config, request_id: str, trigger: str, evidence: dict[str, Any]) -> str:

    return access.advance(cfg, request_id, trigger, ACTOR, evidence=evidence).state


def next_step(
    state: str, xid: str, v: dict[str, Any], audited: bool
) -> tuple[str, dict[str, Any]] | None:
    """The trigger (and its evidence) that records aegisd's verification ``v`` next. Pure.

    None when the request already says what ``v`` says, or ``v`` is still open.
    """
    ev: dict[str, Any] = {"execution_id": xid}
    settled = v.get("state")
    restored = ("rolling-back", "rolled-back", "rollback-failed")
    why = {"cause": v.get("cause") or "", "reason": str(v.get("detail") or settled)[:200], **ev}
    if state == "applied" and settled in (*WAITING, "passed", *restored):
        return "verify", ev
    if state == "verifying" and settled == "passed" and audited:
        return "verified", {"reason": "health probes passed", "verification": "passed", **ev}
    if state == "verifying" and settled in restored:
        return "roll_back", why
    if state == "rolling_back" and settled == "rolled-back":
        return "rolled_back", why
    if state == "rolling_back" and settled == "rollback-failed":
        return "rollback_failed", why
    return None


def record(cfg: Config, request_id: str, xid: str, v: dict[str, Any]) -> str:
    """Move the request as far as aegisd's verification ``v`` says; return its state."""
    state = _state(cfg, request_id)
    for _ in range(3):
        audited = v.get("state") == "passed" and request_audit_verifies(cfg, request_id)
        step = next_step(state, xid, v, audited)
        if step is None:
            break
        state = _fire(cfg, request_id, *step)
    return state


def settle(
    cfg: Config, request_id: str, xid: str, sock: str | None, v: dict[str, Any]
) -> tuple[str, dict[str, Any]]:
    """Wait for aegisd's verdict (unless a human must confirm) and record it."""
    v = poll(cfg, xid, sock, v)
    return record(cfg, request_id, xid, v), v


def raise_if_restored(outcome: Any, v: dict[str, Any] | None) -> None:
    """Put the verification in ``aegisctl apply``'s outcome; raise when it was restored.

    Raises:
        ExecutionFailed: aegisd rolled the change back (or failed to).
    """
    if not v:
        return
    outcome.answer.setdefault("result", {})["verification"] = v
    failed = outcome_error(outcome.execution_id, outcome.request_id, v)
    if failed is not None:
        failed.outcome = outcome  # type: ignore[attr-defined]
        raise failed


def outcome_error(xid: str, request_id: str | None, v: dict[str, Any]) -> AegisError | None:
    """The error ``aegisctl`` exits with for a restored change (None when kept or open)."""
    detail = str(v.get("detail") or "")[:300]
    if v.get("state") == "rolled-back":
        return ExecutionFailed(
            f"execution {xid} was rolled back by aegisd ({v.get('cause')}): {detail}",
            hint=f"aegis audit show --request {request_id}" if request_id else None,
        )
    if v.get("state") == "rollback-failed":
        return ExecutionFailed(
            f"execution {xid} failed its health probes and the restore failed: {detail}",
            hint="check dpkg (dpkg --audit), then plan a rollback or recovery",
        )
    return None


def confirm(cfg: Config, request_id: str, *, socket: Any = None) -> tuple[str, dict[str, Any]]:
    """``aegisctl confirm REQUEST``: ask aegisd to keep the change, then record the outcome.

    Raises:
        StateError: the request is not verifying, or aegisd refused (not asked, too late).
        TrustError: the caller may not submit to aegisd.
        EnvironmentFailure: aegisd is not reachable.
    """
    rec = access.get_request(cfg, request_id)
    if rec.state not in ("applied", "verifying"):
        raise StateError(f"request {request_id} is {rec.state}, not verifying")
    found = access.latest_artifact(cfg, request_id, "execution-plan")
    if found is None:
        raise StateError(f"request {request_id} has no execution plan")
    xid = parse_execution_plan(found[1]).execution_id
    sock = socket_path(cfg, socket)
    answer = call(sock, Request(op="confirm", execution_id=xid, request_id=request_id))
    if not answer.ok:
        raise _refusal_error(answer.refusal, answer.message)
    v = poll(cfg, xid, sock, (answer.result or {}).get("verification") or {})
    state = record(cfg, request_id, xid, v)
    err = outcome_error(xid, request_id, v)
    if err is not None:
        raise err
    return state, v
