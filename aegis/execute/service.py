"""The client half of execution: what ``aegisctl apply``/``revoke`` and ``aegis resume`` call.

:func:`apply` verifies the execution plan locally first (the signing engineer's
offline checks, with the public key the operator names), then submits it to
aegisd over its socket and moves the request along its lifecycle:
``signed -> applying`` before submitting, then ``applying -> applied`` (exit 0) or
``-> failed`` (a refusal or a non-zero exit), or ``-> interrupted`` when aegisd
vanished after recording ``started``; finally ``applied -> audited`` only when
the request's audit events verify against aegisd's audit key.

A request found in ``applying`` is never run again blindly: aegisd's ledger is
asked first. No ledger row means the run never started (aegisd died before
``started``), so submitting the same plan again is safe; ``started`` without
``finished`` becomes ``interrupted``; ``finished`` records the recorded result.

Exit codes (docs/design.md "Errors and exit codes") whenever the run did not succeed:
4 trust refusal, 5 policy, 6 replay/state (also: another client's run of the same id is
going on), 7 a retryable refusal (``refused:dpkg-locked``, ``refused:audit-log``: nothing
ran, the request is not failed) or a run whose audit events could not be written,
9 the command failed, 10 outcome unknown.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from aegis.audit.stage import AUDIT_REASON, request_audit_verifies
from aegis.bounds import EXECUTION_ID_RE
from aegis.canonical import canonical_bytes
from aegis.config import Config
from aegis.ecosystems import for_tool
from aegis.errors import (
    AegisError,
    EnvironmentFailure,
    ExecutionFailed,
    InputError,
    OutcomeUnknown,
    StateError,
)
from aegis.execute import ledger as ledger_mod
from aegis.execute import verify_client
from aegis.execute.client import RETRYABLE, _refusal_error, ledger_status, socket_path
from aegis.execute.protocol import Answer, Request, answer_to_dict, call
from aegis.execute.rederive import this_host
from aegis.sign.checks import verify_offline
from aegis.sign.files import approver_keys_from_args
from aegis.sign.refusals import CheckStep
from aegis.workflow import access
from aegis.workflow.files import write_atomic

MAX_FILE_BYTES = 4 * 1024 * 1024
ACTOR = "aegisctl"


@dataclass(frozen=True)
class ApplyOutcome:
    """What ``aegisctl apply`` reports."""

    execution_id: str
    request_id: str | None
    state: str | None
    """The request's state afterwards (None without a request)."""
    answer: dict[str, Any]
    checks: list[dict[str, Any]] = field(default_factory=list)
    audited: bool = False
    result_path: str | None = None


def read_execution_plan(path: Path) -> bytes:
    """Read an execution plan file with a size cap.

    Raises:
        InputError: missing, unreadable or too large.
    """
    try:
        with path.open("rb") as f:
            data = f.read(MAX_FILE_BYTES + 1)
    except OSError as e:
        raise InputError(f"cannot read execution plan {path}: {e.strerror}") from e
    if len(data) > MAX_FILE_BYTES:
        raise InputError(f"execution plan {path} is larger than {MAX_FILE_BYTES} bytes")
    return data


def verify_locally(
    cfg: Config, data: bytes, public_key_hex: str, approval_keys: tuple[str, ...], now: datetime
) -> tuple[Any, list[dict[str, Any]]]:
    """Run the offline checks; raise the first refusal.

    Without ``--approval-public-key-hex`` the approvals step is left to aegisd (which
    trusts only its own configured approver keys).

    Raises:
        RefusedError: a named refusal (exit 3, 4 or 5).
    """
    ep, results = verify_offline(
        data,
        trusted_signer_keys=[public_key_hex.strip().lower()],
        trusted_approver_keys=approver_keys_from_args(approval_keys, "--approval-public-key-hex"),
        now=now,
        host=this_host(cfg),
        derive_argv=lambda p: for_tool(p.intent.tool).derive_argv(p, cfg),
    )
    rows = []
    for r in results:
        ok = r.ok
        if r.step == CheckStep.APPROVALS and not approval_keys and ok is False:
            ok = None  # aegisd decides with its own approver keys
        rows.append({"step": r.step.value, "ok": ok, "detail": r.detail})
        if ok is False and r.refusal is not None:
            raise r.refusal.error()
    return ep, rows


def _advance(cfg: Config, request_id: str, trigger: str, **kw: Any) -> str:

    return access.advance(cfg, request_id, trigger, ACTOR, **kw).state


def _result_artifact(cfg: Config, execution_id: str, answer: Answer) -> tuple[bytes, Path]:
    body = canonical_bytes(
        {
            "schema_version": "aegis.executor-result/1",
            "execution_id": execution_id,
            **answer_to_dict(answer),
        }
    )

    # The store is group-writable and the name predictable: never through a planted link.
    path = cfg.state_dir / "results" / f"{execution_id}.result.json"
    write_atomic(path, body + b"\n", host_install=cfg.home is None)
    return body, path


