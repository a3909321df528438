"""package.release-age: the quarantine of versions a source has only just started to offer
(issue 12 item 18), judged from when Aegis first saw them and the Release Date."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from aegis.devtools.policy_plans import change, clean_plan, policy_toml
from aegis.model import FirstSeen
from aegis.policy.config import PolicyConfigError, parse_policy_config
from aegis.policy.engine import evaluate

NOW = datetime(2026, 1, 10, 12, 0, tzinfo=UTC)
DAY = 86_400


def _fired(first_seen: str | None, release_date: str | None, extra: str) -> list[str]:
    seen = (
        ()
        if first_seen is None
        else (FirstSeen("pkg0000", "1.2-1", "dist", first_seen, release_date),)
    )
    plan = clean_plan(
        changes=(change("pkg0000"),), first_seen=seen, created_at="2026-01-10T11:55:00Z"
    )
    result = evaluate(plan, None, parse_policy_config(policy_toml(extra=extra)), NOW)
    hit = [f.reason for f in result.fired if f.rule_id == "package.release-age"]
    return hit


THREE_DAYS = f"[thresholds]\nmin_release_age_s = {3 * DAY}\n"


@pytest.mark.parametrize(
    ("first_seen", "release_date", "young"),
    [
        ("2026-01-10T11:00:00Z", None, True),  # seen an hour ago, no Release Date
        ("2026-01-10T11:00:00Z", "2026-01-10T10:00:00Z", True),  # Release dated 2 h ago
        ("2026-01-10T11:00:00Z", "2026-01-01T00:00:00Z", False),  # in a Release 9 days old
        ("2026-01-06T00:00:00Z", "2026-01-09T00:00:00Z", False),  # first seen 4.5 days ago
        ("2026-01-08T00:00:00Z", None, True),  # 2.5 days: not yet
        (None, None, True),  # never recorded: unknown age is new, never old
        ("not a time", None, True),
        ("2026-02-01T00:00:00Z", None, True),  # recorded in the future: not old
    ],
)
def test_age_from_first_sighting_bounded_by_release_date(
    first_seen: str | None, release_date: str | None, young: bool
) -> None:
    assert bool(_fired(first_seen, release_date, THREE_DAYS)) is young


def test_off_by_default_and_per_source() -> None:
    assert _fired("2026-01-10T11:59:00Z", None, "") == []
    # Policy-wide on, but 0 for the distribution source (a security suite, say).
    toml = policy_toml(extra=THREE_DAYS).replace(
        "distribution = true\n", "distribution = true\nmin_release_age_s = 0\n"
    )
    plan = clean_plan(changes=(change("pkg0000"),), created_at="2026-01-10T11:55:00Z")
    result = evaluate(plan, None, parse_policy_config(toml), NOW)
    assert "package.release-age" not in [f.rule_id for f in result.fired]


def test_the_reason_names_the_version_and_the_ages() -> None:
    (reason,) = _fired("2026-01-10T06:00:00Z", None, THREE_DAYS)
    assert reason == "too new to install unreviewed: pkg0000 1.2-1 (offered for 6h, minimum 3d)"


@pytest.mark.parametrize("value", ["-1", '"3d"', "true"])
def test_bad_values_are_refused(value: str) -> None:
    with pytest.raises(PolicyConfigError, match="min_release_age_s"):
        parse_policy_config(policy_toml(extra=f"[thresholds]\nmin_release_age_s = {value}\n"))
