"""aegisd's root-only execution ledger: every execution id is used at most once.

The ledger is its own SQLite file under ``cfg.aegisd_dir`` (0700 directory, 0600
file), separate from the group-writable state store: anyone in ``aegis`` can edit
the store, so nothing there can unburn an id. Writes use ``synchronous=FULL`` in
rollback-journal mode, so a row is on disk (fsync'd) before the call returns:
``started`` is durable before the command runs, ``finished`` after it.

States: ``started`` (running, or interrupted when no ``finished`` follows),
``finished`` (with exit status), ``revoked`` (burned before use). Any row at all
means the id is spent; only a missing row may be submitted.

Example:
    >>> led = Ledger(cfg.ledger_path)
    >>> led.record_started("ex-1", request_id="r", plan_hash="h", peer_uid=0, peer_pid=1,
    ...                    now="2026-01-01T00:00:00Z")
    >>> led.lookup("ex-1").state
    'started'
"""

from __future__ import annotations

import os
import sqlite3
from dataclasses import dataclass
from pathlib import Path

from aegis.errors import EnvironmentFailure, StateError

STARTED = "started"
FINISHED = "finished"
REVOKED = "revoked"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS executions (
    execution_id TEXT PRIMARY KEY,
    request_id TEXT,
    plan_hash TEXT,
    state TEXT NOT NULL CHECK (state IN ('started', 'finished', 'revoked')),
    peer_uid INTEGER,
    peer_pid INTEGER,
    started_at TEXT,
    finished_at TEXT,
    exit_status INTEGER,
    outcome TEXT,
    revoked_at TEXT,
    reason TEXT
)
"""


class ReplayError(StateError):
    """The execution id was already used or revoked."""


@dataclass(frozen=True)
class LedgerEntry:
    """One execution id's row."""

    execution_id: str
    request_id: str | None
    plan_hash: str | None
    state: str
    peer_uid: int | None
    peer_pid: int | None
    started_at: str | None
    finished_at: str | None
    exit_status: int | None
    outcome: str | None
    """succeeded, failed, refused-by-apt, timeout: set with ``finished``."""
    revoked_at: str | None
    reason: str | None


_COLUMNS = (
    "execution_id, request_id, plan_hash, state, peer_uid, peer_pid, started_at, "
    "finished_at, exit_status, outcome, revoked_at, reason"
)


