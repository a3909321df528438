"""The read side of the library API: requests, their verified history, artifacts, metrics.

Split from :mod:`aegis.api`, which re-exports every public name here, so callers keep
using ``api.get_request`` and friends. Like the rest of the API, every function takes
the :class:`~aegis.config.Config` first, opens the state store, reads and closes it;
nothing here changes a request. The store, the workflow graph and the clock come from
:mod:`aegis.workflow.access`.

Example:
    >>> detail = get_request_detail(cfg, "r-0123456789abcdef")
    >>> detail.request.state, [a.kind for a in detail.artifacts]
    ('reviewed', ['plan', 'review'])
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from aegis.errors import InputError
from aegis.workflow.access import AttachedArtifact, _artifacts, _with_waiting

if TYPE_CHECKING:
    from datetime import datetime

    from aegis.config import Config
    from aegis.workflow.records import (
        CorruptStoreError,
        HistoryRecord,
        RequestRecord,
    )
    from aegis.workflow.store import Store
    from aegis.workflow.waiting import RequestNote


@dataclass(frozen=True)
class RequestDetail:
    """A request with its verified history and artifacts (``aegis show``)."""

    request: RequestRecord
    history: tuple[HistoryRecord, ...]
    artifacts: tuple[AttachedArtifact, ...]
    next_triggers: tuple[str, ...]
    terminal: bool
    stuck_reason: str | None


def get_request_detail(cfg: Config, request_id: str, now: datetime | None = None) -> RequestDetail:
    """The request with its verified history, artifacts and place on the graph."""
    from aegis.workflow.access import now_utc, open_store, workflow
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
    from aegis.workflow.access import now_utc, open_store, workflow
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
