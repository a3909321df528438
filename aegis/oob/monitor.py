"""The monitor pass's out-of-band step: compare, have aegisd record, count.

Every ``aegis monitor`` pass compares dpkg's state with the baseline aegisd last wrote
(aegis/oob/baseline.py). When they differ it names the changes read-only, then asks
aegisd to record them (the findings socket, aegis/oob/serve.py): the monitor never
writes the audit log. When aegisd cannot be reached the changes stay pending (the
baseline did not move) and the next pass tries again; the pass itself still succeeds,
with ``aegis_out_of_band_pending`` saying how many wait.

Metrics: ``aegis_out_of_band_changes_total{tool="..."}`` (recorded so far, from the
baseline aegisd keeps), ``aegis_out_of_band_pending`` and ``aegis_out_of_band_check_ok``.

Example:
    >>> check(cfg).status
    'recorded'
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from aegis.errors import AegisError
from aegis.oob.baseline import read_baseline
from aegis.oob.record import pending
from aegis.oob.serve import ask_record

if TYPE_CHECKING:
    from aegis.config import Config
    from aegis.oob.findings import Finding


@dataclass(frozen=True)
class OobReport:
    """What the pass found and did."""

    status: str
    """``clean``, ``recorded``, ``pending`` (aegisd did not record) or ``no-baseline``."""
    detail: str
    pending: list[Finding] = field(default_factory=list)
    recorded: int = 0
    counts: dict[str, int] = field(default_factory=dict)


def check(cfg: Config, *, record: bool = True) -> OobReport:
    """Compare dpkg's state with the baseline; ask aegisd to record what differs."""
    try:
        baseline = read_baseline(cfg)
    except AegisError as e:
        return OobReport("no-baseline", f"package baseline unusable: {e.message}")
    if baseline is None:
        return OobReport("no-baseline", "no package baseline yet (aegisd writes it at start)")
    try:
        found = pending(cfg, baseline)
    except (OSError, AegisError) as e:
        return OobReport("no-baseline", f"cannot read dpkg's state: {e}", counts=baseline.counts)
    if not found:
        return OobReport("clean", "dpkg's state matches the baseline", counts=baseline.counts)
    if not record:
        return OobReport(
            "pending", f"{len(found)} change(s) not recorded", found, 0, baseline.counts
        )

    try:
        answer = ask_record(cfg)
    except (AegisError, OSError) as e:
        why = e.message if isinstance(e, AegisError) else str(e)
        return OobReport("pending", f"aegisd did not record: {why}", found, 0, baseline.counts)
    if not answer.ok:
        return OobReport(
            "pending", f"aegisd did not record: {answer.message}", found, 0, baseline.counts
        )
    try:
        after = read_baseline(cfg)
    except AegisError:
        after = None
    recorded = answer.result.get("recorded")
    return OobReport(
        "recorded",
        answer.message,
        found,
        len(recorded) if isinstance(recorded, list) else 0,
        after.counts if after else baseline.counts,
    )


def metrics_text(report: OobReport) -> str:
    """The step's Prometheus lines."""
    lines = [
        "# HELP aegis_out_of_band_changes_total Package changes made outside aegisd, "
        "recorded in the audit log, by tool.",
        "# TYPE aegis_out_of_band_changes_total counter",
    ]
    for tool, n in sorted(report.counts.items()):
        lines.append(f'aegis_out_of_band_changes_total{{tool="{tool}"}} {n}')
    waiting = len(report.pending) if report.status == "pending" else 0
    lines += [
        "# HELP aegis_out_of_band_pending Out-of-band changes found but not yet recorded.",
        "# TYPE aegis_out_of_band_pending gauge",
        f"aegis_out_of_band_pending {waiting}",
        "# HELP aegis_out_of_band_check_ok 1 when the out-of-band check could compare "
        "with aegisd's baseline.",
        "# TYPE aegis_out_of_band_check_ok gauge",
        f"aegis_out_of_band_check_ok {0 if report.status == 'no-baseline' else 1}",
    ]
    return "\n".join(lines) + "\n"