class Ledger:
    """The ledger file; one short-lived connection per call (thread-safe by design)."""

    def __init__(self, path: Path, *, create: bool = True) -> None:
        """Open (and when ``create``, initialise) the ledger at ``path``.

        Raises:
            EnvironmentFailure: the file cannot be created or opened.
        """
        self.path = path
        if create:
            try:
                path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
                fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
                os.close(fd)
                with _closing(self._connect()) as db:
                    db.execute(_SCHEMA)
            except (OSError, sqlite3.Error) as e:
                raise EnvironmentFailure(f"cannot open aegisd ledger {path}: {e}") from e

    def _connect(self, *, readonly: bool = False) -> sqlite3.Connection:
        if readonly:
            db = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, timeout=30)
        else:
            db = sqlite3.connect(self.path, timeout=30, isolation_level=None)
            try:
                # FULL + rollback journal: each commit is fsync'd before it returns.
                db.execute("PRAGMA journal_mode=DELETE")
                db.execute("PRAGMA synchronous=FULL")
            except BaseException:
                db.close()  # never left to the garbage collector (Python 3.13 warns)
                raise
        return db

    def lookup(self, execution_id: str) -> LedgerEntry | None:
        """Return the row of ``execution_id``, or None when it was never seen."""
        try:
            with _closing(self._connect(readonly=True)) as db:
                row = db.execute(
                    f"SELECT {_COLUMNS} FROM executions WHERE execution_id = ?",  # noqa: S608
                    (execution_id,),
                ).fetchone()
        except sqlite3.Error as e:
            raise EnvironmentFailure(f"cannot read aegisd ledger {self.path}: {e}") from e
        return LedgerEntry(*row) if row else None

    def entries(self) -> list[LedgerEntry]:
        """Return every row (for ``status`` listings and tests)."""
        with _closing(self._connect(readonly=True)) as db:
            rows = db.execute(f"SELECT {_COLUMNS} FROM executions ORDER BY rowid").fetchall()  # noqa: S608
        return [LedgerEntry(*r) for r in rows]

    def recent(self, limit: int) -> tuple[list[LedgerEntry], bool]:
        """Every ``started`` row plus the ``limit`` newest others, and whether that is all.

        What aegisd publishes for the monitor (:mod:`aegis.execute.status_file`): a run
        that never finished is always listed, however old.
        """
        with _closing(self._connect(readonly=True)) as db:
            started = db.execute(
                f"SELECT {_COLUMNS} FROM executions WHERE state = ? ORDER BY rowid",  # noqa: S608
                (STARTED,),
            ).fetchall()
            others = db.execute(
                f"SELECT {_COLUMNS} FROM executions WHERE state != ? "  # noqa: S608
                "ORDER BY rowid DESC LIMIT ?",
                (STARTED, limit + 1),
            ).fetchall()
        complete = len(others) <= limit
        rows = [LedgerEntry(*r) for r in started] + [LedgerEntry(*r) for r in others[:limit]]
        return rows, complete

    def _insert(self, entry: LedgerEntry) -> None:
        db = self._connect()
        try:
            db.execute("BEGIN IMMEDIATE")
            existing = db.execute(
                "SELECT state FROM executions WHERE execution_id = ?", (entry.execution_id,)
            ).fetchone()
            if existing:
                db.execute("ROLLBACK")
                raise ReplayError(
                    f"execution id {entry.execution_id} was already {existing[0]}; "
                    "an execution plan runs at most once",
                    hint="sign a new execution plan",
                )
            db.execute(
                f"INSERT INTO executions ({_COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",  # noqa: S608
                (
                    entry.execution_id,
                    entry.request_id,
                    entry.plan_hash,
                    entry.state,
                    entry.peer_uid,
                    entry.peer_pid,
                    entry.started_at,
                    entry.finished_at,
                    entry.exit_status,
                    entry.outcome,
                    entry.revoked_at,
                    entry.reason,
                ),
            )
            db.execute("COMMIT")
        except sqlite3.Error as e:
            raise EnvironmentFailure(f"cannot write aegisd ledger {self.path}: {e}") from e
        finally:
            db.close()

    def record_started(
        self,
        execution_id: str,
        *,
        request_id: str | None,
        plan_hash: str | None,
        peer_uid: int,
        peer_pid: int,
        now: str,
    ) -> None:
        """Record ``started`` durably; refuse an id that has any row already.

        Raises:
            ReplayError: the id was used or revoked (also by a concurrent submission).
        """
        self._insert(
            LedgerEntry(
                execution_id,
                request_id,
                plan_hash,
                STARTED,
                peer_uid,
                peer_pid,
                now,
                None,
                None,
                None,
                None,
                None,
            )
        )

    def record_finished(
        self, execution_id: str, *, exit_status: int, outcome: str, now: str
    ) -> None:
        """Record ``finished`` for a started id.

        Raises:
            StateError: the id is not in state ``started``.
        """
        db = self._connect()
        try:
            cur = db.execute(
                "UPDATE executions SET state = ?, finished_at = ?, exit_status = ?, outcome = ? "
                "WHERE execution_id = ? AND state = ?",
                (FINISHED, now, exit_status, outcome, execution_id, STARTED),
            )
            if cur.rowcount != 1:
                raise StateError(f"execution id {execution_id} is not running")
        except sqlite3.Error as e:
            raise EnvironmentFailure(f"cannot write aegisd ledger {self.path}: {e}") from e
        finally:
            db.close()

    def record_resolved(self, execution_id: str, *, outcome: str, now: str, reason: str) -> None:
        """Close an interrupted (started, never finished) id with an operator's resolution.

        Raises:
            StateError: the id is not in state ``started``.
        """
        db = self._connect()
        try:
            cur = db.execute(
                "UPDATE executions SET state = ?, finished_at = ?, outcome = ?, reason = ? "
                "WHERE execution_id = ? AND state = ?",
                (FINISHED, now, outcome, reason, execution_id, STARTED),
            )
            if cur.rowcount != 1:
                raise StateError(f"execution id {execution_id} is not interrupted")
        except sqlite3.Error as e:
            raise EnvironmentFailure(f"cannot write aegisd ledger {self.path}: {e}") from e
        finally:
            db.close()

    def revoke(self, execution_id: str, *, reason: str, by_uid: int, now: str) -> LedgerEntry:
        """Burn an unused id; revoking an already revoked id is a no-op.

        Raises:
            StateError: the id already started or finished (too late to revoke).
        """
        entry = self.lookup(execution_id)
        if entry is not None:
            if entry.state == REVOKED:
                return entry
            raise StateError(
                f"execution id {execution_id} is already {entry.state}; it cannot be revoked"
            )
        try:
            self._insert(
                LedgerEntry(
                    execution_id,
                    None,
                    None,
                    REVOKED,
                    by_uid,
                    None,
                    None,
                    None,
                    None,
                    None,
                    now,
                    reason,
                )
            )
        except ReplayError:
            return self.revoke(execution_id, reason=reason, by_uid=by_uid, now=now)
        got = self.lookup(execution_id)
        assert got is not None
        return got


class _closing:
    """Close a connection on exit (sqlite3's context manager only commits)."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db

    def __enter__(self) -> sqlite3.Connection:
        return self.db

    def __exit__(self, *exc: object) -> None:
        self.db.close()
