"""aegisd's verification rows: the dead-man state of a change after its run.

A table in aegisd's root-only ledger file (:mod:`aegis.execute.ledger`), written with
the same ``synchronous=FULL`` journal, so the wall-clock deadline and the last probe
results survive a crash or restart of aegisd. The row holds the signed execution plan's
bytes: after a restart aegisd reads back what it checked itself, never anything from the
group-writable store.

States: ``pending`` (recorded with ``started``, before the run), ``verifying`` (the run
succeeded; probes and confirmation are awaited until ``deadline``), ``passed``,
``rolling-back``, ``rolled-back``, ``rollback-failed``, ``abandoned`` (the run itself
failed or was interrupted: nothing to verify).

Example:
    >>> rows = Verifications(cfg.ledger_path)
    >>> rows.open_rows()
    []
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from pathlib import Path

from aegis.canonical import canonical_bytes, loads_strict
from aegis.errors import EnvironmentFailure, InputError, StateError
from aegis.health.spec import MAX_PROBES

PENDING = "pending"
VERIFYING = "verifying"
PASSED = "passed"
ROLLING_BACK = "rolling-back"
ROLLED_BACK = "rolled-back"
ROLLBACK_FAILED = "rollback-failed"
ABANDONED = "abandoned"
OPEN = (PENDING, VERIFYING, ROLLING_BACK)
SETTLED = (PASSED, ROLLED_BACK, ROLLBACK_FAILED, ABANDONED)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS verifications (
    execution_id TEXT PRIMARY KEY,
    request_id TEXT,
    plan BLOB NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('pending', 'verifying', 'passed', 'rolling-back',
        'rolled-back', 'rollback-failed', 'abandoned')),
    deadline TEXT,
    confirm INTEGER NOT NULL,
    probes_passed INTEGER NOT NULL DEFAULT 0,
    confirmed_by INTEGER,
    confirmed_at TEXT,
    cause TEXT,
    detail TEXT,
    updated_at TEXT NOT NULL,
    probes TEXT
)
"""
_COLUMNS = (
    "execution_id, request_id, plan, state, deadline, confirm, probes_passed, "
    "confirmed_by, confirmed_at, cause, detail, updated_at, probes"
)
MAX_PROBE_RESULTS = MAX_PROBES
"""One result per probe of the verification."""
_RESULT_TYPES: dict[str, tuple[type, ...]] = {
    "probe": (str,),
    "ok": (bool,),
    "detail": (str,),
    "duration_ms": (int,),
}


@dataclass(frozen=True)
class VerificationRow:
    """One execution's verification."""

    execution_id: str
    request_id: str | None
    plan: bytes
    state: str
    deadline: str | None
    confirm: bool
    probes_passed: bool
    confirmed_by: int | None
    confirmed_at: str | None
    cause: str | None
    """Why it was rolled back: ``probe-failed``, ``unconfirmed`` or ``aegisd-restarted``."""
    detail: str | None
    updated_at: str
    probes: tuple[dict[str, object], ...] = ()
    """The last round's probe results (``probe``, ``ok``, ``detail``, ``duration_ms``), kept
    with the row so they outlive a restart of aegisd."""

    def public(self) -> dict[str, object]:
        """What status answers carry (no plan bytes)."""
        return {
            "state": self.state,
            "deadline": self.deadline,
            "confirm": self.confirm,
            "probes_passed": self.probes_passed,
            "confirmed_by": self.confirmed_by,
            "cause": self.cause,
            "detail": self.detail,
            "probes": [dict(p) for p in self.probes],
        }


def check_results(raw: object) -> tuple[dict[str, object], ...]:
    """Probe results read back (from the ledger or aegisd's status file), strictly.

    Raises:
        InputError: not a list of results of the known fields and types.
    """
    if not isinstance(raw, list) or len(raw) > MAX_PROBE_RESULTS:
        raise InputError("malformed verification probes")
    out = []
    for item in raw:
        if not isinstance(item, dict) or set(item) != set(_RESULT_TYPES):
            raise InputError("malformed verification probe result")
        for key, allowed in _RESULT_TYPES.items():
            value = item[key]
            if not isinstance(value, allowed) or (allowed == (int,) and isinstance(value, bool)):
                raise InputError(f"malformed verification probe {key}")
        out.append(dict(item))
    return tuple(out)


def _results(text: object) -> tuple[dict[str, object], ...]:
    if text is None:
        return ()

    try:
        return check_results(loads_strict(str(text).encode()))
    except InputError:
        # A row aegisd wrote itself, in its root-only ledger: unreadable results are
        # shown as none rather than failing the verification they describe.
        return ()


def _row(r: tuple[object, ...]) -> VerificationRow:
    (xid, rid, plan, state, deadline, confirm, passed, by, at, cause, detail, updated, probes) = r
    return VerificationRow(
        str(xid),
        None if rid is None else str(rid),
        bytes(plan),  # type: ignore[call-overload]
        str(state),
        None if deadline is None else str(deadline),
        bool(confirm),
        bool(passed),
        None if by is None else int(by),  # type: ignore[call-overload]
        None if at is None else str(at),
        None if cause is None else str(cause),
        None if detail is None else str(detail),
        str(updated),
        _results(probes),
    )


