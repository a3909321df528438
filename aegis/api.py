"""The library API both CLIs and the daemons call (workflow part).

This module is the one import point: the read side (``get_request``, ``list_requests``,
``latest_artifact``, ...) lives in :mod:`aegis.api_reads` and :mod:`aegis.workflow.access`
(the part stages call) and is re-exported here.
Every function takes the :class:`~aegis.config.Config` first, opens the state
store, does one thing and closes it. The clock is read here (the edge) and
passed down; the machine, guards and records stay pure.

Example:
    >>> planned = submit_plan(cfg, plan, actor="alice")
    >>> advance(cfg, planned.request_id, "review", "aegis-reviewd",
    ...         artifact_kind="review", artifact=review_bytes,
    ...         artifact_path=str(review_path)).state
    'reviewed'
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from aegis.api_reads import RequestDetail, get_request_detail, list_requests
from aegis.errors import InputError, StageUnavailableError, StateError
from aegis.users import current_user
from aegis.workflow.access import (
    MAX_ACTOR_CHARS,
    MAX_SUMMARY_CHARS,
    AttachedArtifact,
    PlannedRequest,
    _actor,
    _advance,
    _artifacts,
    advance,
    attach_artifact,
    create_request,
    find_request_by_plan,
    get_request,
    latest_artifact,
    lease_deadline,
    load_artifact,
    new_request_id,
    now_utc,
    open_store,
    request_artifacts,
    submit_plan,
    workflow,
    write_metrics,
)

if TYPE_CHECKING:
    from datetime import datetime

    from aegis.config import Config
    from aegis.workflow.records import RequestRecord
    from aegis.workflow.resume import ResumeReport

__all__ = [
    "MAX_ACTOR_CHARS",
    "MAX_SUMMARY_CHARS",
    "AttachedArtifact",
    "PlannedRequest",
    "RequestDetail",
    "advance",
    "attach_artifact",
    "cancel",
    "create_request",
    "current_user",
    "find_request_by_plan",
    "get_request",
    "get_request_detail",
    "latest_artifact",
    "lease_deadline",
    "list_requests",
    "load_artifact",
    "new_request_id",
    "now_utc",
    "open_store",
    "request_artifacts",
    "resume",
    "submit_plan",
    "workflow",
    "write_metrics",
]


def cancel(cfg: Config, request_id: str, actor: str, reason: str) -> RequestRecord:
    """Cancel a request before ``applying``; a signed request's execution id is revoked first.

    Raises:
        StageUnavailableError: the request is signed and no revoker is available (exit 6);
            it is not cancelled, so nothing pretends the execution id is dead.
        StateError: the request cannot be cancelled from its state (exit 6).
    """
    from aegis.workflow.stages import get_stage

    actor = _actor(actor)
    if not reason.strip():
        raise InputError("a reason is required to cancel")
    with open_store(cfg) as store:
        rec = store.get(request_id)
        history = store.history(rec)
        facts: dict[str, Any] = {"reason": reason}
        if rec.state == "signed":
            plans = [a for a in _artifacts(history) if a.kind == "execution-plan"]
            if not plans:
                raise StateError(f"signed request {rec.id!r} has no execution plan to revoke")
            try:
                revoker = get_stage("revoker", cfg)
            except StageUnavailableError as e:
                raise StageUnavailableError(
                    f"refusing to cancel signed request {rec.id!r}: revoking its execution id "
                    "is not available, and cancelling without revoking would leave it usable",
                    hint="revoke it with aegisctl revoke <execution-id>, then cancel",
                ) from e
            revoker.revoke(rec, store.load_artifact(plans[-1].sha256))
            facts["revoked"] = True
        return _advance(
            store,
            rec,
            "cancel",
            actor=actor,
            artifact_kind=None,
            body=None,
            artifact_path=None,
            facts=facts,
        )


def resume(
    cfg: Config,
    actor: str,
    now: datetime | None = None,
    *,
    reviewer_down: str | None = None,
    list_waiting: bool = True,
) -> ResumeReport:
    """Advance every request whose next step is resumable (read-only); see resume.py."""
    from aegis.workflow.resume import resume_all

    return resume_all(
        cfg,
        _actor(actor),
        now or now_utc(),
        reviewer_down=reviewer_down,
        list_waiting=list_waiting,
    )
