"""Schema migrations of the state store: ``state/migrations/NNNN_*.sql`` by ``user_version``.

Each migration runs in its own ``BEGIN IMMEDIATE`` transaction and re-reads
``user_version`` inside it, so two processes opening a fresh store at once apply
each step exactly once. A store newer than this Aegis is refused rather than
written with an older idea of the schema.

Example:
    >>> migrate(conn, Path("/var/lib/aegis/state.db"))
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from aegis.errors import EnvironmentFailure
from aegis.workflow.shipped import shipped_path

__all__ = ["migrate", "migrations_dir", "split_sql"]


def migrations_dir() -> Path:
    """The shipped ``state/migrations`` folder (source tree or installed ``_data``)."""
    return shipped_path("state", "migrations", is_dir=True)


def migrate(conn: sqlite3.Connection, path: Path) -> None:
    """Bring the store on ``conn`` to the newest schema this Aegis ships.

    Raises:
        EnvironmentFailure: the store's schema is newer than this Aegis knows.
        sqlite3.DatabaseError: the store cannot be read or written.
    """
    current = int(conn.execute("PRAGMA user_version").fetchone()[0])
    files = sorted(migrations_dir().glob("[0-9][0-9][0-9][0-9]_*.sql"))
    known = len(files)
    if current > known:
        raise EnvironmentFailure(
            f"the state store {path} has schema version {current}, newer than this "
            f"Aegis knows ({known})",
            hint="upgrade Aegis",
        )
    for number, sql_file in enumerate(files, start=1):
        if number <= current:
            continue
        sql = sql_file.read_text(encoding="utf-8")
        conn.execute("BEGIN IMMEDIATE")
        try:
            if int(conn.execute("PRAGMA user_version").fetchone()[0]) >= number:
                conn.execute("ROLLBACK")  # another process migrated meanwhile
                continue
            for statement in split_sql(sql):
                conn.execute(statement)
            conn.execute(f"PRAGMA user_version = {number}")
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise


def split_sql(sql: str) -> list[str]:
    """Split a migration into statements (sqlite3.complete_statement handles triggers)."""
    out: list[str] = []
    buf = ""
    for line in sql.splitlines(keepends=True):
        if not buf and (not line.strip() or line.lstrip().startswith("--")):
            continue
        buf += line
        if sqlite3.complete_statement(buf):
            out.append(buf.strip())
            buf = ""
    if buf.strip():
        raise RuntimeError("migration ends inside a statement")
    return out