def check_public(raw: object) -> dict[str, object]:
    """A row's public form read back from a file others may read (strict), or refuse.

    Raises:
        InputError: an unknown state or a field of the wrong type.
    """
    if not isinstance(raw, dict) or raw.get("state") not in (*OPEN, *SETTLED):
        raise InputError("malformed verification")
    types = {
        "deadline": (str, type(None)),
        "confirm": (bool,),
        "probes_passed": (bool,),
        "confirmed_by": (int, type(None)),
        "cause": (str, type(None)),
        "detail": (str, type(None)),
    }
    if set(raw) - {"state", "probes", *types}:
        raise InputError("malformed verification")
    for key, allowed in types.items():
        if not isinstance(raw.get(key), allowed):
            raise InputError(f"malformed verification {key}")
    return {**raw, "probes": list(check_results(raw.get("probes", [])))}


class Verifications:
    """The table; one short-lived connection per call, like the ledger."""

    def __init__(self, path: Path) -> None:
        """Create the table in the ledger file when missing.

        Raises:
            EnvironmentFailure: the ledger cannot be opened.
        """
        self.path = path
        try:
            with self._db() as db:
                db.execute(_SCHEMA)
                # A ledger from before the probe results were kept gains their column.
                columns = {str(c[1]) for c in db.execute("PRAGMA table_info(verifications)")}
                if "probes" not in columns:
                    db.execute("ALTER TABLE verifications ADD COLUMN probes TEXT")
        except sqlite3.Error as e:
            raise EnvironmentFailure(f"cannot open aegisd ledger {path}: {e}") from e

    def _db(self) -> _Conn:
        return _Conn(self.path)

    def get(self, execution_id: str) -> VerificationRow | None:
        """The row of ``execution_id``, or None."""
        with self._db() as db:
            r = db.execute(
                f"SELECT {_COLUMNS} FROM verifications WHERE execution_id = ?",  # noqa: S608
                (execution_id,),
            ).fetchone()
        return _row(r) if r else None

    def open_rows(self) -> list[VerificationRow]:
        """Rows not settled yet, oldest first."""
        with self._db() as db:
            rows = db.execute(
                f"SELECT {_COLUMNS} FROM verifications WHERE state IN (?, ?, ?) "  # noqa: S608
                "ORDER BY rowid",
                OPEN,
            ).fetchall()
        return [_row(r) for r in rows]

    def by_execution(self, ids: list[str]) -> dict[str, VerificationRow]:
        """The rows of ``ids`` that exist (for aegisd's status file)."""
        if not ids:
            return {}
        marks = ", ".join("?" for _ in ids)
        with self._db() as db:
            rows = db.execute(
                f"SELECT {_COLUMNS} FROM verifications WHERE execution_id IN ({marks})",  # noqa: S608
                ids,
            ).fetchall()
        return {str(r[0]): _row(r) for r in rows}

    def insert(
        self, execution_id: str, request_id: str | None, plan: bytes, confirm: bool, now: str
    ) -> None:
        """Record ``pending`` before the run."""
        with self._db() as db:
            db.execute(
                "INSERT INTO verifications (execution_id, request_id, plan, state, confirm, "
                "updated_at) VALUES (?, ?, ?, 'pending', ?, ?)",
                (execution_id, request_id, plan, int(confirm), now),
            )

    def move(
        self,
        execution_id: str,
        frm: tuple[str, ...],
        to: str,
        now: str,
        **fields: object,
    ) -> VerificationRow:
        """Change the state from one of ``frm`` to ``to`` (and set ``fields``) atomically.

        Raises:
            StateError: the row is not in one of ``frm`` (another thread settled it).
        """
        allowed = {
            "deadline",
            "probes_passed",
            "confirmed_by",
            "confirmed_at",
            "cause",
            "detail",
            "probes",
        }
        assert set(fields) <= allowed
        if "probes" in fields:
            fields["probes"] = canonical_bytes(list(check_results(fields["probes"]))).decode()
        sets = "".join(f", {k} = ?" for k in fields)
        marks = ", ".join("?" for _ in frm)
        with self._db() as db:
            cur = db.execute(
                f"UPDATE verifications SET state = ?, updated_at = ?{sets} "  # noqa: S608
                f"WHERE execution_id = ? AND state IN ({marks})",
                (to, now, *fields.values(), execution_id, *frm),
            )
            if cur.rowcount != 1:
                raise StateError(f"verification of {execution_id} is not {' or '.join(frm)}")
        row = self.get(execution_id)
        assert row is not None
        return row


class _Conn:
    """A write connection with the ledger's durability, closed on exit."""

    def __init__(self, path: Path) -> None:
        self.db = sqlite3.connect(path, timeout=30, isolation_level=None)
        self.db.execute("PRAGMA journal_mode=DELETE")
        self.db.execute("PRAGMA synchronous=FULL")

    def __enter__(self) -> sqlite3.Connection:
        return self.db

    def __exit__(self, *exc: object) -> None:
        self.db.close()
