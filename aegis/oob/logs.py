"""dpkg's log and apt's history log, rotated files included, read from a cursor. Pure reads.

dpkg writes one line per step to ``/var/log/dpkg.log`` (``2026-01-01 10:00:00 upgrade
pkg:amd64 1.0 1.1``), whoever ran it; apt adds one stanza per run to
``/var/log/apt/history.log`` (``Start-Date``, ``Commandline``, ``Requested-By``,
``Install``/``Upgrade``/``Remove``/... and ``End-Date``). logrotate keeps older ones as
``dpkg.log.1``, ``dpkg.log.2.gz``, ...

A :class:`Cursor` marks how far the log was already accounted for: the time of its last
line and how many lines carry that exact second (dpkg's clock has one-second
resolution, so a time alone would drop or repeat lines of the same second). Reading
from a cursor opens only the files written since (their mtime), newest first, and
bisects each file's lines to the cursor's second: a pass over a host with 100,000 lines
of log reads what is new, not the whole history.

The lines are local time as dpkg and apt write them; both logs are compared with each
other only, never with the UTC clock of the audit log.

Example:
    >>> events_since(paths, Cursor("2026-01-01 10:00:00", 3))
    [LogEvent(time='2026-01-01 10:00:05', action='install', ...)]
"""

from __future__ import annotations

import bisect
import gzip
import os
import re
import time
from dataclasses import dataclass
from pathlib import Path

ACTIONS = frozenset({"install", "upgrade", "remove", "purge"})
MAX_LOG_BYTES = 256 * 1024 * 1024
"""One log file (decompressed) larger than this is not read further: a bound, not a norm."""
_ROTATED_RE = re.compile(r"^\.(\d{1,4})(\.gz)?\Z")
_TIME_LEN = 19  # "YYYY-MM-DD HH:MM:SS"
_ACTION_RE = re.compile(
    rb"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d) (install|upgrade|remove|purge) (\S+) (\S+) (\S+)$",
    re.M,
)


@dataclass(frozen=True)
class Cursor:
    """How far dpkg's log was accounted for: the last line's second and its line count."""

    time: str
    seen: int


@dataclass(frozen=True)
class LogEvent:
    """One package action dpkg logged."""

    time: str
    action: str
    """``install``, ``upgrade`` (also a downgrade or reinstall), ``remove`` or ``purge``."""
    package: str
    arch: str
    old: str | None
    new: str | None


@dataclass(frozen=True)
class AptRun:
    """One stanza of apt's history log."""

    start: str
    end: str | None
    commandline: str | None
    requested_by: str | None
    """``user (uid)`` as apt wrote it; present when apt ran under sudo or pkexec."""
    packages: frozenset[str]
    """Package names (no architecture) the stanza installed, upgraded, removed, ..."""
    actions: frozenset[tuple[str, str]] = frozenset()
    """(name, dpkg action) pairs: which of dpkg's log lines this run explains."""


def rotated(path: Path) -> list[Path]:
    """``path`` and its rotations (``.1``, ``.2.gz``, ...), newest first; existing only."""
    out: list[tuple[int, Path]] = []
    try:
        names = os.listdir(path.parent)
    except OSError:
        return []
    for name in names:
        if name == path.name:
            out.append((0, path))
        elif name.startswith(path.name):
            m = _ROTATED_RE.match(name[len(path.name) :])
            if m:
                out.append((int(m.group(1)), path.parent / name))
    return [p for _, p in sorted(out)]


def local_time(epoch: float) -> str:
    """``YYYY-MM-DD HH:MM:SS`` in local time, as dpkg and apt write it."""
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(epoch))


def _read(path: Path) -> bytes:
    try:
        if path.name.endswith(".gz"):
            with gzip.open(path, "rb") as f:
                return f.read(MAX_LOG_BYTES)
        with path.open("rb") as f:
            return f.read(MAX_LOG_BYTES)
    except (OSError, EOFError, gzip.BadGzipFile):
        return b""  # unreadable or torn: what it held cannot be named, the status diff still is


def _files_since(path: Path, since: str) -> list[Path]:
    """The rotations written at or after ``since``, oldest first."""
    picked: list[Path] = []
    for p in rotated(path):
        try:
            mtime = p.stat().st_mtime
        except OSError:
            continue
        picked.append(p)
        if since and local_time(mtime) < since:
            break  # this one ends before the cursor; older ones do too
    return list(reversed(picked))


def _lines_since(path: Path, since: str) -> list[bytes]:
    """Every line of ``path``'s rotations whose time is ``since`` or later, in order."""
    key = since.encode()
    out: list[bytes] = []
    for p in _files_since(path, since):
        lines = _read(p).rstrip(b"\n").split(b"\n")
        # Lines are in time order and start with their time, so the first one at or after
        # the cursor is a bisection away.
        out.extend(lines[bisect.bisect_left(lines, key) :] if key else lines)
    return [ln for ln in out if ln]


