"""One ``aegis monitor`` pass: probe the reviewer, resume, write the textfile metrics.

What the aegis-monitor timer runs. The reviewer (aegis-reviewd) is advisory: when it
cannot be reached, requests waiting for review stay where they are, the condition is
reported (the ``aegis_reviewer_up`` gauge, a log line on stderr for the journal, the
``reviewer`` field of ``--json``), and the rest of the pass runs; the pass still
succeeds. A pass fails only when a step of its own failed (a corrupt row, a store it
cannot write).

Metrics (``<state_dir>/metrics/aegis.prom``) add the pass's own figures to the request
counts: ``aegis_monitor_last_success_timestamp_seconds`` (kept from the previous file
when this pass failed, so an alert on its age fires), ``aegis_monitor_pass_duration_seconds``,
``aegis_monitor_pass_ok`` and ``aegis_reviewer_up``, then what an on-call alerts on:
the last apply per ecosystem, the audit log's verify, the age of the evidence sources
(:mod:`aegis.workflow.health_metrics`).

Example:
    >>> report = run_pass(cfg, "aegis-monitor")
    >>> report.ok, report.reviewer
    (True, 'unreachable')
"""

from __future__ import annotations

import re
import socket
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from aegis.config import Config
    from aegis.oob.monitor import OobReport
    from aegis.workflow.resume import ResumeReport

PROBE_TIMEOUT_S = 1.0
LAST_SUCCESS = "aegis_monitor_last_success_timestamp_seconds"
_LAST_SUCCESS_RE = re.compile(rf"^{LAST_SUCCESS} ([0-9]+(?:\.[0-9]+)?)$", re.M)


@dataclass(frozen=True)
class PassReport:
    """What one monitor pass did."""

    resume: ResumeReport
    reviewer: str
    """``up``, ``unreachable`` or ``disabled`` (review turned off in the config)."""
    reviewer_detail: str
    metrics_path: Path
    duration_s: float
    ok: bool
    """No step of the pass failed (an unreachable reviewer is not a failure)."""
    out_of_band: OobReport | None = None
    """The out-of-band check (aegis/oob/monitor.py)."""


def probe_reviewer(cfg: Config) -> tuple[str, str]:
    """Whether aegis-reviewd's socket accepts a connection: (status, detail)."""
    if not cfg.review_enabled:
        return "disabled", "review is turned off (review_enabled = false)"
    path = cfg.reviewd_socket
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(PROBE_TIMEOUT_S)
        try:
            sock.connect(str(path))
        except OSError as e:
            return "unreachable", f"aegis-reviewd is not reachable at {path}: {e.strerror or e}"
    return "up", f"{path} accepts connections"


def previous_success(path: Path) -> float | None:
    """The last-success timestamp in an existing metrics file, or None."""
    try:
        text = path.read_text(encoding="utf-8", errors="replace")[:1_000_000]
    except OSError:
        return None
    match = _LAST_SUCCESS_RE.search(text)
    return float(match.group(1)) if match else None


def pass_metrics_text(
    *,
    last_success: float | None,
    duration_s: float,
    ok: bool,
    reviewer: str,
    audit_failures: int | None = None,
) -> str:
    """The pass's own Prometheus lines."""
    lines = []
    if last_success is not None:
        lines += [
            f"# HELP {LAST_SUCCESS} Unix time of the last monitor pass that succeeded.",
            f"# TYPE {LAST_SUCCESS} gauge",
            f"{LAST_SUCCESS} {last_success:.3f}",
        ]
    lines += [
        "# HELP aegis_monitor_pass_duration_seconds Wall time of the last monitor pass.",
        "# TYPE aegis_monitor_pass_duration_seconds gauge",
        f"aegis_monitor_pass_duration_seconds {duration_s:.6f}",
        "# HELP aegis_monitor_pass_ok 1 when the last monitor pass succeeded.",
        "# TYPE aegis_monitor_pass_ok gauge",
        f"aegis_monitor_pass_ok {1 if ok else 0}",
    ]
    if reviewer != "disabled":
        lines += [
            "# HELP aegis_reviewer_up 1 when aegis-reviewd (advisory) accepted a connection.",
            "# TYPE aegis_reviewer_up gauge",
            f"aegis_reviewer_up {1 if reviewer == 'up' else 0}",
        ]
    if audit_failures is not None:
        lines += [
            "# HELP aegis_audit_append_failures Failed audit-log writes since aegisd started.",
            "# TYPE aegis_audit_append_failures gauge",
            f"aegis_audit_append_failures {audit_failures}",
        ]
    return "\n".join(lines) + "\n"


def run_pass(cfg: Config, actor: str, now: datetime | None = None) -> PassReport:
    """Probe the reviewer, resume every request, write the metrics.

    An unreachable reviewer is reported in the result, never raised.

    Raises:
        AegisError: the store cannot be opened or the metrics cannot be written.
    """
    from aegis.workflow import access
    from aegis.workflow.health_metrics import health_text
    from aegis.workflow.resume import REVIEWER_UNREACHABLE, resume_all

    start = time.monotonic()
    reviewer, detail = probe_reviewer(cfg)
    down = detail if reviewer == "unreachable" else None
    when = now or access.now_utc()
    report = resume_all(cfg, access._actor(actor), when, reviewer_down=down, list_waiting=False)
    if reviewer == "up":
        late = [i for i in report.items if i.condition == REVIEWER_UNREACHABLE]
        if late:  # it accepted the probe, then failed a review
            reviewer, detail = "unreachable", late[0].detail
    from aegis.errors import AegisError
    from aegis.oob.monitor import check, metrics_text

    try:
        oob = check(cfg)
    except (OSError, AegisError) as e:  # the out-of-band check never fails the pass
        from aegis.oob.monitor import OobReport

        oob = OobReport("no-baseline", f"out-of-band check failed: {e}")
    if oob.status == "pending":  # one line for the journal: the changes wait for aegisd
        import sys

        sys.stderr.write(f"aegis monitor: {len(oob.pending)} out-of-band change(s): {oob.detail}\n")
    ok = not report.failed
    health = health_text(cfg)  # never fails the pass: a part it cannot read is left out
    path = cfg.metrics_dir / "aegis.prom"
    last = time.time() if ok else previous_success(path)
    duration = time.monotonic() - start
    from aegis.execute.status_file import audit_failures

    extra = pass_metrics_text(
        last_success=last,
        duration_s=duration,
        ok=ok,
        reviewer=reviewer,
        audit_failures=audit_failures(cfg),
    )
    extra += health
    from aegis.unattended.health import metrics_text as unattended_metrics

    extra += metrics_text(oob) + unattended_metrics(cfg)
    path = access.write_metrics(cfg, now, extra=extra)
    return PassReport(report, reviewer, detail, path, duration, ok, oob)
