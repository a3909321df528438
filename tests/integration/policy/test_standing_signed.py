"""A ``signed`` request with no signed execution plan on record is a corrupted row.

A member of group ``aegis`` can append a correctly chained ``policy -> signed`` history
row with no execution plan behind it. ``aegis show`` must not present it as signed, nor
``aegis resume`` as waiting for ``aegisctl apply``: both report it corrupted (exit 4), and
``aegis doctor`` lists it.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import replace
from pathlib import Path

import pytest
from freezegun import freeze_time

from aegis import api
from aegis.config import Config, load_config
from aegis.devtools import policy_plans as pp
from aegis.workflow.graph import load_workflow
from aegis.workflow.records import (
    HISTORY_COLUMNS,
    HistoryRecord,
    history_hash,
    history_values,
    request_row,
)

from .test_standing import _decided, _run


@pytest.fixture
def cfg(aegis_home: Path) -> Config:
    config = load_config()
    config.policy_path.parent.mkdir(parents=True, exist_ok=True)
    config.policy_path.write_text(pp.policy_toml(), encoding="utf-8")
    return config


def _forge_signed(cfg: Config, request_id: str) -> None:
    """Append a correctly chained ``policy -> signed`` row with no execution plan."""
    rec = api.get_request(cfg, request_id)
    assert rec.state == "policy"
    forged = HistoryRecord(
        request_id=rec.id,
        seq=rec.version + 1,
        from_state="policy",
        to_state="signed",
        trigger="sign",
        actor="mallory",
        at=rec.updated_at,
        artifacts=(),
        facts={"execution_id": "0" * 32},
        workflow=load_workflow().digest,
        prev_hash=rec.head,
    )
    row_hash = history_hash(forged)
    row = request_row(replace(rec, state="signed", version=forged.seq, head=row_hash))
    with sqlite3.connect(cfg.store_path, isolation_level=None) as conn:
        conn.execute(
            f"INSERT INTO history ({', '.join(HISTORY_COLUMNS)}) "  # noqa: S608
            f"VALUES ({', '.join('?' for _ in HISTORY_COLUMNS)})",
            history_values(forged, row_hash),
        )
        sets = ", ".join(f"{k} = ?" for k in row if k != "id")
        conn.execute(
            f"UPDATE requests SET {sets} WHERE id = ?",  # noqa: S608
            [v for k, v in row.items() if k != "id"] + [rec.id],
        )
    conn.close()


def test_a_signed_row_without_an_execution_plan_is_corrupted(cfg: Config) -> None:
    honest = _decided(cfg, pp.clean_plan())
    forged = _decided(cfg, pp.clean_plan(plan_id="p-0000000000000003"))
    _forge_signed(cfg, forged)

    shown = _run("show", forged)
    assert shown.exit_code == 4, shown.output
    assert "no signed execution plan is on record" in shown.stderr
    assert _run("show", honest).exit_code == 0

    listed = _run("requests", "--json")
    assert listed.exit_code == 4
    assert [r["id"] for r in json.loads(listed.stdout)["requests"]] == [honest]

    with freeze_time(pp.NOW):
        resumed = _run("resume", "--json")
    items = {i["request_id"]: i for i in json.loads(resumed.stdout)["items"]}
    assert items[forged]["action"] == "failed"
    assert items[forged]["exit_code"] == 4
    assert "aegisctl apply" not in items[forged]["detail"]
    assert resumed.exit_code == 4

    doctor = _run("doctor", "--json")
    assert doctor.exit_code != 0
    assert forged in doctor.stdout
    assert "no signed execution plan is on record" in doctor.stdout
