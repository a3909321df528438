"""What an on-call alerts on, as Prometheus textfile lines for the monitor pass.

Each part reads its own source and leaves its lines out when that source is absent
(a fresh host with no audit log, no vulnerability index, no apt lists yet) or cannot
be read (a warning on stderr for the journal); none of them fails the monitor pass.
Times are Unix timestamps, Prometheus's convention for ages: alert on
``time() - metric`` (docs/operator-guide.md "Alerting").

- Applies, per ecosystem (the plan's tool: ``apt`` today; ``pip``/``npm`` requests get
  their own label): ``aegis_apply_last_timestamp_seconds``, ``aegis_apply_last_success``
  and ``aegis_apply_last_outcome{outcome=<state>}`` from the newest time a request
  left ``applying`` (when its outcome was recorded).
- Health probes after an apply (aegis/execute/verifier.py), per ecosystem:
  ``aegis_probe_failures_total`` (changes restored because a probe still failed at the
  deadline) and ``aegis_rollbacks_total{cause}`` (every automatic restore, ``cause``
  ``probe-failed`` or ``unconfirmed``), counted from the requests' recorded ``roll_back``
  steps; ``aegis_rollbacks_failed`` is the number of requests whose restore failed.
- The audit log, verified on every pass exactly like ``aegis audit verify`` (hashes,
  links, signed checkpoints, the witness aegisd writes): ``aegis_audit_verify_ok``,
  ``aegis_audit_verify_problems``, ``aegis_audit_verify_timestamp_seconds``; and
  ``aegis_audit_journal_failures_total``, the events aegisd could not copy to journald.
- Evidence sources: ``aegis_vulndb_import_timestamp_seconds`` and
  ``aegis_vulndb_data_timestamp_seconds`` (when the tracker file was fetched), and
  ``aegis_repository_release_timestamp_seconds{uri,suite}``: the ``Date`` of each
  configured source's Release in apt's lists (what apt will install from; apt checked
  its signature when it fetched it).

Example:
    >>> print(health_text(cfg, time.time()))
    # HELP aegis_apply_last_timestamp_seconds ...
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from aegis.errors import AegisError

if TYPE_CHECKING:
    from aegis.config import Config

Sample = tuple[Sequence[tuple[str, str]], float | int]
MAX_RELEASE_BYTES = 32 * 1024 * 1024


def label_value(value: str) -> str:
    """Escape a label value for the Prometheus text format (the text is untrusted)."""
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def metric(name: str, help_text: str, samples: Iterable[Sample], kind: str = "gauge") -> list[str]:
    """HELP, TYPE and one line per sample; nothing when there are no samples."""
    lines = []
    for labels, value in samples:
        inner = ",".join(f'{k}="{label_value(v)}"' for k, v in labels)
        shown = f"{value:.3f}" if isinstance(value, float) else str(value)
        lines.append(f"{name}{{{inner}}} {shown}" if inner else f"{name} {shown}")
    if not lines:
        return []
    return [f"# HELP {name} {help_text}", f"# TYPE {name} {kind}", *lines]


def _warn(what: str, e: BaseException) -> None:
    message = e.message if isinstance(e, AegisError) else str(e)
    print(f"aegis monitor: {what}: {message}", file=sys.stderr)


def _timestamp(iso: str) -> float:
    """``2026-01-02T03:04:05(.ffffff)Z`` -> Unix seconds."""
    text = iso.rstrip("Z")
    fmt = "%Y-%m-%dT%H:%M:%S.%f" if "." in text else "%Y-%m-%dT%H:%M:%S"
    return datetime.strptime(text, fmt).replace(tzinfo=UTC).timestamp()


def apply_lines(outcomes: Iterable[tuple[str, str, str]]) -> list[str]:
    """Lines for (request kind, state it left ``applying`` for, when), newest per ecosystem."""
    newest: dict[str, tuple[str, str]] = {}
    for kind, state, at in outcomes:
        ecosystem = kind.split(" ", 1)[0]
        if ecosystem not in newest or at > newest[ecosystem][1]:
            newest[ecosystem] = (state, at)
    eco = sorted(newest)
    return [
        *metric(
            "aegis_apply_last_timestamp_seconds",
            "Unix time the outcome of the ecosystem's last apply was recorded.",
            [((("ecosystem", e),), _timestamp(newest[e][1])) for e in eco],
        ),
        *metric(
            "aegis_apply_last_success",
            "1 when the ecosystem's last apply ended applied, 0 failed or interrupted.",
            [((("ecosystem", e),), int(newest[e][0] == "applied")) for e in eco],
        ),
        *metric(
            "aegis_apply_last_outcome",
            "The state the ecosystem's last apply ended in (value always 1).",
            [((("ecosystem", e), ("outcome", newest[e][0])), 1) for e in eco],
        ),
    ]


def audit_lines(cfg: Config, now: float) -> list[str]:
    """Verify the audit log like ``aegis audit verify``; count journal failures."""
    from aegis.audit.journal import read_status, status_path_for
    from aegis.audit.verify import default_public_key_path, read_public_key_hex, verify
    from aegis.audit.witness import apply_witness_choice, host_witness

    if not cfg.audit_path.exists():
        return []
    ok, problems = 0, 0
    try:
        key = read_public_key_hex(default_public_key_path(cfg.keys_dir))
        choice = host_witness(cfg)
        report = verify(cfg.audit_path, audit_public_key_hex=key, witness=choice.readable)
        unchecked = apply_witness_choice(report, choice)
        problems = len(report.problems)
        ok = int(report.ok and not unchecked)
        if unchecked:
            print(
                f"aegis monitor: audit log tail unchecked: {report.warnings[-1]}", file=sys.stderr
            )
    except AegisError as e:  # unreadable log or witness: not verified
        _warn("audit log not verified", e)
    failures = read_status(status_path_for(cfg.audit_path)).get("failures", 0)
    return [
        *metric(
            "aegis_audit_verify_ok",
            "1 when the last verify of the audit log (chain, signed checkpoints, witness) passed.",
            [((), ok)],
        ),
        *metric(
            "aegis_audit_verify_problems",
            "Problems the last verify of the audit log found.",
            [((), problems)],
        ),
        *metric(
            "aegis_audit_verify_timestamp_seconds",
            "Unix time of the last verify of the audit log.",
            [((), now)],
        ),
        *metric(
            "aegis_audit_journal_failures_total",
            "Audit events aegisd could not copy to journald (they are in the log).",
            [((), int(failures))],
            kind="counter",
        ),
    ]


def vulndb_lines(cfg: Config) -> list[str]:
    """When the vulnerability index was imported, and when its data was fetched."""
    from aegis.analyze.evidence.vulndb import load_index

    try:
        index = load_index(cfg)
    except AegisError as e:
        _warn("vulnerability index unreadable", e)
        return []
    if index is None:
        return []
    return [
        *metric(
            "aegis_vulndb_import_timestamp_seconds",
            "Unix time `aegis vulndb import` ran.",
            [((), _timestamp(index.imported_at))],
        ),
        *metric(
            "aegis_vulndb_data_timestamp_seconds",
            "Unix time the imported tracker data was fetched (its file's mtime).",
            [((), _timestamp(index.date))],
        ),
    ]


def _release_dates(cfg: Config) -> list[tuple[str, str, float]]:
    """(uri, suite, Release Date) of each configured source whose lists apt holds."""
    from aegis.ecosystems.apt import parse as aptparse
    from aegis.ecosystems.apt.apt_runner import APT_CONFIG_BIN, AptRunner
    from aegis.ecosystems.apt.evidence.release import release_body, release_date
    from aegis.ecosystems.apt.evidence.repositories import find_release_files
    from aegis.ecosystems.apt.evidence.sources import resolve_apt_paths
    from aegis.ecosystems.apt.state import configured_entries
    from aegis.errors import EnvironmentFailure
    from aegis.safe_read import read_capped

    dump = AptRunner(cfg).run(APT_CONFIG_BIN, "dump", cache=False)
    if not dump.ok:
        raise EnvironmentFailure(f"apt-config dump failed: {dump.stderr.strip()[-300:]}")
    paths = resolve_apt_paths(aptparse.parse_apt_config_dump(dump.stdout))
    out: list[tuple[str, str, float]] = []
    seen: set[tuple[str, str]] = set()
    for entry in configured_entries(paths):
        if (entry.uri, entry.suite) in seen:
            continue
        seen.add((entry.uri, entry.suite))
        files = find_release_files(entry, paths, prefer_repository=False)
        path: Path | None = files.inrelease or files.release
        if path is None:
            continue
        try:
            raw = read_capped(path, MAX_RELEASE_BYTES, "Release file")
        except AegisError as e:  # one unreadable file hides only its own source
            _warn("repository Release date unavailable", e)
            continue
        text = raw.decode("utf-8", "replace")
        date = release_date(release_body(text) if path == files.inrelease else text)
        if date is not None:
            out.append((entry.uri, entry.suite, _timestamp(date)))
    return out


def repository_lines(cfg: Config) -> list[str]:
    """The Release ``Date`` of each configured apt source."""
    try:
        dates = _release_dates(cfg)
    except AegisError as e:
        _warn("repository Release dates unavailable", e)
        return []
    return metric(
        "aegis_repository_release_timestamp_seconds",
        "Date of the source's Release file in apt's lists (signed by the repository).",
        [((("uri", uri), ("suite", suite)), when) for uri, suite, when in dates],
    )


def rollback_lines(counts: Iterable[tuple[str, str, int]], failed: int) -> list[str]:
    """Lines for (request kind, cause, count) of automatic restores and failed restores."""
    per: dict[tuple[str, str], int] = {}
    for kind, cause, n in counts:
        key = (kind.split(" ", 1)[0], cause or "unknown")
        per[key] = per.get(key, 0) + n
    probes: dict[str, int] = {}
    for (eco, cause), n in per.items():
        if cause == "probe-failed":
            probes[eco] = probes.get(eco, 0) + n
    return [
        *metric(
            "aegis_probe_failures_total",
            "Changes aegisd restored because a health probe still failed at the deadline.",
            [
                ((("ecosystem", e),), probes.get(e, 0))
                for e in sorted({e for e, _ in per} | {"apt"})
            ],
            kind="counter",
        ),
        *metric(
            "aegis_rollbacks_total",
            "Automatic restores by aegisd after an apply, by cause.",
            [((("ecosystem", e), ("cause", c)), n) for (e, c), n in sorted(per.items())],
            kind="counter",
        ),
        *metric(
            "aegis_rollbacks_failed",
            "Requests whose automatic restore failed (an operator must look at dpkg).",
            [((), failed)],
        ),
    ]


def health_text(cfg: Config, now: float | None = None) -> str:
    """Every part above, as complete Prometheus lines."""
    from aegis.workflow import access

    when = time.time() if now is None else now
    lines: list[str] = []
    try:
        with access.open_store(cfg) as store:
            outcomes = store.last_apply_outcomes()
            restores = store.rollback_counts()
            failed = store.count_by_state().get("rollback_failed", 0)
        lines += apply_lines(outcomes)
        lines += rollback_lines(restores, failed)
    except AegisError as e:
        _warn("apply outcomes unavailable", e)
    lines += audit_lines(cfg, when)
    lines += vulndb_lines(cfg)
    lines += repository_lines(cfg)
    return "\n".join(lines) + "\n" if lines else ""
