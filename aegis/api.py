"""The library API both CLIs and the daemons call (workflow part).

This module is the one import point: the read side (``get_request``, ``list_requests``,
``latest_artifact``, ...) lives in :mod:`aegis.api_reads` and is re-exported here.
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

import os
import secrets
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aegis.api_reads import (
    AttachedArtifact,
    RequestDetail,
    _artifacts,
    find_request_by_plan,
    get_request,
    get_request_detail,
    latest_artifact,
    list_requests,
    load_artifact,
    request_artifacts,
    write_metrics,
)
from aegis.errors import (
    AegisError,
    EnvironmentFailure,
    InputError,
    StageUnavailableError,
    StateError,
)

if TYPE_CHECKING:
    from aegis.config import Config
    from aegis.model import Plan
    from aegis.workflow.machine import Workflow
    from aegis.workflow.records import RequestRecord
    from aegis.workflow.resume import ResumeReport
    from aegis.workflow.store import Store

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

MAX_ACTOR_CHARS = 200
MAX_SUMMARY_CHARS = 300


@dataclass(frozen=True)
class PlannedRequest:
    """What :func:`submit_plan` created."""

    request_id: str
    plan_path: Path
    plan_hash: str


def now_utc() -> datetime:
    """The current time (the one clock read of the workflow layer; freezegun moves it)."""
    return datetime.now(UTC)


def workflow() -> Workflow:
    """The validated lifecycle graph."""
    from aegis.workflow.graph import load_workflow

    return load_workflow()


def _host_install(cfg: Config) -> bool:
    return cfg.home is None


@contextmanager
def open_store(cfg: Config) -> Iterator[Store]:
    """Open the state store of ``cfg`` (created and migrated on first use)."""
    from aegis.workflow.store import Store

    store = Store.open(
        cfg.store_path, states=frozenset(workflow().states), host_install=_host_install(cfg)
    )
    try:
        yield store
    finally:
        store.close()


def _actor(actor: str) -> str:
    if not actor.strip():
        raise InputError("an actor (who is doing this) is required")
    if len(actor) > MAX_ACTOR_CHARS:
        raise InputError(f"actor is longer than {MAX_ACTOR_CHARS} characters")
    return actor


def new_request_id() -> str:
    """A fresh, unguessable request id."""
    return f"r-{secrets.token_hex(8)}"


def submit_plan(cfg: Config, plan: Plan, actor: str) -> PlannedRequest:
    """Create a request for ``plan``: write ``plans/<plan_id>.json``, record intent -> analyzed.

    The request row, its two history rows (created, analyzed) and the plan artifact are
    written in one transaction; the plan file is the canonical JSON whose SHA-256 is the
    plan hash.

    Raises:
        InputError: bad plan id or actor.
        StateError: a request for this plan id already exists.
        EnvironmentFailure: the store or the plans directory is not writable.
    """
    from aegis.canonical import canonical_bytes, sha256_hex
    from aegis.model import plan_to_dict
    from aegis.workflow.files import write_atomic
    from aegis.workflow.records import RequestRecord, check_id, format_time
    from aegis.workflow.store import Move, NewArtifact

    actor = _actor(actor)
    plan_id = check_id(plan.plan_id, "plan id")
    body = canonical_bytes(plan_to_dict(plan))
    digest = sha256_hex(body)
    plan_path = cfg.plans_dir / f"{plan_id}.json"
    wf = workflow()
    at = format_time(now_utc())
    kind = f"{plan.intent.tool.value} {plan.intent.operation.value}"
    summary = " ".join(plan.intent.targets)[:MAX_SUMMARY_CHARS]
    with open_store(cfg) as store:
        if store.find_by_plan(plan_id) is not None:
            raise StateError(f"a request for plan {plan_id!r} already exists")
        write_atomic(plan_path, body, host_install=_host_install(cfg))
        base = RequestRecord(
            id=new_request_id(),
            kind=kind,
            summary=summary,
            state=wf.initial,
            version=-1,
            created_at=at,
            updated_at=at,
            plan_id=None,
            plan_hash=None,
            lease_owner=None,
            lease_expires_at=None,
            head="0" * 64,
        )
        from aegis.workflow.guards import GuardInput
        from aegis.workflow.machine import fire

        spec = fire(
            wf,
            wf.initial,
            "analyze",
            GuardInput("analyze", wf.initial, frozenset(), "plan", body, {}),
        )
        moves = [
            Move("create", None, wf.initial, actor, at, wf.digest),
            Move(
                "analyze",
                wf.initial,
                spec.dest,
                actor,
                at,
                wf.digest,
                artifacts=(NewArtifact("plan", body, str(plan_path)),),
                plan_id=plan_id,
                plan_hash=digest,
            ),
        ]
        try:
            rec = store.commit(base, moves, create=True)
        except BaseException as e:
            # No orphan plan files: a plan no request records is removed, and the error
            # says so (or names the file it could not remove).
            note = _discard_unrecorded(plan_path)
            if isinstance(e, AegisError):
                e.message = f"{e.message}; {note}"
                raise
            if not isinstance(e, Exception):
                raise
            raise EnvironmentFailure(
                f"recording the plan failed ({type(e).__name__}: {e}); {note}"
            ) from e
    return PlannedRequest(request_id=rec.id, plan_path=plan_path, plan_hash=digest)


def _discard_unrecorded(plan_path: Path) -> str:
    """Remove a plan file whose request was not recorded; say what happened."""
    try:
        plan_path.unlink()
    except FileNotFoundError:
        return f"the plan was not recorded and {plan_path} does not exist"
    except OSError as e:
        return (
            f"the plan was not recorded, and {plan_path} could not be removed "
            f"({e.strerror}): delete it, it belongs to no request"
        )
    return f"the plan was not recorded, and {plan_path} was removed"


def create_request(cfg: Config, kind: str, summary: str, actor: str) -> RequestRecord:
    """Create a bare request in the initial state (``intent``), e.g. before a slow analysis."""
    from aegis.workflow.records import RequestRecord, format_time
    from aegis.workflow.store import Move

    actor = _actor(actor)
    wf = workflow()
    at = format_time(now_utc())
    base = RequestRecord(
        id=new_request_id(),
        kind=kind[:100],
        summary=summary[:MAX_SUMMARY_CHARS],
        state=wf.initial,
        version=-1,
        created_at=at,
        updated_at=at,
        plan_id=None,
        plan_hash=None,
        lease_owner=None,
        lease_expires_at=None,
        head="0" * 64,
    )
    with open_store(cfg) as store:
        return store.commit(
            base, [Move("create", None, wf.initial, actor, at, wf.digest)], create=True
        )


def _read_artifact(artifact: bytes | None, artifact_path: str | Path | None) -> bytes | None:
    if artifact is not None or artifact_path is None:
        return artifact
    from aegis.workflow.store import MAX_ARTIFACT_BYTES

    try:
        with open(artifact_path, "rb") as fh:
            data = fh.read(MAX_ARTIFACT_BYTES + 1)
    except OSError as e:
        raise InputError(f"cannot read artifact {artifact_path}: {e.strerror}") from e
    if len(data) > MAX_ARTIFACT_BYTES:
        raise InputError(f"artifact {artifact_path} is larger than {MAX_ARTIFACT_BYTES} bytes")
    return data


def _advance(
    store: Store,
    rec: RequestRecord,
    trigger: str,
    *,
    actor: str,
    artifact_kind: str | None,
    body: bytes | None,
    artifact_path: str | None,
    facts: Mapping[str, Any],
) -> RequestRecord:
    from aegis.workflow.guards import ARTIFACT_KINDS, GuardInput
    from aegis.workflow.machine import fire
    from aegis.workflow.records import format_time
    from aegis.workflow.store import Move, NewArtifact

    if artifact_kind is not None and artifact_kind not in ARTIFACT_KINDS:
        raise InputError(f"unknown artifact kind {artifact_kind!r}")
    if (artifact_kind is None) != (body is None):
        raise InputError("an artifact needs both its kind and its bytes")
    wf = workflow()
    # Verified: the guards only see hash-checked evidence chained to the request row, read
    # back from its head as far as the kinds the guards look at.
    recorded, documents = store.recorded_documents(
        rec, wf.kinds_read(rec.state, trigger), wf.documents_read(rec.state, trigger)
    )
    inp = GuardInput(trigger, rec.state, recorded, artifact_kind, body, dict(facts), documents)
    spec = fire(wf, rec.state, trigger, inp)  # raises StateError; nothing written yet
    arts: tuple[NewArtifact, ...] = ()
    if artifact_kind is not None and body is not None:
        arts = (NewArtifact(artifact_kind, body, artifact_path),)
    move = Move(
        trigger,
        rec.state,
        spec.dest,
        actor,
        format_time(now_utc()),
        wf.digest,
        artifacts=arts,
        facts=dict(facts),
    )
    return store.commit(rec, [move])


def advance(
    cfg: Config,
    request_id: str,
    trigger: str,
    actor: str,
    *,
    artifact_kind: str | None = None,
    artifact: bytes | None = None,
    artifact_path: str | Path | None = None,
    evidence: Mapping[str, Any] | None = None,
) -> RequestRecord:
    """Fire ``trigger`` on a request: guards, then state + history + artifact in one transaction.

    Args:
        cfg: configuration.
        request_id: the request.
        trigger: a lifecycle trigger (``review``, ``decide``, ``sign``, ...).
        actor: who does it (user, key id or service).
        artifact_kind: kind of the artifact this step produced (``review``, ``policy``, ...).
        artifact: its bytes; when None and ``artifact_path`` is given, the file is read.
        artifact_path: where the artifact file was written (printed by ``aegis show``).
        evidence: small JSON facts (e.g. ``{"reason": "..."}``, ``{"execution_id": ...}``).

    Returns:
        The request as committed.

    Raises:
        RequestNotFoundError: unknown request id (exit 3).
        IllegalTransitionError, GuardRefusedError, LostRaceError: StateError, exit 6;
            nothing is written.
        CorruptStoreError: the request's rows fail their checks (exit 4).
    """
    actor = _actor(actor)
    body = _read_artifact(artifact, artifact_path)
    with open_store(cfg) as store:
        rec = store.get(request_id)
        return _advance(
            store,
            rec,
            trigger,
            actor=actor,
            artifact_kind=artifact_kind,
            body=body,
            artifact_path=str(artifact_path) if artifact_path is not None else None,
            facts=evidence or {},
        )


def attach_artifact(
    cfg: Config,
    request_id: str,
    kind: str,
    artifact: bytes,
    actor: str,
    *,
    artifact_path: str | Path | None = None,
) -> RequestRecord:
    """Attach an artifact without changing state (e.g. an approval while in ``policy``).

    Recorded as a history row with trigger ``attach`` (from and to the same state).

    Raises:
        StateError: the request is in a terminal state.
    """
    from aegis.workflow.guards import ARTIFACT_KINDS
    from aegis.workflow.records import format_time
    from aegis.workflow.store import Move, NewArtifact

    actor = _actor(actor)
    if kind not in ARTIFACT_KINDS:
        raise InputError(f"unknown artifact kind {kind!r}")
    wf = workflow()
    with open_store(cfg) as store:
        rec = store.get(request_id)
        store.history(rec)
        if wf.is_terminal(rec.state):
            raise StateError(f"request {rec.id!r} is {rec.state!r}; nothing can be attached")
        path = str(artifact_path) if artifact_path is not None else None
        move = Move(
            "attach",
            rec.state,
            rec.state,
            actor,
            format_time(now_utc()),
            wf.digest,
            artifacts=(NewArtifact(kind, artifact, path),),
        )
        return store.commit(rec, [move])


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


def current_user() -> str:
    """Who runs this process, for history rows (``user`` or ``uid:N``)."""
    import pwd

    uid = os.getuid()
    try:
        name = pwd.getpwuid(uid).pw_name
    except KeyError:
        return f"uid:{uid}"
    return name


def lease_deadline(now: datetime, seconds: int) -> str:
    """Store-format time ``seconds`` after ``now``."""
    from aegis.workflow.records import format_time

    return format_time(now + timedelta(seconds=seconds))
