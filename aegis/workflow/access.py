"""Requests in the state store: open it, submit, advance, attach, read back.

The part of the library API every stage may call: it sits in the workflow layer, below
the stages, so a stage records its step without importing :mod:`aegis.api` (which
re-exports these names for the CLIs, with the calls that need the stages on top:
``cancel``, ``resume``, the request details with their standing). Every function takes
the :class:`~aegis.config.Config` first, opens the state store, does one thing and
closes it. The clock is read here (the edge) and passed down; the machine, guards and
records stay pure.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aegis.canonical import canonical_bytes, sha256_hex
from aegis.errors import (
    AegisError,
    EnvironmentFailure,
    InputError,
    StateError,
)
from aegis.model import plan_to_dict
from aegis.workflow.files import write_atomic
from aegis.workflow.graph import load_workflow
from aegis.workflow.guards import ARTIFACT_KINDS, GuardInput
from aegis.workflow.machine import fire, legal
from aegis.workflow.monitor import metrics_text, stuck_cutoffs
from aegis.workflow.records import (
    ArtifactRef,
    CorruptStoreError,
    RequestRecord,
    check_id,
    format_time,
)
from aegis.workflow.store import MAX_ARTIFACT_BYTES, Move, NewArtifact, Store
from aegis.workflow.waiting import waiting_reason

if TYPE_CHECKING:
    from aegis.config import Config
    from aegis.model import Plan
    from aegis.workflow.machine import Workflow
    from aegis.workflow.records import ArtifactRef, CorruptStoreError, HistoryRecord, RequestRecord
    from aegis.workflow.store import Store


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
    return load_workflow()


def _host_install(cfg: Config) -> bool:
    return cfg.home is None


@contextmanager
def open_store(cfg: Config) -> Iterator[Store]:
    """Open the state store of ``cfg`` (created and migrated on first use)."""
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
        base = _new_record(kind, summary, wf.initial, at)

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


def _new_record(kind: str, summary: str, state: str, at: str) -> RequestRecord:
    """A request before its first history row (version -1, no plan, the zero head)."""
    return RequestRecord(
        id=new_request_id(),
        kind=kind,
        summary=summary,
        state=state,
        version=-1,
        created_at=at,
        updated_at=at,
        plan_id=None,
        plan_hash=None,
        lease_owner=None,
        lease_expires_at=None,
        head="0" * 64,
    )


def create_request(cfg: Config, kind: str, summary: str, actor: str) -> RequestRecord:
    """Create a bare request in the initial state (``intent``), e.g. before a slow analysis."""
    actor = _actor(actor)
    wf = workflow()
    at = format_time(now_utc())
    base = _new_record(kind[:100], summary[:MAX_SUMMARY_CHARS], wf.initial, at)
    with open_store(cfg) as store:
        return store.commit(
            base, [Move("create", None, wf.initial, actor, at, wf.digest)], create=True
        )


def _read_artifact(artifact: bytes | None, artifact_path: str | Path | None) -> bytes | None:
    if artifact is not None or artifact_path is None:
        return artifact

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

    if artifact_kind is not None and artifact_kind not in ARTIFACT_KINDS:
        raise InputError(f"unknown artifact kind {artifact_kind!r}")
    if (artifact_kind is None) != (body is None):
        raise InputError("an artifact needs both its kind and its bytes")
    wf = workflow()
    state = rec.state
    legal(wf, state, trigger)  # an illegal move is refused before the store is locked
    arts: tuple[NewArtifact, ...] = ()
    if artifact_kind is not None and body is not None:
        arts = (NewArtifact(artifact_kind, body, artifact_path),)
    given = dict(facts)

    def decide(recorded: frozenset[str], documents: dict[str, bytes]) -> list[Move]:
        # Verified: the guards only see hash-checked evidence chained to the request row,
        # read back from its head (under the write lock) as far as the guards need.
        inp = GuardInput(trigger, state, recorded, artifact_kind, body, given, documents)
        spec = fire(wf, state, trigger, inp)  # raises StateError: nothing is written
        at = format_time(now_utc())
        return [Move(trigger, state, spec.dest, actor, at, wf.digest, artifacts=arts, facts=given)]

    return store.transition(
        rec, wf.kinds_read(state, trigger), wf.documents_read(state, trigger), decide
    )


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
    """Fire ``trigger`` on a request: read-back, guards and writes in one transaction.

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


