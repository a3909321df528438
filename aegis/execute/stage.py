"""Workflow stages backed by aegisd: ``executor_status`` (resume) and ``revoker`` (cancel).

Registered in :data:`aegis.workflow.stages.STAGES`. ``executor_status`` only *asks*
aegisd's ledger (socket, else the ledger file when readable) and never re-runs:
``started`` without ``finished`` -> ``interrupt`` (unless aegisd says it is running
now: None); ``finished`` -> ``finish`` or ``fail`` with the recorded result; no row ->
None (the run has not started).
``revoker`` burns a signed request's execution id through aegisd.

Example:
    >>> make_status(cfg).status(request, execution_plan_bytes).trigger
    'interrupt'
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from aegis.audit.stage import request_audit_verifies
from aegis.errors import EnvironmentFailure
from aegis.execute import ledger as ledger_mod
from aegis.execute.client import ledger_status
from aegis.execute.service import _result_artifact, as_result, revoke
from aegis.execute.verify_client import next_step
from aegis.sign.execution_plan import parse_execution_plan
from aegis.workflow.stages import StageOutcome

if TYPE_CHECKING:
    from aegis.config import Config
    from aegis.workflow.records import RequestRecord
    from aegis.workflow.stages import StageOutcome


def _execution_id(execution_plan: bytes) -> str:

    return parse_execution_plan(execution_plan).execution_id


@dataclass(frozen=True)
class ExecutorStatusStage:
    """Asks aegisd's ledger what happened to an applying request."""

    cfg: Config

    def status(self, request: RequestRecord, execution_plan: bytes | None) -> StageOutcome | None:
        """Return ``finish``/``fail``/``interrupt``, or None while nothing started.

        Raises:
            EnvironmentFailure: neither aegisd nor its ledger can be asked.
        """
        if execution_plan is None:
            return None
        xid = _execution_id(execution_plan)
        status = ledger_status(self.cfg, xid)
        if status is None:
            raise EnvironmentFailure(
                f"cannot ask aegisd's ledger about execution {xid}",
                hint="start aegisd, or run resume as a user that may read the ledger",
            )
        if status.state == ledger_mod.STARTED and (status.result or {}).get("running"):
            return None  # aegisd says the run is going on now: not interrupted, not yet done
        if status.state == ledger_mod.STARTED:
            return StageOutcome(
                trigger="interrupt",
                evidence={
                    "reason": "aegisd recorded started without finished; never re-run",
                    "execution_id": xid,
                },
                note=f"execution {xid} interrupted (needs aegisctl resolve)",
            )
        if status.state in (ledger_mod.FINISHED, ledger_mod.REVOKED):
            result = as_result(status)
            body, path = _result_artifact(self.cfg, xid, result)
            return StageOutcome(
                trigger="finish" if result.ok else "fail",
                artifact_kind="executor-result",
                artifact=body,
                artifact_path=str(path),
                evidence={"execution_id": xid, "reason": result.message[:200]},
                note=f"execution {xid}: {result.message}",
            )
        return None


def has_verification(execution_plan: bytes | None) -> bool:
    """True when the signed plan holds its change to health probes (aegis/health)."""
    return execution_plan is not None and (
        parse_execution_plan(execution_plan).verification is not None
    )


def verification_step(
    cfg: Config, request: RequestRecord, execution_plan: bytes | None
) -> StageOutcome | None:
    """The next step recording aegisd's verification of the request's run, or None.

    None too when the signed plan carries no verification: the request is audited as before.

    Raises:
        EnvironmentFailure: neither aegisd nor its ledger can be asked.
    """
    if execution_plan is None:
        return None
    ep = parse_execution_plan(execution_plan)
    if ep.verification is None:
        return None
    status = ledger_status(cfg, ep.execution_id)
    if status is None:
        raise EnvironmentFailure(
            f"cannot ask aegisd's ledger about the verification of {ep.execution_id}",
            hint="start aegisd, or run resume as a user that may read the ledger",
        )
    v = (status.result or {}).get("verification") or {}
    audited = v.get("state") == "passed" and request_audit_verifies(cfg, request.id)
    step = next_step(request.state, ep.execution_id, v, audited)
    if step is None:
        return None
    trigger, evidence = step
    return StageOutcome(
        trigger=trigger,
        evidence=evidence,
        note=f"execution {ep.execution_id}: verification {v.get('state')}",
    )


@dataclass(frozen=True)
class RevokerStage:
    """Revokes a signed request's execution id in aegisd's ledger."""

    cfg: Config

    def revoke(self, request: RequestRecord, execution_plan: bytes) -> None:
        """Burn the id, or raise an AegisError (aegisd unreachable, already used)."""
        revoke(self.cfg, _execution_id(execution_plan), f"request {request.id} cancelled")


def make_status(cfg: Config) -> ExecutorStatusStage:
    """Factory registered as ``executor_status``."""
    return ExecutorStatusStage(cfg)


def make_revoker(cfg: Config) -> RevokerStage:
    """Factory registered as ``revoker``."""
    return RevokerStage(cfg)
