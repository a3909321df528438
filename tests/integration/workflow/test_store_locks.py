"""Opening the store again in one process keeps SQLite's locks of the connection open.

Settling the store's files opens and closes them, and closing any descriptor of a file
drops every POSIX lock the process holds on it. On the booted host an unattended pass
held the store open while its steps opened it again; another process then reset the
write-ahead log under the open connection, and the store came out malformed.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from aegis.workflow.access import workflow
from aegis.workflow.store import Store

CHECKPOINT = (
    "import sqlite3, sys; c = sqlite3.connect(sys.argv[1], timeout=0);"
    " print(c.execute('PRAGMA wal_checkpoint(TRUNCATE)').fetchone()[0])"
)


def _busy_for_another_process(path: Path) -> bool:
    """Whether a WAL reset from another process is refused (a reader here holds it)."""
    out = subprocess.run(
        [sys.executable, "-c", CHECKPOINT, str(path)],
        capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    return out.stdout.strip() == "1"


def test_a_second_open_keeps_the_first_connections_locks(tmp_path: Path) -> None:
    path = tmp_path / "state" / "state.db"
    states = frozenset(workflow().states)
    umask = os.umask(0o022)  # a host install's open sets the process umask to 007
    held = Store.open(path, states=states, host_install=True)
    try:
        held.conn.execute("BEGIN")
        held.conn.execute("SELECT count(*) FROM sqlite_master").fetchall()
        assert _busy_for_another_process(path)  # the reader's lock is seen
        Store.open(path, states=states, host_install=True).close()
        assert _busy_for_another_process(path)  # and still seen after another open
        held.conn.execute("COMMIT")
    finally:
        held.close()
        os.umask(umask)
    assert not _busy_for_another_process(path)
