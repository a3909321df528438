"""aegisd's verification rows keep the last probe results, durably (issue 15)."""

from __future__ import annotations

import sqlite3
from contextlib import closing
from pathlib import Path

import pytest

from aegis.errors import InputError
from aegis.execute.verifications import Verifications, check_public

FAILED = {"probe": "http:http://127.0.0.1:80/", "ok": False, "detail": "HTTP 500", "duration_ms": 3}
NOW = "2026-12-07T13:00:00.000000Z"


def test_probe_results_outlive_the_process_that_wrote_them(tmp_path: Path) -> None:
    path = tmp_path / "ledger.sqlite3"
    rows = Verifications(path)
    rows.insert("x" * 32, "r-1", b"{}", False, NOW)
    rows.move("x" * 32, ("pending",), "verifying", NOW, deadline=NOW, probes=[FAILED])
    # A fresh reader, as aegisd after a restart: the results are in the row.
    row = Verifications(path).get("x" * 32)
    assert row is not None
    assert row.probes == (FAILED,)
    assert row.public()["probes"] == [FAILED]
    assert check_public(row.public())["probes"] == [FAILED]


def test_a_ledger_from_before_the_column_gains_it(tmp_path: Path) -> None:
    path = tmp_path / "ledger.sqlite3"
    with closing(sqlite3.connect(path)) as db:
        db.execute(
            "CREATE TABLE verifications (execution_id TEXT PRIMARY KEY, request_id TEXT, "
            "plan BLOB NOT NULL, state TEXT NOT NULL, deadline TEXT, confirm INTEGER NOT NULL, "
            "probes_passed INTEGER NOT NULL DEFAULT 0, confirmed_by INTEGER, confirmed_at TEXT, "
            "cause TEXT, detail TEXT, updated_at TEXT NOT NULL)"
        )
        db.execute(
            "INSERT INTO verifications (execution_id, plan, state, confirm, updated_at) "
            "VALUES ('old', x'7b7d', 'verifying', 0, ?)",
            [NOW],
        )
        db.commit()
    rows = Verifications(path)
    old = rows.get("old")
    assert old is not None
    assert old.probes == ()
    rows.move("old", ("verifying",), "verifying", NOW, probes=[FAILED])
    assert rows.get("old").probes == (FAILED,)  # type: ignore[union-attr]


@pytest.mark.parametrize(
    "probes",
    [
        "HTTP 500",
        [{**FAILED, "ok": "no"}],
        [{**FAILED, "duration_ms": True}],
        [{**FAILED, "extra": 1}],
        [{k: v for k, v in FAILED.items() if k != "detail"}],
        [FAILED] * 17,
    ],
    ids=["not-a-list", "ok-string", "bool-duration", "extra-key", "missing-key", "too-many"],
)
def test_published_probe_results_are_read_back_strictly(probes: object) -> None:
    """aegisd's status file is read by group aegis: results of an unknown shape are refused."""
    public = {
        "state": "verifying",
        "deadline": NOW,
        "confirm": False,
        "probes_passed": False,
        "confirmed_by": None,
        "cause": None,
        "detail": None,
        "probes": probes,
    }
    with pytest.raises(InputError, match="malformed verification"):
        check_public(public)


def test_a_status_from_before_the_results_reads_as_none() -> None:
    public = {"state": "passed", "deadline": None, "confirm": False, "probes_passed": True}
    public |= {"confirmed_by": None, "cause": None, "detail": None}
    assert check_public(public)["probes"] == []
