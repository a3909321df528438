"""aegisd's side of out-of-band detection: record findings once, then move the baseline.

aegisd alone writes the audit log and the baseline (aegis/oob/baseline.py). It runs
:func:`record_findings` when asked on its ``record-out-of-band`` verb (the monitor's
pass, ``aegis drift --record``) and before each of its own runs, and
:func:`mark_own_change` right after each of its own runs:

1. read dpkg's status and the managed npm prefix and pip venvs (aegis/oob/places.py);
   unchanged since the baseline (same hash, same log cursor, same places): nothing to do;
2. name the changes (aegis/oob/findings.py) from dpkg's log and apt's history, with
   aegisd's own reading of the files: the verb takes no input, so a caller can make
   aegisd look, never tell it what it saw;
3. append one ``out-of-band-change`` event per finding not already in the log (a crash
   between the events and the baseline re-finds the same ids, which are skipped), sign
   a checkpoint;
4. only then write the new baseline. A change is reported once and never lost.

What changed between :func:`record_findings` before a run and
:func:`mark_own_change` after it is aegisd's own apply and never a finding.

Example:
    >>> record_findings(daemon)
    [Finding(package='x', action='install', ..., tool='dpkg')]
"""

from __future__ import annotations

import contextlib
import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from aegis.oob.baseline import Baseline, read_baseline, write_baseline
from aegis.oob.findings import Finding, current_state, host_files, name_changes, read_status
from aegis.oob.logs import apt_runs_since, events_since
from aegis.oob.places import place_changes, read_places

if TYPE_CHECKING:
    from aegis.config import Config
    from aegis.execute.daemon import Aegisd

KIND = "out-of-band-change"
OP = "record-out-of-band"
TAIL_BYTES = 4 * 1024 * 1024
"""How much of the audit log's end is searched for findings already recorded."""
_LOCK = threading.Lock()


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def expect_unattended(cfg: Config) -> bool:
    """Whether policy marks unattended-upgrades' own changes as expected."""
    from aegis.errors import AegisError
    from aegis.policy.load import load_policy_config

    try:
        policy = load_policy_config(cfg.policy_path)
    except AegisError:
        return False
    return bool(policy.automation and policy.automation.expect_unattended_upgrades)


def pending(cfg: Config, baseline: Baseline) -> list[Finding]:
    """The findings since ``baseline`` (read-only; what the monitor and ``aegis drift`` show)."""
    return scan(cfg, baseline)[0]


def scan(cfg: Config, baseline: Baseline) -> tuple[list[Finding], Baseline]:
    """The findings since ``baseline`` and the baseline that accounts for them.

    dpkg's log is read before its status, each once: a change landing between the two
    reads is named from the status now and its log line again next time, never lost.
    """
    files = host_files(cfg.dpkg_root)
    events, cursor = events_since(files.dpkg_log, baseline.cursor)
    sha, packages = read_status(files)
    places = read_places(cfg, baseline.places)
    after = Baseline(
        written_at=_now(),
        reason="recorded",
        status_sha256=sha,
        packages=packages,
        cursor=cursor,
        counts=dict(baseline.counts),
        last_finding_at=baseline.last_finding_at,
        places=places,
    )
    in_places = place_changes(baseline.digest, baseline.places, places)
    if sha == baseline.status_sha256 and not events:
        return in_places, after
    runs = apt_runs_since(files.history_log, _earliest(baseline, events))
    found = name_changes(
        baseline.digest,
        baseline.packages,
        packages,
        events,
        runs,
        expect_unattended=expect_unattended(cfg),
    )
    return found + in_places, after


def _earliest(baseline: Baseline, events: list[Any]) -> str:
    # An apt run that started before the cursor may still hold a later dpkg action.
    times = [e.time for e in events]
    return min([baseline.cursor.time, *times]) if times else baseline.cursor.time


