"""UNSAFE fake stages for tests and the early demo; never registered by default.

They implement the Protocols of :mod:`aegis.workflow.stages` without doing the
real work (no model, no policy rules, no aegisd). Plug them in only through
``AEGIS_UNSAFE_STAGES`` (which prints a warning), e.g.::

    AEGIS_UNSAFE_STAGES="reviewer=aegis.devtools.unsafe_fake_stages:reviewer"
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from aegis.canonical import canonical_bytes
from aegis.workflow.files import write_atomic
from aegis.workflow.stages import StageOutcome

if TYPE_CHECKING:
    from aegis.config import Config
    from aegis.workflow.records import RequestRecord


class UnsafeFakeReviewer:
    """Writes a review that objects to nothing; marked fake."""

    def __init__(self, cfg: Config) -> None:
        """Remember where reviews go."""
        self.cfg = cfg

    def review(self, request: RequestRecord, plan: bytes) -> StageOutcome:
        """Return a fake review artifact (file under reviews/)."""
        body = canonical_bytes(
            {"fake": True, "recommendation": "no-objection", "request": request.id}
        )
        path = self.cfg.reviews_dir / f"{request.plan_id}.review.json"
        write_atomic(path, body)
        return StageOutcome("review", "review", body, str(path), note="fake review")


class UnsafeFakePolicy:
    """Decides ``allow`` unless the plan's targets contain ``deny-me``."""

    def __init__(self, cfg: Config) -> None:
        """Remember where policy results go."""
        self.cfg = cfg

    def evaluate(
        self, request: RequestRecord, plan: bytes, review: bytes | None, now: datetime
    ) -> StageOutcome:
        """Return a fake policy result."""
        decision = "deny" if b"deny-me" in plan else "allow"
        body = canonical_bytes({"fake": True, "decision": decision, "at": now.isoformat()})
        path = self.cfg.policy_dir / f"{request.plan_id}.policy.json"
        write_atomic(path, body)
        trigger = "deny" if decision == "deny" else "decide"
        return StageOutcome(trigger, "policy", body, str(path), note=f"fake {decision}")


class UnsafeFakeRevoker:
    """Records revocations in ``<state_dir>/fake-revoked/<request-id>``."""

    def __init__(self, cfg: Config) -> None:
        """Remember the state directory."""
        self.dir = Path(cfg.state_dir) / "fake-revoked"

    def revoke(self, request: RequestRecord, execution_plan: bytes) -> None:
        """Write the marker file."""
        self.dir.mkdir(parents=True, exist_ok=True)
        (self.dir / request.id).write_bytes(execution_plan)


class UnsafeFakeExecutorStatus:
    """Says every applying request was interrupted (started, never finished)."""

    def __init__(self, cfg: Config) -> None:
        """Nothing to remember."""

    def status(self, request: RequestRecord, execution_plan: bytes | None) -> StageOutcome | None:
        """Return ``interrupt``."""
        return StageOutcome("interrupt", evidence={"reason": "fake: started, never finished"})


class UnsafeFakeExpiry:
    """Expires requests whose targets mention ``expire-me``."""

    def __init__(self, cfg: Config) -> None:
        """Nothing to remember."""

    def check(self, request: RequestRecord, now: datetime) -> StageOutcome | None:
        """Return ``expire`` for marked requests."""
        if "expire-me" in request.summary:
            return StageOutcome("expire", evidence={"reason": f"fake: expired at {now:%Y-%m-%d}"})
        return None


def expiry(cfg: Config) -> UnsafeFakeExpiry:
    """Factory for ``expiry``."""
    return UnsafeFakeExpiry(cfg)


def reviewer(cfg: Config) -> UnsafeFakeReviewer:
    """Factory for ``reviewer``."""
    return UnsafeFakeReviewer(cfg)


def policy(cfg: Config) -> UnsafeFakePolicy:
    """Factory for ``policy``."""
    return UnsafeFakePolicy(cfg)


def revoker(cfg: Config) -> UnsafeFakeRevoker:
    """Factory for ``revoker``."""
    return UnsafeFakeRevoker(cfg)


def executor_status(cfg: Config) -> UnsafeFakeExecutorStatus:
    """Factory for ``executor_status``."""
    return UnsafeFakeExecutorStatus(cfg)


ALL = ",".join(
    f"{n}=aegis.devtools.unsafe_fake_stages:{n}"
    for n in ("reviewer", "policy", "revoker", "executor_status", "expiry")
)
"""Value for AEGIS_UNSAFE_STAGES plugging in every fake."""
