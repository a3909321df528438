"""The state store: change requests, their append-only history and artifacts, in SQLite.

Built on sqlite-utils over one connection in WAL mode with ``synchronous=FULL``.
Schema and migrations live in ``state/migrations`` (``PRAGMA user_version``), applied by
:mod:`aegis.workflow.migrations`.

A transition is one transaction (:meth:`Store.transition`, or :meth:`Store.commit` for
moves no guard reads the history for): the request row is updated with an optimistic
version check (``WHERE version = ?``), the history row(s) appended, the artifacts
inserted by SHA-256. A guarded transition reads the history back and runs its guards
inside that write transaction (``BEGIN IMMEDIATE``), so the read and the write are one
snapshot. Two writers racing on one request: the second ``UPDATE`` (or its read of a
newer history) fails and gets a :class:`StateError` (exit 6); nothing of its attempt is
written.

Everything read back is untrusted (group ``aegis`` can write the file): rows are
parsed strictly and hash-checked (:mod:`aegis.workflow.records`), history must
chain, and artifact bytes must hash to their address. A transition reads the
history back from its head only as far as its guards need
(:meth:`Store.recorded_kinds`); :meth:`Store.history` checks the whole chain.

Test hook: ``AEGIS_TEST_PAUSE_AT=<step>`` stops :meth:`Store.commit` and
:meth:`Store.transition` at a step so a test can SIGKILL it there
(:mod:`aegis.workflow.pause`).

Example:
    >>> store = Store.open(Path("/tmp/h/state.db"), states=frozenset(wf.states))
    >>> store.get("r-1").state
    'analyzed'
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, TypeVar

import sqlite_utils

from aegis.canonical import sha256_hex
from aegis.config import group_gid, in_group, join_group_hint
from aegis.errors import EnvironmentFailure, InputError, StateError
from aegis.workflow import history_reads
from aegis.workflow.files import prepare_dir, prepare_store_file, write_atomic
from aegis.workflow.history_reads import LostRaceError
from aegis.workflow.migrations import migrate
from aegis.workflow.pause import PAUSE_ENV, PAUSE_STEPS, commit_pause

__all__ = [
    "PAUSE_ENV",
    "PAUSE_STEPS",
    "LostRaceError",
    "Move",
    "NewArtifact",
    "Store",
    "write_atomic",
]
from aegis.workflow.records import (
    HISTORY_COLUMNS,
    ID_PATTERN,
    REQUEST_COLUMNS,
    CorruptStoreError,
    HistoryRecord,
    RequestRecord,
    body_hash,
    body_values,
    check_facts,
    check_id,
    check_sha256,
    new_history_body,
    parse_request_row,
    request_row,
    request_values,
)

MAX_ARTIFACT_BYTES = 16 * 1024 * 1024
_T = TypeVar("_T")
BUSY_TIMEOUT_S = 10.0
_REQUEST_COLUMNS = ", ".join(REQUEST_COLUMNS)
_INSERT_HISTORY = (
    f"INSERT INTO history ({', '.join(HISTORY_COLUMNS)}) "  # noqa: S608
    f"VALUES ({', '.join('?' for _ in HISTORY_COLUMNS)})"
)
_UPDATED_COLUMNS = REQUEST_COLUMNS[1:]  # all but id, in request_values' order
_UPDATE_REQUEST = (
    f"UPDATE requests SET {', '.join(f'{c} = ?' for c in _UPDATED_COLUMNS)} "  # noqa: S608
    "WHERE id = ? AND version = ? AND state = ?"
)
_INSERT_REQUEST = (
    f"INSERT INTO requests ({_REQUEST_COLUMNS}) "  # noqa: S608
    f"VALUES ({', '.join('?' for _ in REQUEST_COLUMNS)})"
)
_INSERT_ARTIFACT = (
    "INSERT OR IGNORE INTO artifacts (sha256, size, body, created_at) VALUES (?, ?, ?, ?)"
)
_LINK_ARTIFACT = (
    "INSERT OR IGNORE INTO request_artifacts (request_id, kind, sha256, path, seq, at) "
    "VALUES (?, ?, ?, ?, ?, ?)"
)


class RequestNotFoundError(InputError):
    """No change request with that id (or plan)."""


def _env_error(path: Path, e: BaseException) -> EnvironmentFailure:
    text = str(e)
    if "locked" in text or "busy" in text:
        return EnvironmentFailure(
            f"the state store {path} is locked by another process: {text}",
            hint="retry in a moment",
        )
    if "not a database" in text or "malformed" in text:
        # Damaged, not unwritable: the writable-file-system hint would send the operator
        # after permissions that are fine.
        return EnvironmentFailure(
            f"the state store {path} is not a usable SQLite database: {text}",
            hint="move the file aside and restore it from a backup ('aegis doctor' checks it)",
        )

    if not in_group(group_gid()):
        return EnvironmentFailure(
            f"cannot use the state store {path}: {text}", hint=join_group_hint()
        )
    return EnvironmentFailure(
        f"cannot use the state store {path}: {text}",
        hint="the store must be on a writable file system and writable by group aegis "
        "('aegis doctor' names what is wrong)",
    )


@dataclass(frozen=True)
class NewArtifact:
    """An artifact to store with a transition."""

    kind: str
    body: bytes
    path: str | None = None
    sha256: str = field(init=False, repr=False, compare=False)
    """Content address, hashed once when made (a commit reads it three times; Python 3.11's
    cached_property takes a lock on every read)."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "sha256", sha256_hex(self.body))