def as_result(status: Answer) -> Answer:
    """A ledger status answer as the run's result (ok only for finished with exit 0)."""
    ok = status.state == ledger_mod.FINISHED and status.exit_status == 0
    message = f"recorded by aegisd's ledger: {status.state}"
    if status.state == ledger_mod.FINISHED:
        message += f", exit {status.exit_status}"
    return Answer(
        ok=ok,
        message=message,
        execution_id=status.execution_id,
        state=status.state,
        exit_status=status.exit_status,
        result=status.result,
    )


def _audit(cfg: Config, request_id: str) -> bool:
    """Move a request from applied to audited once its audit events verify."""
    if not request_audit_verifies(cfg, request_id):
        return False
    _advance(cfg, request_id, "audit", evidence={"reason": AUDIT_REASON})
    return True


def apply(
    cfg: Config,
    execution_plan_path: Path,
    public_key_hex: str,
    *,
    approval_keys: tuple[str, ...] = (),
    socket: Path | None = None,
    now: datetime | None = None,
) -> ApplyOutcome:
    """Verify locally, submit to aegisd, and advance the request.

    Raises:
        InputError, TrustError, PolicyDenied, StateError: refused (locally or by aegisd).
        EnvironmentFailure: aegisd is not reachable (nothing changed).
        ExecutionFailed: the command ran and failed (request failed).
        OutcomeUnknown: aegisd vanished after ``started`` (request interrupted).
    """
    now = now or datetime.now(UTC)
    data = read_execution_plan(execution_plan_path)
    ep, checks = verify_locally(cfg, data, public_key_hex, approval_keys, now)
    sock = socket_path(cfg, socket)
    request = None
    if ep.request_id:
        request = access.get_request(cfg, ep.request_id)
    elif ep.plan_hash:
        request = access.find_request_by_plan(cfg, ep.plan_hash)
    request_id = request.id if request else None
    xid = ep.execution_id
    if request is not None and request.state == "applying":
        status = ledger_status(cfg, xid, sock)
        if status is None:
            raise EnvironmentFailure(
                f"aegisd is not reachable at {sock}; cannot tell whether execution {xid} started"
            )
        done = _from_ledger(
            cfg,
            request_id,
            xid,
            status,
            checks,
            reason="aegisd recorded started without finished",
            sock=sock,
        )
        if done is not None:
            return done
        # No row: aegisd died before "started"; the id is unused, submit again.
    elif request is not None and request.state != "signed":
        raise StateError(
            f"request {request_id} is {request.state}, not signed; an execution plan runs once"
        )
    else:
        # Reachable, and not refusing for a reason that would burn the request, before we
        # move it: a busy dpkg lock or an unusable audit log leaves it signed.
        ready = call(sock, Request(op="ping"), timeout_s=10)
        for code, key in (
            ("refused:dpkg-locked", "dpkg_locked"),
            ("refused:audit-log", "audit_log"),
        ):
            problem = (ready.result or {}).get(key)
            if problem:
                raise _refusal_error(code, str(problem)[:500])
        if request_id:
            _advance(cfg, request_id, "start", evidence={"execution_id": xid})
    try:
        answer = call(
            sock, Request(op="apply", execution_plan=data.decode("utf-8"), request_id=request_id)
        )
    except EnvironmentFailure as e:
        return _after_broken(cfg, request_id, xid, sock, checks, e=e)
    return _record(cfg, request_id, xid, answer, checks, sock=sock)


def _after_broken(
    cfg: Config,
    request_id: str | None,
    xid: str,
    sock: str,
    checks: list[dict[str, Any]],
    *,
    e: EnvironmentFailure,
) -> ApplyOutcome:
    """The connection broke mid-request: only aegisd's ledger knows what happened.

    Raises:
        OutcomeUnknown: the run started and did not finish, or nobody can tell.
        StateError: it is still running (aegisd answered).
    """
    time.sleep(0.2)
    status = ledger_status(cfg, xid, sock)
    if status is None:
        # Neither aegisd nor a ledger copy this user may read: say only what is known.
        raise OutcomeUnknown(
            f"aegisd went away while handling {xid} ({e.message}); state unknown: "
            "whether it started cannot be read by this user",
            hint="aegisctl apply the same execution plan again once aegisd is back "
            "(it asks aegisd first), or as root: aegisctl resolve",
        ) from e
    done = _from_ledger(
        cfg, request_id, xid, status, checks, reason=f"aegisd went away: {e.message}", sock=sock
    )
    if done is not None:
        return done
    raise OutcomeUnknown(
        f"aegisd went away before starting {xid} ({e.message}); nothing ran",
        hint="submit the same execution plan again once aegisd is back",
    ) from e


