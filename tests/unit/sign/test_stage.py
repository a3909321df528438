"""The expiry decision: signed plans past expires_at, policy evidence past its age."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from aegis.sign.execution_plan import execution_plan_bytes
from aegis.sign.rechecks import DEFAULT_LIMITS
from aegis.sign.stage import expiry_reason


@pytest.mark.parametrize(
    ("offset", "expired"),
    [(timedelta(minutes=59), False), (timedelta(hours=1), True)],
    ids=["valid", "expired"],
)
def test_signed(build: Any, sx: Any, offset: timedelta, expired: bool) -> None:
    data = execution_plan_bytes(build())
    reason = expiry_reason(
        "signed", now=sx.now + offset, limits=DEFAULT_LIMITS, execution_plan=data
    )
    assert (reason is not None) is expired
    if expired:
        assert "expired at 2026-11-26T13:00:00Z" in str(reason)


def test_signed_unreadable_plan_expires(sx: Any) -> None:
    reason = expiry_reason("signed", now=sx.now, limits=DEFAULT_LIMITS, execution_plan=b"{}")
    assert reason is not None
    assert "cannot be used" in reason


@pytest.mark.parametrize(
    ("plan_at", "policy_at", "expired"),
    [
        ("2026-11-26T11:00:00Z", "2026-11-26T11:00:00Z", False),
        ("2026-11-25T11:00:00Z", "2026-11-26T11:00:00Z", True),
        ("2026-11-26T11:00:00Z", "2026-11-25T11:00:00Z", True),
    ],
    ids=["fresh", "old-plan", "old-decision"],
)
def test_policy(sx: Any, plan_at: str, policy_at: str, expired: bool) -> None:
    reason = expiry_reason(
        "policy",
        now=sx.now,
        limits=DEFAULT_LIMITS,
        plan_created_at=plan_at,
        policy_evaluated_at=policy_at,
    )
    assert (reason is not None) is expired


def test_other_states_never_expire(sx: Any) -> None:
    assert expiry_reason("analyzed", now=sx.now, limits=DEFAULT_LIMITS) is None