def lease_deadline(now: datetime, seconds: int) -> str:
    """Store-format time ``seconds`` after ``now``."""
    return format_time(now + timedelta(seconds=seconds))


@dataclass(frozen=True)
class AttachedArtifact:
    """An artifact of a request, as listed in its verified history."""

    kind: str
    sha256: str
    path: str | None
    seq: int
    at: str


def _artifacts(history: tuple[HistoryRecord, ...] | list[HistoryRecord]) -> list[AttachedArtifact]:
    out: list[AttachedArtifact] = []
    for h in history:
        out.extend(AttachedArtifact(a.kind, a.sha256, a.path, h.seq, h.at) for a in h.artifacts)
    return out


def get_request(cfg: Config, request_id: str) -> RequestRecord:
    """The request (row parsed and hash-checked).

    Raises:
        RequestNotFoundError: unknown id (exit 3).
    """
    with open_store(cfg) as store:
        return store.get(request_id)


def find_request_by_plan(cfg: Config, plan_hash_or_plan_id: str) -> RequestRecord | None:
    """The newest request bound to a plan hash or plan id, or None."""
    with open_store(cfg) as store:
        return store.find_by_plan(plan_hash_or_plan_id)


def load_artifact(cfg: Config, sha256: str) -> bytes:
    """An artifact's bytes, hash-checked.

    Raises:
        RequestNotFoundError: no such artifact (exit 3).
        CorruptStoreError: the bytes do not match the hash (exit 4).
    """
    with open_store(cfg) as store:
        return store.load_artifact(sha256)


def request_artifacts(cfg: Config, request_id: str) -> list[AttachedArtifact]:
    """Every artifact of the request, from its verified history, oldest first."""
    with open_store(cfg) as store:
        return _artifacts(store.load(request_id)[1])


def latest_artifact(cfg: Config, request_id: str, kind: str) -> tuple[ArtifactRef, bytes] | None:
    """The newest artifact of ``kind`` on the request and its hash-checked bytes, or None."""
    with open_store(cfg) as store:
        found = [a for a in _artifacts(store.load(request_id)[1]) if a.kind == kind]
        if not found:
            return None
        last = found[-1]
        return ArtifactRef(last.kind, last.sha256, last.path), store.load_artifact(last.sha256)


def write_metrics(cfg: Config, now: datetime | None = None, *, extra: str = "") -> Path:
    """Write Prometheus textfile metrics (requests, stuck requests per state); return the path.

    ``extra`` (complete Prometheus lines) is appended: the monitor pass's own figures.
    """
    wf = workflow()
    when = now or now_utc()
    with open_store(cfg) as store:
        counts = store.count_by_state()
        stuck: dict[str, int] = {}
        found = store.stuck(stuck_cutoffs(wf, when), format_time(when))
        # Rows failing their checks are reported by doctor and requests, not counted here.
        for rec in _with_waiting(store, found, []):
            stuck[rec.state] = stuck.get(rec.state, 0) + 1
    path = cfg.metrics_dir / "aegis.prom"
    write_atomic(
        path,
        (metrics_text(counts, stuck, list(wf.states)) + extra).encode(),
        host_install=_host_install(cfg),
    )
    return path


def _with_waiting(
    store: Store, found: list[RequestRecord], corrupt: list[CorruptStoreError] | None
) -> list[RequestRecord]:
    """``found`` plus the requests in ``policy`` the automation left waiting for a human."""
    listed = {r.id for r in found}
    policy = [r for r in store.list_requests(state="policy", corrupt=corrupt) if r.id not in listed]
    histories = store.histories(policy)  # one query for all of them, each chain checked
    extra: list[RequestRecord] = []
    for rec in policy:
        history = histories[rec.id]
        if isinstance(history, CorruptStoreError):
            if corrupt is None:
                raise history
            corrupt.append(history)
            continue
        if waiting_reason(history) is not None:
            extra.append(rec)
    return sorted([*found, *extra], key=lambda r: (r.updated_at, r.id))
