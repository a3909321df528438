"""Name every package change since the baseline: package, from -> to, time, tool, command, user.

The truth of *what* changed is dpkg's status now against the one the baseline recorded;
dpkg's log says *when* and in which steps (an install removed again before the pass is
still named), and apt's history says *who*: a dpkg action inside an apt run that lists
the package takes that run's command line and ``Requested-By``; one outside every apt
run was ``dpkg directly``. A status difference no logged action explains (an edited
status file, a log rotated away) is still a finding, tool ``unknown``: nothing is hidden.

Pure except :func:`read_packages` and :func:`current_state`, which read the files.

Example:
    >>> name_changes(baseline, packages, events, runs, expect_unattended=False)
    [Finding(package='x', action='install', old=None, new='1.0', tool='dpkg', ...)]
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aegis.bounds import MAX_DPKG_STATUS_BYTES as MAX_STATUS_BYTES
from aegis.oob.logs import AptRun, Cursor, LogEvent, cursor_now

TOOLS = ("dpkg", "apt-get", "apt", "aptitude", "unattended-upgrades", "other", "unknown",
         "npm", "pip")  # fmt: skip
"""The tool label of a finding (and of the counter): a closed set, never free text."""
_UID_RE = re.compile(r"^(.{1,64}) \((\d{1,10})\)\Z")


@dataclass(frozen=True)
class HostFiles:
    """Where dpkg and apt keep what the check reads."""

    status: Path
    dpkg_log: Path
    history_log: Path


def host_files(dpkg_root: Path | None) -> HostFiles:
    """The files under ``dpkg_root`` (the host's own when None)."""
    root = dpkg_root or Path("/")
    return HostFiles(
        root / "var/lib/dpkg/status",
        root / "var/log/dpkg.log",
        root / "var/log/apt/history.log",
    )


@dataclass(frozen=True)
class Finding:
    """One change that did not go through aegisd."""

    finding_id: str
    package: str
    arch: str
    action: str
    """``install``, ``upgrade``, ``remove``, ``purge`` (from dpkg's log) or ``changed``."""
    old: str | None
    new: str | None
    time: str | None
    """Local time dpkg logged it (None for a status difference no log line explains)."""
    tool: str
    """One of :data:`TOOLS`."""
    commandline: str | None
    user: str | None
    uid: int | None
    expected: bool
    """Made by unattended-upgrades while policy marks that as expected (still listed)."""
    place: str | None = None
    """npm and pip: the managed prefix or venv that changed (aegis/oob/places.py)."""

    def summary(self) -> str:
        """One line: ``pkg 1.0 -> 1.1 (upgrade) by apt-get install pkg [alice uid 1000]``."""
        way = f"{self.old or 'absent'} -> {self.new or 'absent'}"
        by = "dpkg directly" if self.tool == "dpkg" else (self.commandline or self.tool)
        who = f" [{self.user} uid {self.uid}]" if self.user else ""
        exp = " (expected)" if self.expected else ""
        where = f" in {self.place}" if self.place else ""
        return f"{self.package} {way} ({self.action}) by {by}{where}{who}{exp}"

    def as_dict(self) -> dict[str, Any]:
        """JSON form (what the audit event's details carry)."""
        return {
            "finding_id": self.finding_id,
            "package": self.package,
            "arch": self.arch,
            "action": self.action,
            "from": self.old,
            "to": self.new,
            "time": self.time,
            "tool": self.tool,
            "commandline": self.commandline,
            "user": self.user,
            "uid": self.uid,
            "expected": self.expected,
            **({"place": self.place} if self.place else {}),
        }


Packages = Mapping[str, str]
"""``name:arch`` -> ``version status`` (``1.0 installed``)."""


def parse_status(text: str) -> dict[str, str]:
    """Every package in dpkg's status text, with version and status word (a line scan)."""
    out: dict[str, str] = {}
    name = arch = version = state = ""
    for line in text.split("\n"):
        if not line:
            if name:
                out[f"{name}:{arch or 'all'}"] = f"{version} {state}".strip()
            name = arch = version = state = ""
        elif line.startswith("Package: "):
            name = line[9:].strip()
        elif line.startswith("Architecture: "):
            arch = line[14:].strip()
        elif line.startswith("Version: "):
            version = line[9:].strip()
        elif line.startswith("Status: "):
            state = line.rsplit(" ", 1)[-1].strip()
    if name:
        out[f"{name}:{arch or 'all'}"] = f"{version} {state}".strip()
    return {k: v for k, v in out.items() if not v.endswith("not-installed")}


def current_state(files: HostFiles) -> tuple[str, dict[str, str], Cursor]:
    """(SHA-256 of dpkg's status, its packages, the cursor at the end of dpkg's log)."""
    cursor = cursor_now(files.dpkg_log)
    sha, packages = read_status(files)
    return sha, packages, cursor


def read_status(files: HostFiles) -> tuple[str, dict[str, str]]:
    """(SHA-256 of dpkg's status file, its packages)."""
    try:
        with files.status.open("rb") as f:
            data = f.read(MAX_STATUS_BYTES)
    except FileNotFoundError:
        data = b""
    sha = hashlib.sha256(data).hexdigest()
    for seen, packages in _last_status[-1:]:  # one entry, replaced whole (never emptied)
        if seen == sha:
            return sha, dict(packages)
    packages = parse_status(data.decode("utf-8", "replace"))
    _last_status[:] = [(sha, packages)]
    return sha, dict(packages)


_last_status: list[tuple[str, dict[str, str]]] = []
"""The last status parsed, by the SHA-256 of its bytes: aegisd reads it before and after each
run, and the same bytes parse the same (a busy host's status takes ~10 ms to parse)."""


def _tool(run: AptRun | None) -> str:
    if run is None:
        return "dpkg"
    cmd = (run.commandline or "").split()
    if "unattended-upgrade" in (run.commandline or ""):
        return "unattended-upgrades"
    first = cmd[0].rsplit("/", 1)[-1] if cmd else ""
    return first if first in ("apt-get", "apt", "aptitude") else "other"


def _who(run: AptRun | None) -> tuple[str | None, int | None]:
    if run is None or not run.requested_by:
        return None, None
    m = _UID_RE.match(run.requested_by)
    if not m:
        return run.requested_by[:64], None
    return m.group(1), int(m.group(2))


def _run_of(event: LogEvent, runs: Sequence[AptRun]) -> AptRun | None:
    """The apt run whose window holds the event and which lists that action on its package.

    dpkg's clock has one-second resolution: two runs in the same second can both hold
    the time, so the action (install, remove, ...) decides; the latest such run wins.
    """
    found = None
    for r in runs:
        inside = r.start <= event.time and (r.end is None or event.time <= r.end)
        if inside and (event.package, event.action) in r.actions:
            found = r
    return found


def fid(base: str, *parts: object) -> str:
    """A finding id: the baseline's digest and what changed, hashed."""
    return _fid(base, *parts)


def _fid(base: str, *parts: object) -> str:
    # Unit separators between the parts: no part can shift into another (names and
    # versions never hold control characters; the log's bytes were decoded as text).
    text = "\x1f".join([base, *["" if p is None else str(p) for p in parts]])
    return hashlib.sha256(text.encode("utf-8", "replace")).hexdigest()[:32]


def name_changes(
    baseline_id: str,
    before: Packages,
    now: Packages,
    events: Sequence[LogEvent],
    runs: Sequence[AptRun],
    *,
    expect_unattended: bool,
) -> list[Finding]:
    """Every change since the baseline, named (see the module doc).

    Args:
        baseline_id: what makes the finding ids unique to this baseline (its digest).
        before: the baseline's packages.
        now: dpkg's status now.
        events: dpkg's actions after the baseline's cursor.
        runs: apt's runs since then.
        expect_unattended: policy marks unattended-upgrades' changes as expected.
    """
    out: list[Finding] = []
    explained: set[str] = set()
    prefix = _fid(baseline_id, "events")[:20]
    for i, ev in enumerate(events):
        run = _run_of(ev, runs)
        tool = _tool(run)
        user, uid = _who(run)
        explained.add(ev.package)
        out.append(
            Finding(
                # The i-th action after this baseline's cursor: the log only grows (and
                # rotates in order), so a recount from the same baseline gives the same id.
                finding_id=f"{prefix}.{i}",
                package=ev.package,
                arch=ev.arch,
                action=ev.action,
                old=ev.old,
                new=ev.new,
                time=ev.time,
                tool=tool,
                commandline=run.commandline[:500] if run and run.commandline else None,
                user=user,
                uid=uid,
                expected=expect_unattended and tool == "unattended-upgrades",
            )
        )
    for key in sorted(set(before) | set(now)):
        was, is_ = before.get(key), now.get(key)
        name, _, arch = key.partition(":")
        if was == is_ or name in explained:
            continue
        out.append(
            Finding(
                finding_id=_fid(baseline_id, key, was, is_),
                package=name,
                arch=arch,
                action="changed",
                old=was,
                new=is_,
                time=None,
                tool="unknown",
                commandline=None,
                user=None,
                uid=None,
                expected=False,
            )
        )
    return out
