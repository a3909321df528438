"""A request is shown as waiting for approval only while its policy decision re-verifies.

The store is writable by group ``aegis`` and its row hashes are unkeyed: a member can
append a correctly chained ``denied -> policy`` row. These tests make that forgery (and a
policy change behind a decision) and check that ``aegis requests``, ``aegis show`` and
``aegis resume`` name the request as corrupted (exit 4) instead of as approvable.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from freezegun import freeze_time

from aegis import api
from aegis.cli.aegis import cli
from aegis.config import Config, load_config
from aegis.devtools import policy_plans as pp
from aegis.model import Action, Plan
from aegis.workflow.graph import load_workflow
from aegis.workflow.records import (
    HISTORY_COLUMNS,
    HistoryRecord,
    history_hash,
    history_values,
    request_row,
)

AT = ["--at", pp.NOW]


@pytest.fixture
def cfg(aegis_home: Path) -> Config:
    config = load_config()
    config.policy_path.parent.mkdir(parents=True, exist_ok=True)
    config.policy_path.write_text(pp.policy_toml(), encoding="utf-8")
    return config


def _run(*args: str) -> Any:
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def _decided(cfg: Config, plan: Plan) -> str:
    from aegis.review.record import review_bytes, skipped_review

    planned = api.submit_plan(cfg, plan, "tester")
    review = review_bytes(skipped_review(plan, "skipped by configuration (--no-review)", pp.NOW))
    api.advance(
        cfg, planned.request_id, "review", "tester", artifact_kind="review", artifact=review
    )
    _run("policy", str(planned.plan_path), *AT)
    return planned.request_id


def _forge_undeny(cfg: Config, request_id: str) -> None:
    """Append a correctly chained ``denied -> policy`` row, as a group member could."""
    rec = api.get_request(cfg, request_id)
    assert rec.state == "denied"
    forged = HistoryRecord(
        request_id=rec.id,
        seq=rec.version + 1,
        from_state="denied",
        to_state="policy",
        trigger="decide",
        actor="mallory",
        at=rec.updated_at,
        artifacts=(),
        facts={},
        workflow=load_workflow().digest,
        prev_hash=rec.head,
    )
    row_hash = history_hash(forged)
    new = replace(rec, state="policy", version=forged.seq, head=row_hash)
    row = request_row(new)
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


def _downgrade() -> Plan:
    return pp.clean_plan(
        changes=(
            pp.change("pkg0000", action=Action.DOWNGRADE, current="1.2-1", candidate="1.0-1"),
        ),
        plan_id="p-0000000000000002",
    )


def test_a_forged_undeny_row_is_never_shown_as_approvable(cfg: Config) -> None:
    honest = _decided(cfg, pp.clean_plan())
    denied = _decided(cfg, _downgrade())
    _forge_undeny(cfg, denied)

    listed = _run("requests", "--json")
    assert listed.exit_code == 4, listed.output
    doc = json.loads(listed.stdout)
    assert [r["id"] for r in doc["requests"]] == [honest]
    assert "recorded policy decision is deny" in json.dumps(doc["corrupt"])
    assert _run("requests", "--state", "policy").exit_code == 4

    shown = _run("show", denied)
    assert shown.exit_code == 4
    assert "recorded policy decision is deny" in shown.stderr
    assert _run("show", honest).exit_code == 0

    doctor = _run("doctor", "--json")
    assert doctor.exit_code != 0
    assert "recorded policy decision is deny" in doctor.stdout

    with freeze_time(pp.NOW):  # the decisions are fresh: nothing expires
        resumed = _run("resume", "--json")
    items = {i["request_id"]: i for i in json.loads(resumed.stdout)["items"]}
    assert items[denied]["action"] == "failed"
    assert items[denied]["exit_code"] == 4
    assert items[honest]["action"] == "waiting"
    assert "aegisctl sign" in items[honest]["detail"]
    assert resumed.exit_code == 4


def test_a_decision_made_under_another_policy_is_not_approvable(cfg: Config) -> None:
    request_id = _decided(cfg, pp.clean_plan())
    assert _run("show", request_id).exit_code == 0
    # The policy file changes behind the recorded decision.
    cfg.policy_path.write_text(
        pp.policy_toml().replace('name = "test"', 'name = "edited"', 1), encoding="utf-8"
    )
    shown = _run("show", request_id)
    assert shown.exit_code == 4
    assert "not the one that decided it" in shown.stderr
