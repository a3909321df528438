"""aegisd's status file against a real ledger: what it lists, and what a reader refuses."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from aegis.config import load_config
from aegis.execute import status_file
from aegis.execute.ledger import Ledger

AT = "2026-01-01T00:00:00.000000Z"


def _xid(n: int) -> str:
    return f"{n:032x}"


@pytest.fixture
def published(aegis_home: Path) -> Ledger:
    cfg = load_config()
    led = Ledger(cfg.ledger_path)
    led.record_started(_xid(1), request_id="r-1", plan_hash="h", peer_uid=0, peer_pid=1, now=AT)
    led.record_started(_xid(2), request_id="r-2", plan_hash="h", peer_uid=0, peer_pid=1, now=AT)
    led.record_finished(_xid(2), exit_status=0, outcome="succeeded", now=AT)
    led.record_started(_xid(3), request_id="r-3", plan_hash="h", peer_uid=0, peer_pid=1, now=AT)
    led.record_finished(_xid(3), exit_status=100, outcome="failed", now=AT)
    led.revoke(_xid(4), reason="cancelled", by_uid=0, now=AT)
    status_file.publish(cfg, led, now=AT)
    return led


def test_each_state_reads_back_like_aegisd_status_verb(published: Ledger) -> None:
    cfg = load_config()
    path = status_file.status_path(cfg)
    assert stat.S_IMODE(path.stat().st_mode) == 0o640
    started = status_file.read_status(cfg, _xid(1))
    assert started is not None
    assert started.state == "started"
    ok = status_file.read_status(cfg, _xid(2))
    assert ok is not None
    assert (ok.state, ok.exit_status, ok.result["outcome"]) == ("finished", 0, "succeeded")
    failed = status_file.read_status(cfg, _xid(3))
    assert failed is not None
    assert failed.exit_status == 100
    revoked = status_file.read_status(cfg, _xid(4))
    assert revoked is not None
    assert revoked.state == "revoked"
    never = status_file.read_status(cfg, _xid(5))
    assert never is not None
    assert never.state is None  # complete list: aegisd never saw it


def test_an_old_unlisted_id_is_unknown_not_never_started(
    published: Ledger, monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg = load_config()
    monkeypatch.setattr(status_file, "MAX_DONE", 1)
    status_file.publish(cfg, published, now=AT)
    doc = json.loads(status_file.status_path(cfg).read_text())
    assert doc["complete"] is False
    assert _xid(1) in doc["executions"]  # a started run is always listed
    assert status_file.read_status(cfg, _xid(2)) is None  # fell out: cannot tell
    assert status_file.read_status(cfg, _xid(9)) is None


def test_a_file_the_group_may_write_or_a_link_is_not_believed(published: Ledger) -> None:
    cfg = load_config()
    path = status_file.status_path(cfg)
    path.chmod(0o660)
    assert status_file.read_status(cfg, _xid(2)) is None
    path.chmod(0o640)
    moved = path.with_name("elsewhere.json")
    os.replace(path, moved)
    path.symlink_to(moved)
    assert status_file.read_status(cfg, _xid(2)) is None


def test_malformed_entries_are_refused(published: Ledger) -> None:
    cfg = load_config()
    path = status_file.status_path(cfg)
    doc = json.loads(path.read_text())
    doc["executions"][_xid(2)]["exit_status"] = "0"
    path.write_text(json.dumps(doc))
    assert status_file.read_status(cfg, _xid(2)) is None
    path.write_text('{"schema_version": "other/1"}')
    assert status_file.read_status(cfg, _xid(1)) is None
    assert status_file.read_status(cfg, "not-an-id") is None


def test_doctor_reports_the_status_file(published: Ledger) -> None:
    from aegis.doctor import run_checks

    cfg = load_config()
    checks = {c.name: c for c in run_checks(cfg)}
    assert checks["aegisd status"].status == "ok"
    assert "4 executions" in checks["aegisd status"].detail
    status_file.status_path(cfg).chmod(0o666)
    checks = {c.name: c for c in run_checks(cfg)}
    assert checks["aegisd status"].status == "fail"
    assert "writable by group or others" in checks["aegisd status"].detail


def test_a_run_going_on_is_published_as_running_and_only_while_it_runs(
    published: Ledger,
) -> None:
    cfg = load_config()
    status_file.publish(cfg, published, now=AT, running=_xid(1))
    live = status_file.read_status(cfg, _xid(1))
    assert live is not None
    assert (live.state, live.result["running"]) == ("started", True)
    finished = status_file.read_status(cfg, _xid(2))
    assert finished is not None
    assert finished.result["running"] is False
    # A restarted aegisd publishes with nothing running: started now means interrupted.
    status_file.publish(cfg, published, now=AT)
    gone = status_file.read_status(cfg, _xid(1))
    assert gone is not None
    assert gone.result["running"] is False
