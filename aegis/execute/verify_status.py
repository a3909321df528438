"""What aegisd last published about a request's verification, for ``aegis show`` and doctor.

Read from aegisd's status file (root-owned, group-readable, checked strictly by
:mod:`aegis.execute.status_file`), which aegisd writes from its verification rows: the
state, the deadline and the last probe results, kept in the row so they are there after a
restart of aegisd too. Nothing here asks aegisd over its socket, so a stopped aegisd
still shows what it last recorded.

Example:
    >>> published_verification(cfg, execution_plan_bytes)["probes"][0]["detail"]
    'HTTP 500'
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from aegis.errors import AegisError
from aegis.execute.status_file import read_status
from aegis.sign.execution_plan import parse_execution_plan
from aegis.workflow import access

if TYPE_CHECKING:
    from aegis.config import Config


def published_verification(cfg: Config, execution_plan: bytes | None) -> dict[str, Any] | None:
    """The verification aegisd published for the run of ``execution_plan``, or None.

    None when the plan names no probes, cannot be read, or aegisd's status says nothing.
    """
    if execution_plan is None:
        return None
    try:
        ep = parse_execution_plan(execution_plan)
    except AegisError:
        return None
    if ep.verification is None:
        return None
    status = read_status(cfg, ep.execution_id)
    found = (status.result or {}).get("verification") if status is not None else None
    return {"execution_id": ep.execution_id, **found} if isinstance(found, dict) else None


RAN = frozenset(
    {
        *("applying", "applied", "verifying", "rolling_back", "rolled_back"),
        *("rollback_failed", "audited"),
    }
)
"""Request states in which a run may have been verified."""


def request_verification(cfg: Config, request_id: str, state: str) -> dict[str, Any] | None:
    """:func:`published_verification` of the request's newest execution plan, when it ran."""
    if state not in RAN:
        return None
    found = access.latest_artifact(cfg, request_id, "execution-plan")
    return published_verification(cfg, found[1] if found is not None else None)


def probe_lines(v: dict[str, Any]) -> list[str]:
    """One line per probe result: ``ok http:...: HTTP 200`` or ``FAILED ...``."""
    return [
        f"{'ok' if p.get('ok') else 'FAILED'} {p.get('probe')}: {p.get('detail')}"
        for p in v.get("probes") or []
    ]