def fresh_baseline(
    cfg: Config, reason: str, previous: Baseline | None, place: str | None = None
) -> Baseline:
    """The baseline of dpkg's state now, carrying the previous counts forward.

    ``place``: a pip or npm location aegisd just changed, watched from now on.
    """
    sha, packages, cursor = current_state(host_files(cfg.dpkg_root))
    return Baseline(
        written_at=_now(),
        reason=reason,
        status_sha256=sha,
        packages=packages,
        cursor=cursor,
        counts=dict(previous.counts) if previous else {},
        last_finding_at=previous.last_finding_at if previous else None,
        places=read_places(cfg, previous.places if previous else {}, also=place),
    )


def recorded_ids(cfg: Config) -> set[str]:
    """Finding ids already in the end of the audit log."""
    ids: set[str] = set()
    try:
        with cfg.audit_path.open("rb") as f:
            f.seek(0, 2)
            size = f.tell()
            f.seek(max(0, size - TAIL_BYTES))
            data = f.read()
    except OSError:
        return ids
    needle = f'"kind":"{KIND}"'.encode()
    for line in data.split(b"\n"):
        if needle not in line:
            continue
        with contextlib.suppress(ValueError, KeyError, TypeError):
            ids.add(str(json.loads(line)["event"]["details"]["finding_id"]))
    return ids


def _event_fields(f: Finding) -> dict[str, Any]:
    return {
        "actor": {"uid": f.uid, "pid": None, "signer": None, "approvers": []},
        "decision": {
            "outcome": "expected" if f.expected else "out-of-band",
            "rule_ids": [],
            "reasons": [f.summary()],
        },
        "details": f.as_dict(),
    }


def record_findings(d: Aegisd) -> list[Finding]:
    """Record what changed since the baseline (see the module doc); return the new findings.

    The first call on a host without a baseline writes one and finds nothing: what
    happened before Aegis was installed is not its to name.
    """
    with _LOCK:
        previous = read_baseline(d.cfg)
        if previous is None:
            write_baseline(d.cfg, fresh_baseline(d.cfg, "start", None))
            return []
        found, files_now = scan(d.cfg, previous)
        if not found:
            if (files_now.cursor, files_now.status_sha256, files_now.places) != (
                previous.cursor,
                previous.status_sha256,
                previous.places,
            ):
                write_baseline(d.cfg, files_now)  # log lines or a hold, no package change
            return []
        done = recorded_ids(d.cfg)
        new = [f for f in found if f.finding_id not in done]
        counts = dict(previous.counts)
        for f in found:
            if f.finding_id not in done:
                d.audit.append(KIND, _event_fields(f))
            counts[f.tool] = counts.get(f.tool, 0) + 1
        d.audit.checkpoint()
        write_baseline(
            d.cfg,
            Baseline(
                written_at=files_now.written_at,
                reason="recorded",
                status_sha256=files_now.status_sha256,
                packages=files_now.packages,
                cursor=files_now.cursor,
                counts=counts,
                last_finding_at=files_now.written_at,
                places=files_now.places,
            ),
        )
        return new


def mark_own_change(d: Aegisd, place: str | None = None) -> None:
    """After aegisd's own run: what changed is its own, so the baseline moves over it.

    ``place``: the pip or npm location the run changed, watched from now on.
    """
    with _LOCK:
        write_baseline(d.cfg, fresh_baseline(d.cfg, "apply", read_baseline(d.cfg), place))


@contextlib.contextmanager
def own_run_window(d: Aegisd, place: str | None = None) -> Iterator[None]:
    """Around one of aegisd's runs (inside its execution lock): record, run, move over.

    A failure here never stops or fails a run: it is logged, and the next pass finds
    whatever was not recorded, since the baseline did not move.
    """
    import sys

    from aegis.errors import AegisError

    try:
        record_findings(d)
    except (OSError, AegisError) as e:
        sys.stderr.write(f"aegisd: out-of-band check before the run failed: {e}\n")
    try:
        yield
    finally:
        try:
            mark_own_change(d, place)
        except (OSError, AegisError) as e:
            sys.stderr.write(f"aegisd: cannot move the package baseline: {e}\n")