@dataclass(frozen=True)
class Move:
    """One transition to write: the machine has already checked it."""

    trigger: str
    from_state: str | None
    to_state: str
    actor: str
    at: str
    workflow: str
    artifacts: tuple[NewArtifact, ...] = ()
    facts: dict[str, Any] = field(default_factory=dict)
    plan_id: str | None = None
    plan_hash: str | None = None


class _Writes:
    """The rows ``moves`` write on top of ``base``, computed before the transaction begins."""

    __slots__ = ("artifacts", "histories", "rec", "row")

    def __init__(self, base: RequestRecord, moves: Sequence[Move], *, create: bool = False) -> None:
        rec = base
        prev: str | None = None if create else base.head
        self.histories: list[list[Any]] = []
        self.artifacts: list[tuple[NewArtifact, int, str]] = []
        for move in moves:
            check_facts(move.facts)
            for art in move.artifacts:
                if len(art.body) > MAX_ARTIFACT_BYTES:
                    raise InputError(
                        f"{art.kind} artifact is larger than {MAX_ARTIFACT_BYTES} bytes"
                    )
            seq = rec.version + 1
            body = new_history_body(
                request_id=rec.id,
                seq=seq,
                from_state=move.from_state,
                to_state=move.to_state,
                trigger=move.trigger,
                actor=move.actor,
                at=move.at,
                artifacts=move.artifacts,
                facts=move.facts,
                workflow=move.workflow,
                prev_hash=prev,
            )
            prev = body_hash(body)
            self.histories.append(body_values(body, prev))
            self.artifacts.extend((a, seq, move.at) for a in move.artifacts)
            rec = RequestRecord(  # spelled out: dataclasses.replace costs more than the row
                id=rec.id,
                kind=rec.kind,
                summary=rec.summary,
                state=move.to_state,
                version=seq,
                created_at=rec.created_at,
                updated_at=move.at,
                plan_id=move.plan_id or rec.plan_id,
                plan_hash=move.plan_hash or rec.plan_hash,
                lease_owner=None,
                lease_expires_at=None,
                head=prev,
            )
        self.rec = rec
        self.row = request_values(rec)
        """The request row's columns but its id, in ``_UPDATED_COLUMNS`` order."""


