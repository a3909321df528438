"""Fixtures for policy tests: the fixture policy, the evaluation time, a neutral review."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pytest

from aegis.devtools import policy_plans
from aegis.policy.config import PolicyConfig, parse_policy_config
from aegis.policy.engine import check_config


@pytest.fixture
def now() -> datetime:
    """Ten minutes after the fixture plans were created."""
    return datetime.fromisoformat(policy_plans.NOW.replace("Z", "+00:00"))


@pytest.fixture
def policy() -> PolicyConfig:
    """The fixture policy approving the dist and vendor sources."""
    config = parse_policy_config(policy_plans.policy_toml())
    check_config(config)
    return config


@pytest.fixture
def neutral_review() -> Any:
    """No review record: the fixture policy says ``[review] required = false``, so this is
    skipped by configuration (neutral) and the rules alone decide."""
    return None