def events_since(dpkg_log: Path, cursor: Cursor) -> tuple[list[LogEvent], Cursor]:
    """Return dpkg's package actions after ``cursor``, oldest first, and the cursor after them.

    The cursor comes from the same read, so a line dpkg writes meanwhile is left for
    the next pass rather than skipped.
    """
    events: list[LogEvent] = []
    lines = _lines_since(dpkg_log, cursor.time)
    end = cursor
    if lines:
        last = lines[-1][:_TIME_LEN]
        same = 0
        for ln in reversed(lines):
            if ln[:_TIME_LEN] != last:
                break
            same += 1
        end = Cursor(last.decode("ascii", "replace"), same)
    at_cursor = cursor.time.encode()
    first = 0
    while first < min(cursor.seen, len(lines)) and lines[first][:_TIME_LEN] == at_cursor:
        first += 1  # lines of the cursor's second already accounted for
    # One regular expression over the joined lines, not a Python loop per line: most
    # lines are "status"/"configure"/"trigproc" steps, and a pass may read 100,000.
    for m in _ACTION_RE.finditer(b"\n".join(lines[first:])):
        stamp, action, pkg, old_b, new_b = m.groups()
        name, _, arch = pkg.decode("utf-8", "replace").partition(":")
        old, new = old_b.decode("utf-8", "replace"), new_b.decode("utf-8", "replace")
        events.append(
            LogEvent(
                time=stamp.decode("ascii"),
                action=action.decode("ascii"),
                package=name,
                arch=arch,
                old=None if old == "<none>" else old,
                new=None if new == "<none>" else new,
            )
        )
    return events, end


TAIL_BYTES = 64 * 1024
"""How much of a plain log :func:`cursor_now` reads from its end first."""


def _cursor_from_tail(path: Path) -> Cursor | None:
    """The cursor from the last :data:`TAIL_BYTES` of a plain log; None when they cannot tell.

    The same cursor as reading the whole file (each apply asks twice, and a busy host's
    log is megabytes): the last line's time, and how many lines at the end share it. None
    (read it all) for a rotation that is compressed or beyond the read cap, or when the tail
    is not the whole file and no line of another time precedes that run within it.
    """
    if path.name.endswith(".gz"):
        return None
    try:
        with path.open("rb") as f:
            size = os.fstat(f.fileno()).st_size
            if size > MAX_LOG_BYTES:
                return None
            start = max(0, size - TAIL_BYTES)
            f.seek(start)
            data = f.read(TAIL_BYTES)
    except OSError:
        return None
    parts = data.split(b"\n")
    lines = [ln for ln in (parts[1:] if start else parts) if ln]  # a cut first line: dropped
    if not lines:
        return None
    last = lines[-1][:_TIME_LEN]
    for seen, ln in enumerate(reversed(lines)):
        if ln[:_TIME_LEN] != last:
            return Cursor(last.decode("ascii", "replace"), seen)
    return None if start else Cursor(last.decode("ascii", "replace"), len(lines))


def cursor_now(dpkg_log: Path) -> Cursor:
    """The cursor at the end of dpkg's current log (the newest non-empty rotation)."""
    for p in rotated(dpkg_log):
        tail = _cursor_from_tail(p)
        if tail is not None:
            return tail
        lines = [ln for ln in _read(p).split(b"\n") if ln]
        if not lines:
            continue
        last = lines[-1][:_TIME_LEN]
        seen = 0
        for ln in reversed(lines):
            if ln[:_TIME_LEN] != last:
                break
            seen += 1
        return Cursor(last.decode("ascii", "replace"), seen)
    return Cursor("", 0)


def _apt_time(value: str) -> str:
    return " ".join(value.split())  # apt writes two spaces between date and time


# apt's history field -> the dpkg log actions it shows as (a purge is logged as a removal
# first; dpkg logs a downgrade or reinstall as "upgrade").
_APT_FIELDS = {
    "Install": ("install",),
    "Upgrade": ("upgrade",),
    "Downgrade": ("upgrade",),
    "Reinstall": ("upgrade",),
    "Remove": ("remove",),
    "Purge": ("remove", "purge"),
}
_PKG_RE = re.compile(r"([^\s,()]+) \(")


def apt_runs_since(history_log: Path, since: str) -> list[AptRun]:
    """Return apt's runs that ended at or after ``since`` (or never wrote an end), oldest first."""
    runs: list[AptRun] = []
    for p in _files_since(history_log, since):
        text = _read(p).decode("utf-8", "replace")
        for stanza in text.split("\n\n"):
            fields: dict[str, str] = {}
            for line in stanza.splitlines():
                key, sep, value = line.partition(": ")
                if sep:
                    fields[key] = value.strip()
            if "Start-Date" not in fields:
                continue
            end = _apt_time(fields["End-Date"]) if "End-Date" in fields else None
            if since and end is not None and end < since:
                continue
            names = set()
            actions: set[tuple[str, str]] = set()
            for key, dpkg_actions in _APT_FIELDS.items():
                for m in _PKG_RE.finditer(fields.get(key, "")):
                    name = m.group(1).split(":", 1)[0]
                    names.add(name)
                    actions.update((name, a) for a in dpkg_actions)
            runs.append(
                AptRun(
                    start=_apt_time(fields["Start-Date"]),
                    end=end,
                    commandline=fields.get("Commandline"),
                    requested_by=fields.get("Requested-By"),
                    packages=frozenset(names),
                    actions=frozenset(actions),
                )
            )
    return runs