# Stores open in this process, per path. Settling the store's files (prepare_store_file)
# opens and closes them, and closing any descriptor of a file drops every POSIX lock this
# process holds on it: SQLite's locks of a connection already open here would vanish, so
# another process could checkpoint and delete the write-ahead log under it, and the
# database came out malformed (an unattended pass holding the store open while its steps
# opened it again did so on the booted host). The files are settled only while no
# connection of this process has them open.
_OPEN_LOCK = threading.Lock()
_OPEN: dict[str, int] = {}


def open_connections() -> int:
    """How many store connections this process has open now (any path)."""
    with _OPEN_LOCK:
        return sum(_OPEN.values())


def _close(key: str, conn: sqlite3.Connection) -> None:
    with _OPEN_LOCK:
        conn.close()
        _OPEN[key] -= 1


class Store:
    """One open state store. Not thread-safe; open one per process or thread."""

    def __init__(self, path: Path, conn: sqlite3.Connection, states: frozenset[str]) -> None:
        """Use :meth:`open`."""
        self.path = path
        self.conn = conn
        # The write path's statements all run on this one cursor (a transition runs about
        # seven; a cursor per statement costs more than some of them): each is read to its
        # end or writes, so none is left half-read holding a snapshot.
        self._cur = conn.cursor()
        # No sqlite-utils plugins: a package installed beside Aegis must not hook the
        # store's connection, and looking them up scans every installed distribution's
        # entry points (~30 ms per process, before each command's first store use).
        self.db = sqlite_utils.Database(conn, execute_plugins=False)
        self.states = states
        self._closed = False

    @classmethod
    def open(cls, path: Path, *, states: frozenset[str], host_install: bool = False) -> Store:
        """Open (creating and migrating when needed) the store at ``path``.

        Raises:
            EnvironmentFailure: the path is not writable, read-only or locked.
        """
        key = os.path.abspath(path)
        with _OPEN_LOCK:
            if not _OPEN.get(key):
                prepare_dir(path.parent, host_install=host_install)
                prepare_store_file(path, host_install=host_install)
            try:
                conn = sqlite3.connect(path, timeout=BUSY_TIMEOUT_S, isolation_level=None)
            except sqlite3.DatabaseError as e:
                raise _env_error(path, e) from e
            _OPEN[key] = _OPEN.get(key, 0) + 1
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=FULL")
            conn.execute("PRAGMA foreign_keys=ON")
            store = cls(path, conn, states)
            migrate(conn, path)
        except BaseException as e:
            # A store that cannot be prepared is closed here, not left to the garbage
            # collector (Python 3.13 warns about every connection collected open).
            _close(key, conn)
            if isinstance(e, sqlite3.DatabaseError):
                raise _env_error(path, e) from e
            raise
        return store

    def close(self) -> None:
        """Close the connection (once: a second close is nothing)."""
        if not self._closed:
            self._closed = True
            _close(os.path.abspath(self.path), self.conn)

    def __enter__(self) -> Store:
        """Context manager: close on exit."""
        return self

    def __exit__(self, *exc: object) -> None:
        """Close the connection."""
        self.close()

    @contextlib.contextmanager
    def _errors(self) -> Iterator[None]:
        try:
            yield
        except sqlite3.DatabaseError as e:
            raise _env_error(self.path, e) from e

    # ----------------------------------------------------------------- reads

    def _select_requests(
        self,
        where: str,
        params: Sequence[Any],
        corrupt: list[CorruptStoreError] | None = None,
    ) -> list[RequestRecord]:
        """Rows parsed strictly; a bad row raises, or is set aside in ``corrupt`` when given."""
        sql = f"SELECT {_REQUEST_COLUMNS} FROM requests {where}"  # noqa: S608 - our own clauses
        with self._errors():
            rows = list(self.db.query(sql, params))
        out: list[RequestRecord] = []
        for row in rows:
            try:
                out.append(parse_request_row(row, self.states))
            except CorruptStoreError as e:
                if corrupt is None:
                    raise
                corrupt.append(e)
        return out

    def list_ids(self, states: Sequence[str]) -> list[tuple[str, str]]:
        """(id, state) of the requests in ``states``, oldest state change first (unverified)."""
        marks = ", ".join("?" for _ in states)
        with self._errors():
            rows = self.conn.execute(
                f"SELECT id, state FROM requests WHERE state IN ({marks}) ORDER BY updated_at, id",  # noqa: S608
                list(states),
            ).fetchall()
        return [(str(i), str(s)) for i, s in rows]

    def odd_ids(self, states: Sequence[str]) -> list[tuple[str, str]]:
        """(id, state) of requests in ``states`` whose id :func:`check_id` would refuse.

        Reads only the primary-key index (the ids), so counting a large backlog stays
        cheap; the caller reads these few rows one by one and reports them.
        """
        with self._errors():
            ids = self.conn.execute("SELECT id FROM requests").fetchall()
            odd = [i for (i,) in ids if not isinstance(i, str) or not ID_PATTERN.match(i)]
            found = [
                (i, self.conn.execute("SELECT state FROM requests WHERE id = ?", (i,)).fetchone())
                for i in odd
            ]
        wanted = set(states)
        return [(str(i), str(row[0])) for i, row in found if row and row[0] in wanted]

    def find(self, request_id: str) -> RequestRecord | None:
        """The request, or None when there is none."""
        check_id(request_id)
        found = self._select_requests("WHERE id = ?", [request_id])
        return found[0] if found else None

    def get(self, request_id: str) -> RequestRecord:
        """The request.

        Raises:
            RequestNotFoundError: no such request (exit 3).
            CorruptStoreError: the row does not parse or fails its hash (exit 4).
        """
        rec = self.find(request_id)
        if rec is None:
            raise RequestNotFoundError(
                f"no change request {request_id!r}", hint="list them with 'aegis requests'"
            )
        return rec

    def find_by_plan(self, plan_hash_or_id: str) -> RequestRecord | None:
        """The newest request bound to a plan, by plan hash or plan id."""
        found = self._select_requests(
            "WHERE plan_hash = ? OR plan_id = ? ORDER BY created_at DESC LIMIT 1",
            [plan_hash_or_id, plan_hash_or_id],
        )
        return found[0] if found else None

    def list_requests(
        self,
        *,
        state: str | None = None,
        limit: int | None = None,
        corrupt: list[CorruptStoreError] | None = None,
    ) -> list[RequestRecord]:
        """Requests, oldest state change first; optionally only those in ``state``.

        Rows failing their checks raise, or are set aside in ``corrupt`` when it is given
        (so one tampered row does not hide every other request from on-call).
        """
        where, params = ("WHERE state = ?", [state]) if state else ("", [])
        clause = f"{where} ORDER BY updated_at, id"
        if limit is not None:
            clause += f" LIMIT {int(limit)}"
        return self._select_requests(clause, params, corrupt)

    def stuck(
        self,
        cutoffs: dict[str, str],
        now: str,
        corrupt: list[CorruptStoreError] | None = None,
    ) -> list[RequestRecord]:
        """Requests in a state since before its cutoff, or with an expired lease; oldest first.

        Args:
            cutoffs: per state, the time before which entering it means stuck.
            now: current time in store format (for lease expiry).
            corrupt: when given, rows failing their checks go here instead of raising.
        """
        clauses = ["(state = ? AND updated_at < ?)" for _ in cutoffs]
        params: list[Any] = [v for pair in sorted(cutoffs.items()) for v in pair]
        clauses.append("(lease_expires_at IS NOT NULL AND lease_expires_at < ?)")
        params.append(now)
        return self._select_requests(
            f"WHERE {' OR '.join(clauses)} ORDER BY updated_at, id", params, corrupt
        )

    def count_by_state(self) -> dict[str, int]:
        """How many requests sit in each state."""
        with self._errors():
            rows = self.conn.execute(
                "SELECT state, count(*) FROM requests GROUP BY state"
            ).fetchall()
        return {str(s): int(n) for s, n in rows if s in self.states}

    def last_apply_outcomes(self) -> list[tuple[str, str, str]]:
        """(kind, state, at) of the newest recorded end of an apply, per request kind.

        An apply ends where the request leaves ``applying`` (``applied``, ``failed``,
        ``interrupted``). Unverified aggregate like :meth:`count_by_state` (metrics only).
        """
        with self._errors():
            rows = self.conn.execute(
                "SELECT r.kind, h.to_state, max(h.at) FROM history h "
                "JOIN requests r ON r.id = h.request_id "
                "WHERE h.from_state = 'applying' GROUP BY r.kind"
            ).fetchall()
        return [(str(k), str(s), str(a)) for k, s, a in rows if s in self.states]

    def rollback_counts(self) -> list[tuple[str, str, int]]:
        """(request kind, cause, count) of aegisd's automatic restores (``roll_back`` steps).

        The cause is what aegisd recorded: ``probe-failed`` or ``unconfirmed``. Unverified
        aggregate like :meth:`last_apply_outcomes` (metrics only).
        """
        with self._errors():
            rows = self.conn.execute(
                "SELECT r.kind, coalesce(json_extract(h.evidence, '$.facts.cause'), ''), count(*) "
                "FROM history h JOIN requests r ON r.id = h.request_id "
                "WHERE h.trigger = 'roll_back' GROUP BY 1, 2"
            ).fetchall()
        return [(str(k), str(c), int(n)) for k, c, n in rows]

    def history(self, rec: RequestRecord) -> list[HistoryRecord]:
        """The request's verified history: parsed, hash-checked, chained to the request row.

        Raises:
            LostRaceError: a writer committed after ``rec`` was read (exit 6).
            CorruptStoreError: a row fails its checks or the chain is broken (exit 4).
        """
        try:
            return history_reads.whole_history(self.conn, self.states, rec)
        except sqlite3.DatabaseError as e:
            raise _env_error(self.path, e) from e

    def histories(
        self, recs: Sequence[RequestRecord]
    ) -> dict[str, list[HistoryRecord] | CorruptStoreError]:
        """Each request's verified history, as :meth:`history` checks it, read in one query.

        A request whose history fails its checks maps to the error (the others are still
        given); one that moved since ``recs`` were read is read again, as :meth:`load` does.

        Raises:
            EnvironmentFailure: the store cannot be read.
        """
        with self._errors():
            rows = history_reads.history_rows(self.conn, [r.id for r in recs])
        out: dict[str, list[HistoryRecord] | CorruptStoreError] = {}
        for rec in recs:
            try:
                try:
                    out[rec.id] = history_reads.checked_history(rows[rec.id], self.states, rec)
                except LostRaceError:
                    out[rec.id] = self.load(rec.id)[1]
            except CorruptStoreError as e:
                out[rec.id] = e
        return out

    def recorded_kinds(self, rec: RequestRecord, wanted: frozenset[str]) -> frozenset[str]:
        """Kinds of the artifacts on ``rec``'s history, read back from its head as far as needed.

        See :func:`aegis.workflow.history_reads.recorded_kinds`.

        Raises:
            LostRaceError: a writer committed after ``rec`` was read (exit 6).
            CorruptStoreError: a row read fails its checks or the chain is broken (exit 4).
        """
        try:
            return history_reads.recorded_kinds(self.conn, self.states, rec, wanted)
        except sqlite3.DatabaseError as e:
            raise _env_error(self.path, e) from e

    def recorded_documents(
        self, rec: RequestRecord, wanted: frozenset[str], documents: frozenset[str]
    ) -> tuple[frozenset[str], dict[str, bytes]]:
        """:meth:`recorded_kinds`, with the newest artifact of each kind in ``documents``.

        The bytes are hash-checked, for the guards that read a recorded document.

        Raises:
            LostRaceError, CorruptStoreError: as :meth:`recorded_kinds`.
        """
        try:
            kinds, shas = history_reads.recorded_artifacts(
                self.conn, self.states, rec, wanted | documents
            )
        except sqlite3.DatabaseError as e:
            raise _env_error(self.path, e) from e
        return kinds, {k: self.load_artifact(shas[k]) for k in documents if k in shas}

    def load(self, request_id: str) -> tuple[RequestRecord, list[HistoryRecord]]:
        """The request and its verified history, read consistently (retried if it moves)."""
        for _ in range(5):
            rec = self.get(request_id)
            try:
                return rec, self.history(rec)
            except LostRaceError:
                continue  # it moved between the two reads: read again
        rec = self.get(request_id)
        return rec, self.history(rec)

    def load_artifact(self, sha256: str) -> bytes:
        """The artifact's bytes, checked against their address.

        Raises:
            RequestNotFoundError: no such artifact (exit 3).
            CorruptStoreError: the bytes do not hash to ``sha256`` (exit 4).
        """
        check_sha256(sha256)
        with self._errors():
            row = self.conn.execute(
                "SELECT size, body FROM artifacts WHERE sha256 = ?", [sha256]
            ).fetchone()
        if row is None:
            raise RequestNotFoundError(f"no artifact {sha256}")
        size, body = row
        if not isinstance(body, bytes) or size != len(body) or sha256_hex(body) != sha256:
            raise CorruptStoreError(
                f"artifact {sha256} does not match its hash (corrupted or edited)"
            )
        return body

    # ---------------------------------------------------------------- writes

    def commit(
        self, base: RequestRecord, moves: Sequence[Move], *, create: bool = False
    ) -> RequestRecord:
        """Write ``moves`` on top of ``base`` in one transaction; return the new record.

        For moves no guard reads the history for (creation, notes, attachments); a guarded
        transition reads back, decides and writes in one transaction with :meth:`transition`.

        Args:
            base: the request as read before the guards ran (for ``create``: the new row at
                version -1, head ignored).
            moves: the transitions, in order; each becomes one history row.
            create: insert the request instead of updating it.

        Raises:
            LostRaceError: someone else changed the request first (exit 6); nothing written.
            StateError: ``create`` and the id exists.
            EnvironmentFailure: the database is locked, read-only or broken.
        """
        writes = _Writes(base, moves, create=create)
        pause = commit_pause()
        pause("guarded")

        def body() -> None:
            pause("begun")
            self._write(writes, base, create, pause)

        self._immediate(body)
        return writes.rec

    def transition(
        self,
        rec: RequestRecord,
        wanted: frozenset[str],
        documents: frozenset[str],
        decide: Callable[[frozenset[str], dict[str, bytes]], Sequence[Move]],
    ) -> RequestRecord:
        """Read back, decide and write one guarded step in one write transaction.

        Under ``BEGIN IMMEDIATE``: the history is read back from ``rec``'s head as far as
        ``wanted`` and ``documents`` need (as :meth:`recorded_documents` reads it: every
        row parsed, hash-checked and chained to ``rec``); ``decide(kinds, documents)`` runs
        the guards on what was read (pure: no I/O) and returns the moves; they are written
        as :meth:`commit` writes them; ``COMMIT``. Anything raised on the way (a lost race,
        a row failing its checks, a guard's refusal) rolls back: nothing is written. The
        read is one snapshot with the write (no other writer can come between them); the
        version check of the ``UPDATE`` stays.

        Raises:
            LostRaceError: someone else changed the request first (exit 6).
            CorruptStoreError: a row read fails its checks (exit 4).
            StateError: whatever ``decide`` raises (a guard's refusal).
            EnvironmentFailure: the database is locked, read-only or broken.
        """
        pause = commit_pause()

        def body() -> _Writes:
            pause("begun")
            kinds, shas = history_reads.recorded_artifacts(
                self._cur, self.states, rec, wanted | documents if documents else wanted
            )
            docs = {k: self.load_artifact(shas[k]) for k in documents if k in shas}
            writes = _Writes(rec, decide(kinds, docs))
            pause("guarded")
            self._write(writes, rec, False, pause)
            return writes

        return self._immediate(body).rec

    def _immediate(self, body: Callable[[], _T]) -> _T:
        """``body()`` between ``BEGIN IMMEDIATE`` and ``COMMIT``; ``ROLLBACK`` on anything raised.

        A database error on the way (locked, read-only, broken) becomes an
        :class:`EnvironmentFailure` naming the store. A plain call, not a context manager:
        a generator-based one costs a transition more than some of its statements.
        """
        cur = self._cur
        try:
            cur.execute("BEGIN IMMEDIATE")
            try:
                out = body()
                cur.execute("COMMIT")
            except BaseException:
                if self.conn.in_transaction:
                    cur.execute("ROLLBACK")
                raise
        except sqlite3.DatabaseError as e:
            raise _env_error(self.path, e) from e
        return out

    def _write(
        self, writes: _Writes, base: RequestRecord, create: bool, pause: Callable[[str], None]
    ) -> None:
        """The statements of a transition, inside the caller's transaction."""
        cur = self._cur
        self._write_request(writes, base, create)
        pause("state")
        rid = writes.rec.id
        for art, seq, at in writes.artifacts:
            sha = art.sha256
            cur.execute(_INSERT_ARTIFACT, (sha, len(art.body), art.body, at))
            cur.execute(_LINK_ARTIFACT, (rid, art.kind, sha, art.path, seq, at))
        pause("artifact")
        for values in writes.histories:
            cur.execute(_INSERT_HISTORY, values)
        pause("history")

    def _write_request(self, writes: _Writes, base: RequestRecord, create: bool) -> None:
        if create:
            try:
                self._cur.execute(_INSERT_REQUEST, (base.id, *writes.row))
            except sqlite3.IntegrityError as e:
                raise StateError(f"request {base.id!r} already exists") from e
            return
        cur = self._cur.execute(_UPDATE_REQUEST, (*writes.row, base.id, base.version, base.state))
        if cur.rowcount != 1:
            raise LostRaceError(
                f"request {base.id!r} changed while this step ran (it was {base.state!r}, "
                f"version {base.version}); nothing was written",
                hint=f"look at it with 'aegis show {base.id}' and retry if still needed",
            )

    def set_lease(
        self,
        rec: RequestRecord,
        owner: str | None,
        expires_at: str | None,
        now: str,
        *,
        force: bool = False,
    ) -> RequestRecord | None:
        """Take (``owner=None``: release) the request's lease; None when another holds it.

        A lease is advisory: it keeps two resume workers off one request. Taking it does not
        change the version; a transition clears it.
        """
        if (
            not force
            and owner is not None
            and rec.lease_owner not in (None, owner)
            and (rec.lease_expires_at is not None and rec.lease_expires_at >= now)
        ):
            return None
        new = replace(rec, lease_owner=owner, lease_expires_at=expires_at)
        row = request_row(new)
        with self._errors():
            cur = self.conn.execute(
                "UPDATE requests SET lease_owner = ?, lease_expires_at = ?, row_hash = ? "
                "WHERE id = ? AND version = ? AND row_hash = ?",
                [
                    new.lease_owner,
                    new.lease_expires_at,
                    row["row_hash"],
                    rec.id,
                    rec.version,
                    request_row(rec)["row_hash"],
                ],
            )
        return new if cur.rowcount == 1 else None
