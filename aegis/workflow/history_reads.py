"""Reading a request's history back from the store, as untrusted input.

Every row read is parsed strictly and hash-checked (:mod:`aegis.workflow.records`)
and must chain to the request row: the newest is the row ``rec.head`` names, at
``rec.version`` and in ``rec.state``; each earlier one is the row its successor's
``prev_hash`` names. :func:`whole_history` checks the whole chain (``aegis show``,
``history``); :func:`recorded_kinds` reads back from the head only as far as a
transition's guards need, which keeps a transition's cost flat as history grows.

Database errors are left to the caller (:class:`aegis.workflow.store.Store`), which
knows the store's path for the message.

Example:
    >>> recorded_kinds(conn, states, rec, frozenset({"plan"}))
    frozenset({'plan'})
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from typing import Any

from aegis.errors import StateError
from aegis.workflow.records import (
    HISTORY_COLUMNS,
    CorruptStoreError,
    HistoryRecord,
    RequestRecord,
    check_history_values,
    parse_history_values,
)

__all__ = [
    "LostRaceError",
    "checked_history",
    "history_rows",
    "recorded_artifacts",
    "recorded_kinds",
    "whole_history",
]

_SELECT_HISTORY = (
    f"SELECT {', '.join(HISTORY_COLUMNS)} FROM history WHERE request_id = ? ORDER BY seq"  # noqa: S608
)
# The newest row, then each older one by its key: every statement is done (and its read
# released) once its one row is fetched, so no half-read statement is left open and one
# cursor serves them all.
_SELECT_NEWEST = (
    f"SELECT {', '.join(HISTORY_COLUMNS)} FROM history WHERE request_id = ? "  # noqa: S608
    "ORDER BY seq DESC LIMIT 1"
)
_SELECT_SEQ = (
    f"SELECT {', '.join(HISTORY_COLUMNS)} FROM history "  # noqa: S608
    "WHERE request_id = ? AND seq = ?"
)


# Many requests' rows in one statement: the ids go in as one JSON array parameter, so no
# SQLite variable limit applies however many requests are listed.
_SELECT_HISTORIES = (
    f"SELECT {', '.join(HISTORY_COLUMNS)} FROM history "  # noqa: S608
    "WHERE request_id IN (SELECT value FROM json_each(?)) ORDER BY request_id, seq"
)


class LostRaceError(StateError):
    """Another writer changed the request between our read and our commit."""


def _lost_race(rec: RequestRecord) -> LostRaceError:
    return LostRaceError(
        f"request {rec.id!r} changed while this step ran (it was {rec.state!r}, "
        f"version {rec.version}); nothing was written",
        hint=f"look at it with 'aegis show {rec.id}' and retry if still needed",
    )


def _broken_at(rec: RequestRecord, seq: int) -> CorruptStoreError:
    return CorruptStoreError(
        f"history of request {rec.id!r} is broken at #{seq} (missing, reordered or re-linked row)"
    )


def _head_mismatch(rec: RequestRecord) -> CorruptStoreError:
    return CorruptStoreError(
        f"request {rec.id!r} does not match its history (state, version or head differ)",
        hint="nothing was changed; restore the store from backup",
    )


def whole_history(
    conn: sqlite3.Connection, states: frozenset[str], rec: RequestRecord
) -> list[HistoryRecord]:
    """The request's whole history, every row checked and the chain tied to ``rec``.

    Raises:
        LostRaceError: a writer committed after ``rec`` was read (exit 6).
        CorruptStoreError: a row fails its checks or the chain is broken (exit 4).
        sqlite3.DatabaseError: the store cannot be read.
    """
    return checked_history(conn.execute(_SELECT_HISTORY, [rec.id]).fetchall(), states, rec)


def history_rows(conn: sqlite3.Connection, ids: Sequence[str]) -> dict[str, list[Any]]:
    """The raw history rows of each request in ``ids``, oldest first, read in one query.

    Unchecked: give each list to :func:`checked_history` with its request.

    Raises:
        sqlite3.DatabaseError: the store cannot be read.
    """
    out: dict[str, list[Any]] = {i: [] for i in ids}
    for values in conn.execute(_SELECT_HISTORIES, [json.dumps(list(ids))]):
        found = out.get(values[0])
        if found is not None:
            found.append(values)
    return out


def checked_history(
    rows: Sequence[Sequence[Any]], states: frozenset[str], rec: RequestRecord
) -> list[HistoryRecord]:
    """``rows`` (the request's history rows by seq) parsed, hash-checked and chained to ``rec``.

    Raises:
        LostRaceError, CorruptStoreError: as :func:`whole_history`.
    """
    if len(rows) > rec.version + 1:
        # A writer committed after ``rec`` was read: the history is newer than the row.
        raise _lost_race(rec)
    out: list[HistoryRecord] = []
    prev: str | None = None
    for expected_seq, values in enumerate(rows):
        item = parse_history_values(values, states)
        if item.seq != expected_seq or item.prev_hash != prev:
            raise _broken_at(rec, expected_seq)
        prev = str(values[-1])
        out.append(item)
    if not out or prev != rec.head or out[-1].to_state != rec.state or out[-1].seq != rec.version:
        raise _head_mismatch(rec)
    return out


def recorded_kinds(
    conn: sqlite3.Connection, states: frozenset[str], rec: RequestRecord, wanted: frozenset[str]
) -> frozenset[str]:
    """Kinds of the artifacts on ``rec``'s history, read back from its head as far as needed.

    Reading stops once every kind in ``wanted`` is found (it goes to seq 0 when one is
    missing). Rows older than the last one read are neither read nor used.

    Raises:
        LostRaceError: a writer committed after ``rec`` was read (exit 6).
        CorruptStoreError: a row read fails its checks or the chain is broken (exit 4).
        sqlite3.DatabaseError: the store cannot be read.
    """
    return recorded_artifacts(conn, states, rec, wanted)[0]


def recorded_artifacts(
    conn: sqlite3.Connection | sqlite3.Cursor,
    states: frozenset[str],
    rec: RequestRecord,
    wanted: frozenset[str],
) -> tuple[frozenset[str], dict[str, str]]:
    """:func:`recorded_kinds`, with the SHA-256 of the newest artifact of each kind read.

    ``conn`` may be a cursor of the connection (the store's write path reuses one).

    Raises:
        LostRaceError, CorruptStoreError, sqlite3.DatabaseError: as :func:`recorded_kinds`.
    """
    newest_sha: dict[str, str] = {}
    rid = rec.id
    newest = conn.execute(_SELECT_NEWEST, (rid,)).fetchone()
    if newest is not None and isinstance(newest[1], int) and newest[1] > rec.version:
        raise _lost_race(rec)
    found: set[str] = set()
    expected_hash: str | None = rec.head
    values = newest
    seq = rec.version
    while values is not None:
        body = check_history_values(values, states)
        if seq == rec.version and (body["to_state"] != rec.state or values[-1] != rec.head):
            break  # reported below, with the other mismatches of the head
        if body["seq"] != seq or values[-1] != expected_hash:
            raise _broken_at(rec, seq)
        for a in reversed(body["artifacts"]):
            kind = a["kind"]
            newest_sha.setdefault(kind, a["sha256"])
            found.add(kind)
        expected_hash = body["prev_hash"]
        if seq == 0:
            if expected_hash is None:
                return frozenset(found), newest_sha
            break
        if expected_hash is None:
            break
        if wanted <= found:
            return frozenset(found), newest_sha
        seq -= 1
        values = conn.execute(_SELECT_SEQ, (rid, seq)).fetchone()
    if newest is None or seq == rec.version:
        raise _head_mismatch(rec)
    raise _broken_at(rec, seq)
