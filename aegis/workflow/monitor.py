"""Stuck detection and metrics over requests (pure: the time is an argument).

A request is stuck when it has sat in a non-terminal state longer than that
state's ``stuck_after`` in the workflow file, or when it holds a lease whose
expiry has passed (a worker died holding it).

Example:
    >>> stuck_reason(rec, wf, now)
    "in 'analyzed' for 2d 3h (threshold 1d)"
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta

from aegis.workflow.machine import Workflow, stuck_thresholds
from aegis.workflow.records import RequestRecord, format_time, parse_time


def age_seconds(rec: RequestRecord, now: datetime) -> int:
    """Whole seconds the request has been in its current state."""
    return max(0, int((now - parse_time(rec.updated_at)).total_seconds()))


def human_duration(seconds: int) -> str:
    """``90061`` -> ``1d 1h``; two most significant units."""
    parts: list[str] = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if seconds >= size or (unit == "s" and not parts):
            parts.append(f"{seconds // size}{unit}")
            seconds %= size
    return " ".join(parts[:2])


def stuck_cutoffs(wf: Workflow, now: datetime) -> dict[str, str]:
    """Per state, the store time before which entering it means stuck."""
    return {
        state: format_time(now - timedelta(seconds=limit))
        for state, limit in stuck_thresholds(wf).items()
    }


def stuck_reason(
    rec: RequestRecord, wf: Workflow, now: datetime, *, waiting: str | None = None
) -> str | None:
    """Why the request counts as stuck at ``now``, or None.

    ``waiting``: why the automation left it waiting for a human (aegis/workflow/waiting.py);
    such a request is stuck at once, since nobody asked for it.
    """
    reasons = [f"waiting for a human: {waiting}"] if waiting else []
    limit = stuck_thresholds(wf).get(rec.state)
    age = age_seconds(rec, now)
    if limit is not None and age > limit:
        reasons.append(
            f"in {rec.state!r} for {human_duration(age)} (threshold {human_duration(limit)})"
        )
    if rec.lease_expires_at is not None and parse_time(rec.lease_expires_at) < now:
        reasons.append(f"lease of {rec.lease_owner!r} expired at {rec.lease_expires_at}")
    return "; ".join(reasons) or None


def metrics_text(counts: Mapping[str, int], stuck: Mapping[str, int], states: list[str]) -> str:
    """Prometheus textfile metrics: requests per state and stuck requests per state."""
    lines = [
        "# HELP aegis_requests Change requests per state.",
        "# TYPE aegis_requests gauge",
    ]
    lines += [f'aegis_requests{{state="{s}"}} {counts.get(s, 0)}' for s in states]
    lines += [
        "# HELP aegis_requests_stuck Change requests past their state's threshold.",
        "# TYPE aegis_requests_stuck gauge",
    ]
    lines += [f'aegis_requests_stuck{{state="{s}"}} {stuck.get(s, 0)}' for s in states]
    return "\n".join(lines) + "\n"
