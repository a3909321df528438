"""The read side of the library API: requests, their verified history, artifacts, metrics.

Split from :mod:`aegis.api`, which re-exports every public name here, so callers keep
using ``api.get_request`` and friends. Like the rest of the API, every function takes
the :class:`~aegis.config.Config` first, opens the state store, reads and closes it;
nothing here changes a request. The store, the workflow graph and the clock come from
:mod:`aegis.api` (imported at call time, because ``aegis.api`` imports this module).

Example:
    >>> detail = get_request_detail(cfg, "r-0123456789abcdef")
    >>> detail.request.state, [a.kind for a in detail.artifacts]
    ('reviewed', ['plan', 'review'])
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from aegis.errors import InputError

if TYPE_CHECKING:
    from datetime import datetime
    from pathlib import Path

    from aegis.config import Config
    from aegis.workflow.records import (
        ArtifactRef,
        CorruptStoreError,
        HistoryRecord,
        RequestRecord,
    )
    from aegis.workflow.store import Store
    from aegis.workflow.waiting import RequestNote


@dataclass(frozen=True)
class AttachedArtifact:
    """An artifact of a request, as listed in its verified history."""

    kind: str
    sha256: str
    path: str | None
    seq: int
    at: str


@dataclass(frozen=True)
class RequestDetail:
    """A request with its verified history and artifacts (``aegis show``)."""

    request: RequestRecord
    history: tuple[HistoryRecord, ...]
    artifacts: tuple[AttachedArtifact, ...]
    next_triggers: tuple[str, ...]
    terminal: bool
    stuck_reason: str | None


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
    from aegis.api import open_store

    with open_store(cfg) as store:
        return store.get(request_id)


def get_request_detail(cfg: Config, request_id: str, now: datetime | None = None) -> RequestDetail:
    """The request with its verified history, artifacts and place on the graph."""
    from aegis.api import now_utc, open_store, workflow
    from aegis.workflow.monitor import stuck_reason
    from aegis.workflow.waiting import waiting_reason

    wf = workflow()
    from aegis.standing import check_standing

    with open_store(cfg) as store:
        rec, history_list = store.load(request_id)
        check_standing(cfg, store, rec, history_list)
        history = tuple(history_list)
    return RequestDetail(
        request=rec,
        history=history,
        artifacts=tuple(_artifacts(history)),
        next_triggers=tuple(t.trigger for t in wf.exits(rec.state)),
        terminal=wf.is_terminal(rec.state),
        stuck_reason=stuck_reason(rec, wf, now or now_utc(), waiting=waiting_reason(history)),
    )


def find_request_by_plan(cfg: Config, plan_hash_or_plan_id: str) -> RequestRecord | None:
    """The newest request bound to a plan hash or plan id, or None."""
    from aegis.api import open_store

    with open_store(cfg) as store:
        return store.find_by_plan(plan_hash_or_plan_id)


def load_artifact(cfg: Config, sha256: str) -> bytes:
    """An artifact's bytes, hash-checked.

    Raises:
        RequestNotFoundError: no such artifact (exit 3).
        CorruptStoreError: the bytes do not match the hash (exit 4).
    """
    from aegis.api import open_store

    with open_store(cfg) as store:
        return store.load_artifact(sha256)


def request_artifacts(cfg: Config, request_id: str) -> list[AttachedArtifact]:
    """Every artifact of the request, from its verified history, oldest first."""
    from aegis.api import open_store

    with open_store(cfg) as store:
        return _artifacts(store.load(request_id)[1])


def latest_artifact(cfg: Config, request_id: str, kind: str) -> tuple[ArtifactRef, bytes] | None:
    """The newest artifact of ``kind`` on the request and its hash-checked bytes, or None."""
    from aegis.api import open_store
    from aegis.workflow.records import ArtifactRef

    with open_store(cfg) as store:
        found = [a for a in _artifacts(store.load(request_id)[1]) if a.kind == kind]
        if not found:
            return None
        last = found[-1]
        return ArtifactRef(last.kind, last.sha256, last.path), store.load_artifact(last.sha256)


def list_requests(
    cfg: Config,
    *,
    state: str | None = None,
    stuck: bool = False,
    now: datetime | None = None,
    limit: int | None = None,
    corrupt: list[CorruptStoreError] | None = None,
    notes: dict[str, RequestNote] | None = None,
) -> list[RequestRecord]:
    """Requests, oldest state change first; ``stuck``: only those past their threshold.

    A request the automation left waiting for a human counts as stuck at once
    (aegis/workflow/waiting.py).

    Args:
        cfg: configuration (store location).
        state: only requests in this state.
        stuck: only requests past their state's threshold or with an expired lease.
        now: the time "stuck" is measured at (default: now).
        limit: at most this many.
        corrupt: when given, rows failing their checks are collected here and the
            others listed; otherwise the first such row raises.
        notes: when given, filled with each listed request's note (who made it, why it
            waits for a human), read from its verified history.

    Raises:
        InputError: unknown state name.
        CorruptStoreError: a row fails its checks and ``corrupt`` is None (exit 4).
    """
    from aegis.api import now_utc, open_store, workflow
    from aegis.workflow.monitor import stuck_cutoffs
    from aegis.workflow.records import format_time

    wf = workflow()
    if state is not None and state not in wf.states:
        raise InputError(f"unknown state {state!r} (states: {', '.join(wf.states)})")
    when = now or now_utc()
    with open_store(cfg) as store:
        if not stuck:
            found = store.list_requests(state=state, limit=limit, corrupt=corrupt)
        else:
            found = store.stuck(stuck_cutoffs(wf, when), format_time(when), corrupt)
            found = _with_waiting(store, found, corrupt)
        if state is not None:
            found = [r for r in found if r.state == state]
        # Trimmed before histories are read: only the rows listed pay for theirs.
        found = found[:limit] if limit is not None else found
        return _standing(cfg, store, found, corrupt, notes)


def _standing(
    cfg: Config,
    store: Store,
    found: list[RequestRecord],
    corrupt: list[CorruptStoreError] | None,
    notes: dict[str, RequestNote] | None = None,
) -> list[RequestRecord]:
    """``found`` without the requests whose state's evidence does not re-verify.

    ``notes``, when given, gets each kept request's note from its verified history.

    Raises:
        CorruptStoreError: one does not, and ``corrupt`` is None (exit 4).
    """
    from aegis.standing import CHECKED_STATES, check_standing
    from aegis.workflow.records import CorruptStoreError
    from aegis.workflow.waiting import note_for

    needed = [r for r in found if r.state in CHECKED_STATES or notes is not None]
    histories = store.histories(needed)  # one query for all of them, each chain checked
    kept: list[RequestRecord] = []
    for rec in found:
        if rec.id in histories:
            history = histories[rec.id]
            try:
                if isinstance(history, CorruptStoreError):
                    raise history
                if rec.state in CHECKED_STATES:
                    check_standing(cfg, store, rec, history)
            except CorruptStoreError as e:
                if corrupt is None:
                    raise
                corrupt.append(e)
                continue
            if notes is not None:
                notes[rec.id] = note_for(history)
        kept.append(rec)
    return kept


def _with_waiting(
    store: Store, found: list[RequestRecord], corrupt: list[CorruptStoreError] | None
) -> list[RequestRecord]:
    """``found`` plus the requests in ``policy`` the automation left waiting for a human."""
    from aegis.workflow.records import CorruptStoreError
    from aegis.workflow.waiting import waiting_reason

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


def write_metrics(cfg: Config, now: datetime | None = None, *, extra: str = "") -> Path:
    """Write Prometheus textfile metrics (requests, stuck requests per state); return the path.

    ``extra`` (complete Prometheus lines) is appended: the monitor pass's own figures.
    """
    from aegis.api import _host_install, now_utc, open_store, workflow
    from aegis.workflow.files import write_atomic
    from aegis.workflow.monitor import metrics_text, stuck_cutoffs
    from aegis.workflow.records import format_time

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