def _from_ledger(
    cfg: Config,
    request_id: str | None,
    xid: str,
    status: Answer,
    checks: list[dict[str, Any]],
    *,
    reason: str,
    sock: str | None = None,
) -> ApplyOutcome | None:
    """Settle an ``applying`` request from aegisd's ledger; None when no row (never ran).

    Raises:
        StateError: the run is going on now, for another client (the request is its).
        OutcomeUnknown: ``started`` with no run going on: the request is interrupted.
    """
    if status.state == ledger_mod.STARTED and (status.result or {}).get("running"):
        raise StateError(
            f"execution {xid} is running now (submitted by another client); "
            f"request {request_id} is left to that run",
            hint=f"aegis show {request_id} once it has finished",
        )
    if status.state == ledger_mod.STARTED:
        if request_id:
            _advance(cfg, request_id, "interrupt", evidence={"reason": reason, "execution_id": xid})
        raise OutcomeUnknown(
            f"execution {xid} was interrupted; request {request_id} is never re-run",
            hint=f"check dpkg, then aegisctl resolve {request_id} --as applied|failed",
        )
    if status.state in (ledger_mod.FINISHED, ledger_mod.REVOKED):
        return _record(cfg, request_id, xid, as_result(status), checks, sock=sock)
    return None


def _record(
    cfg: Config,
    request_id: str | None,
    xid: str,
    answer: Answer,
    checks: list[dict[str, Any]],
    *,
    sock: str | None = None,
) -> ApplyOutcome:
    """Turn aegisd's answer into the request's next state and the CLI's outcome."""
    verification = (answer.result or {}).get("verification") if answer.ok else None
    state: str | None = None
    path: Path | None = None
    audited = False
    if not answer.ok and answer.refusal in (*RETRYABLE, "refused:replayed"):
        # Nothing ran for this submission: a retryable refusal leaves the id unused, and a
        # replay means another submission owns the id; that run records its own result.
        request_id_kept, request_id = request_id, None
    else:
        request_id_kept = None
    if request_id:
        body, path = _result_artifact(cfg, xid, answer)
        if answer.ok:
            state = _advance(
                cfg,
                request_id,
                "finish",
                artifact_kind="executor-result",
                artifact=body,
                artifact_path=str(path),
                evidence={"execution_id": xid},
            )
            if verification:
                # Health probes decide whether the change is kept (aegis/execute/verifier.py).
                state, verification = verify_client.settle(cfg, request_id, xid, sock, verification)
                audited = state == "audited"
            else:
                audited = _audit(cfg, request_id)
                state = "audited" if audited else state
        else:
            state = _advance(
                cfg,
                request_id,
                "fail",
                artifact_kind="executor-result",
                artifact=body,
                artifact_path=str(path),
                evidence={"execution_id": xid, "reason": answer.refusal or answer.message[:200]},
            )
    outcome = ApplyOutcome(
        xid,
        request_id or request_id_kept,
        state,
        answer_to_dict(answer),
        checks,
        audited,
        str(path) if path else None,
    )
    verify_client.raise_if_restored(outcome, verification)
    audit_error = (answer.result or {}).get("audit_error")
    if answer.ok and audit_error:
        err: AegisError = EnvironmentFailure(
            f"execution {xid} ran (exit 0) but aegisd's audit log failed: {audit_error}",
            hint="free the log's file system; aegis audit verify; the request is not audited",
        )
        err.outcome = outcome  # type: ignore[attr-defined]
        raise err
    if answer.ok:
        return outcome
    if answer.refusal:
        err = _refusal_error(answer.refusal, answer.message)
    elif answer.state == ledger_mod.REVOKED:
        err = StateError(f"execution id {xid} was revoked")
    else:
        err = ExecutionFailed(f"execution {xid} failed: {answer.message}")
    err.outcome = outcome  # type: ignore[attr-defined]
    raise err


def revoke(cfg: Config, execution_id: str, reason: str, *, socket: Path | None = None) -> Answer:
    """Burn an execution id in aegisd's ledger.

    Raises:
        InputError: no reason.
        StateError: the id already ran.
        EnvironmentFailure: aegisd is not reachable.
    """
    if not reason.strip():
        raise InputError("a reason is required to revoke")
    if not EXECUTION_ID_RE.match(execution_id):
        raise InputError(
            f"not an execution id: {execution_id[:80]!r}",
            hint="32 lower-case hex characters, as in execution-plans/<execution_id>.json",
        )
    answer = call(
        socket_path(cfg, socket), Request(op="revoke", execution_id=execution_id, reason=reason)
    )
    if not answer.ok:
        raise _refusal_error(answer.refusal, answer.message)
    return answer
