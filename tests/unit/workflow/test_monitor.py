"""Stuck detection: per-state thresholds from the workflow file, and lease expiry."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
from freezegun import freeze_time

from aegis import api
from aegis.config import Config
from aegis.standing import CHECKED_STATES
from aegis.workflow.graph import load_workflow
from aegis.workflow.machine import stuck_thresholds
from aegis.workflow.monitor import human_duration, metrics_text, stuck_cutoffs, stuck_reason
from aegis.workflow.records import CorruptStoreError, RequestRecord, format_time

Make = Callable[..., RequestRecord]
T0 = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    "state",
    ["intent", "analyzed", "reviewed", "policy", "signed", "applying", "applied", "interrupted"],
)
def test_threshold_per_state_from_the_workflow_file(
    cfg: Config, make_request: Make, state: str
) -> None:
    limit = stuck_thresholds(load_workflow())[state]
    with freeze_time(T0):
        rec = make_request(state)
    just_before = T0 + timedelta(seconds=limit)
    just_after = T0 + timedelta(seconds=limit + 1)
    assert api.list_requests(cfg, stuck=True, now=just_before, corrupt=[]) == []
    corrupt: list[CorruptStoreError] = []
    stuck = api.list_requests(cfg, stuck=True, now=just_after, corrupt=corrupt)
    if state in CHECKED_STATES:
        # The fixture's policy/execution-plan artifacts are placeholders: named, not listed.
        assert stuck == []
        assert [e.message.split("'")[1] for e in corrupt] == [rec.id]
        with api.open_store(cfg) as store:
            stuck = store.stuck(stuck_cutoffs(load_workflow(), just_after), format_time(just_after))
    assert [r.id for r in stuck] == [rec.id]
    reason = stuck_reason(stuck[0], load_workflow(), just_after)
    assert reason is not None
    assert f"in {state!r}" in reason


def test_terminal_states_are_never_stuck(cfg: Config, make_request: Make) -> None:
    with freeze_time(T0):
        for state in ("audited", "denied", "expired", "failed", "cancelled"):
            make_request(state)
    assert api.list_requests(cfg, stuck=True, now=T0 + timedelta(days=3650)) == []


def test_stuck_is_oldest_first_and_filters_by_state(cfg: Config, make_request: Make) -> None:
    with freeze_time(T0):
        old = make_request("reviewed")
    with freeze_time(T0 + timedelta(hours=1)):
        newer = make_request("analyzed")
    later = T0 + timedelta(days=2)
    assert [r.id for r in api.list_requests(cfg, stuck=True, now=later)] == [old.id, newer.id]
    assert [r.id for r in api.list_requests(cfg, stuck=True, state="analyzed", now=later)] == [
        newer.id
    ]


def test_time_in_state_restarts_on_transition(cfg: Config, make_request: Make) -> None:
    with freeze_time(T0):
        rec = make_request("analyzed")
    with freeze_time(T0 + timedelta(hours=23)):
        api.advance(cfg, rec.id, "review", "r", artifact_kind="review", artifact=b"{}")
    assert api.list_requests(cfg, stuck=True, now=T0 + timedelta(hours=25)) == []


def test_expired_lease_is_stuck_before_the_state_threshold(cfg: Config, make_request: Make) -> None:
    with freeze_time(T0):
        rec = make_request("reviewed")
        with api.open_store(cfg) as store:
            leased = store.set_lease(
                rec, "worker:1", format_time(T0 + timedelta(minutes=5)), format_time(T0)
            )
            assert leased is not None
            # Someone else cannot take a live lease.
            assert store.set_lease(leased, "worker:2", format_time(T0), format_time(T0)) is None
    assert api.list_requests(cfg, stuck=True, now=T0 + timedelta(minutes=4)) == []
    stuck = api.list_requests(cfg, stuck=True, now=T0 + timedelta(minutes=6))
    assert [r.id for r in stuck] == [rec.id]
    reason = stuck_reason(stuck[0], load_workflow(), T0 + timedelta(minutes=6))
    assert reason is not None
    assert "lease of 'worker:1' expired" in reason


def test_human_duration_and_metrics() -> None:
    assert human_duration(0) == "0s"
    assert human_duration(90061) == "1d 1h"
    text = metrics_text({"policy": 2}, {"policy": 1}, ["policy", "signed"])
    assert 'aegis_requests{state="policy"} 2' in text
    assert 'aegis_requests_stuck{state="signed"} 0' in text
