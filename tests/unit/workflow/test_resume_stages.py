"""Stage registry, resume and cancel (with the revoke hook)."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from aegis import api
from aegis.config import Config
from aegis.devtools.unsafe_fake_stages import ALL
from aegis.errors import StageUnavailableError, StateError
from aegis.workflow import stages
from aegis.workflow.records import RequestRecord

Make = Callable[..., RequestRecord]


def test_no_fake_stage_is_registered_by_default() -> None:
    for name, target in stages.STAGES.items():
        assert name in stages.STAGE_NAMES
        assert "fake" not in target.lower()
        assert "devtools" not in target


def test_missing_stage_is_not_available(monkeypatch: pytest.MonkeyPatch, cfg: Config) -> None:
    monkeypatch.setenv(stages.UNSAFE_ENV, "reviewer=")
    with pytest.raises(StageUnavailableError, match="not available") as err:
        stages.get_stage("reviewer", cfg)
    assert err.value.exit_code == 6


def test_resume_runs_read_only_steps_and_waits_for_humans(
    monkeypatch: pytest.MonkeyPatch, cfg: Config, make_request: Make
) -> None:
    analyzed = make_request("analyzed")
    to_deny = make_request("analyzed", targets=("deny-me",))
    policy = make_request("policy")
    signed = make_request("signed")
    interrupted = make_request("interrupted")
    applying = make_request("applying")
    monkeypatch.setenv(stages.UNSAFE_ENV, ALL)
    report = api.resume(cfg, "monitor")
    by_id = {i.request_id: i for i in report.items}
    # analyzed -> reviewed, and a second pass goes on to decide.
    assert by_id[analyzed.id].action == "advanced"
    assert by_id[analyzed.id].state_after == "reviewed"
    # The fixture's policy and execution-plan artifacts are placeholders, not evidence:
    # resume never presents such a request as waiting for a human or a key.
    for rec in (policy, signed):
        assert by_id[rec.id].action == "failed"
        assert by_id[rec.id].exit_code == 4
        assert "evidence does not verify" in by_id[rec.id].detail
    assert by_id[interrupted.id].action == "waiting"
    assert "resolve" in by_id[interrupted.id].detail
    # applying: only asked; the fake executor_status says it was interrupted.
    assert by_id[applying.id].state_after == "interrupted"
    api.resume(cfg, "monitor")
    assert api.get_request(cfg, analyzed.id).state == "policy"
    assert api.get_request(cfg, to_deny.id).state == "denied"
    assert api.get_request(cfg, signed.id).state == "signed"
    assert api.get_request(cfg, interrupted.id).state == "interrupted"
    assert (cfg.reviews_dir / f"{analyzed.plan_id}.review.json").is_file()


def test_resume_without_stages_skips_and_says_why(
    monkeypatch: pytest.MonkeyPatch, cfg: Config, make_request: Make
) -> None:
    monkeypatch.setenv(stages.UNSAFE_ENV, "reviewer=,policy=,executor_status=,auditor=")
    rec = make_request("analyzed")
    report = api.resume(cfg, "monitor")
    assert [(i.action, i.detail) for i in report.items] == [
        ("skipped", "the reviewer stage is not available in this build")
    ]
    after = api.get_request(cfg, rec.id)
    assert after.state == "analyzed"
    assert after.lease_owner is None


def test_cancel_before_signing(cfg: Config, make_request: Make) -> None:
    rec = make_request("reviewed")
    out = api.cancel(cfg, rec.id, "alice", "superseded")
    assert out.state == "cancelled"
    assert api.get_request_detail(cfg, rec.id).history[-1].facts == {"reason": "superseded"}
    with pytest.raises(StateError):
        api.cancel(cfg, rec.id, "alice", "again")


def test_cancel_signed_without_revoker_is_refused(
    monkeypatch: pytest.MonkeyPatch, cfg: Config, make_request: Make
) -> None:
    monkeypatch.setenv(stages.UNSAFE_ENV, "revoker=")
    rec = make_request("signed")
    with pytest.raises(StageUnavailableError, match="refusing to cancel signed") as err:
        api.cancel(cfg, rec.id, "alice", "oops")
    assert err.value.exit_code == 6
    assert api.get_request(cfg, rec.id) == rec


def test_cancel_signed_revokes_first(
    monkeypatch: pytest.MonkeyPatch, cfg: Config, make_request: Make
) -> None:
    monkeypatch.setenv(stages.UNSAFE_ENV, ALL)
    rec = make_request("signed")
    out = api.cancel(cfg, rec.id, "alice", "oops")
    assert out.state == "cancelled"
    assert (cfg.state_dir / "fake-revoked" / rec.id).read_bytes() == b'{"execution_id":"x-1"}'
    assert api.get_request_detail(cfg, rec.id).history[-1].facts["revoked"] is True


def test_cancel_applying_is_illegal(cfg: Config, make_request: Make) -> None:
    rec = make_request("applying")
    with pytest.raises(StateError, match="not allowed"):
        api.cancel(cfg, rec.id, "alice", "stop")


def test_resume_reports_a_corrupted_row_and_goes_on(
    monkeypatch: pytest.MonkeyPatch, cfg: Config, make_request: Make
) -> None:
    import sqlite3

    bad = make_request("analyzed")
    good = make_request("analyzed")
    with sqlite3.connect(cfg.store_path) as conn:
        conn.execute("UPDATE requests SET summary = 'edited' WHERE id = ?", [bad.id])
    monkeypatch.setenv(stages.UNSAFE_ENV, ALL)
    report = api.resume(cfg, "monitor")
    by_id = {i.request_id: i for i in report.items}
    assert by_id[bad.id].action == "failed"
    assert by_id[bad.id].exit_code == 4
    assert by_id[good.id].state_after == "reviewed"


def test_resume_expires_only_what_the_expiry_stage_says(
    monkeypatch: pytest.MonkeyPatch, cfg: Config, make_request: Make
) -> None:
    stale = make_request("signed", targets=("expire-me",))
    fresh = make_request("policy")
    monkeypatch.setenv(stages.UNSAFE_ENV, "expiry=")
    report = api.resume(cfg, "monitor")
    # Placeholder evidence (see the fixture) is never shown as waiting for a human...
    assert {i.request_id: i.action for i in report.items} == {
        stale.id: "failed",
        fresh.id: "failed",
    }
    monkeypatch.setenv(stages.UNSAFE_ENV, ALL)
    api.resume(cfg, "monitor")  # ...but what only makes it stricter still runs
    assert api.get_request(cfg, stale.id).state == "expired"
    assert api.get_request(cfg, fresh.id).state == "policy"
    last = api.get_request_detail(cfg, stale.id).history[-1]
    assert last.trigger == "expire"
    assert last.facts["reason"].startswith("fake: expired")
