"""The package-state baseline: what dpkg looked like the last time Aegis accounted for it.

aegisd writes it (``<log_dir>/package-baseline.json``, 0640 root:aegis, beside the audit
log in the directory only root writes) at its first start, after each of its own runs,
and after it recorded out-of-band findings; nothing else writes it, so a change stops
being "new" only once aegisd recorded it in the audit log (never lost, never twice).
Readers (the monitor, ``aegis drift``, ``aegis doctor``) trust it only as aegisd's
(:func:`aegis.execute.status_file.read_trusted`: root's regular file, not group- or
world-writable) and parse it strictly.

It holds dpkg's status hash and packages, the cursor into dpkg's log, the state of the
Aegis-managed npm prefix and pip venvs (``places``, aegis/oob/places.py), and per tool the
number of findings recorded so far (the ``aegis_out_of_band_changes_total`` counter).

Example:
    >>> read_baseline(cfg).status_sha256
    '3b6a...'
"""

from __future__ import annotations

import contextlib
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aegis.canonical import canonical_bytes, canonical_hash, loads_strict
from aegis.config import Config, group_gid
from aegis.errors import InputError
from aegis.execute.status_file import read_trusted
from aegis.oob.logs import Cursor

NAME = "package-baseline.json"
SCHEMA = "aegis.package-baseline/1"
MODE = 0o640
MAX_BYTES = 64 * 1024 * 1024


@dataclass(frozen=True)
class Baseline:
    """What aegisd last accounted for."""

    written_at: str
    reason: str
    """``start`` (first start), ``apply`` (after its own run) or ``recorded`` (findings)."""
    status_sha256: str
    packages: dict[str, str]
    cursor: Cursor
    counts: dict[str, int] = field(default_factory=dict)
    """Findings recorded so far, per tool."""
    last_finding_at: str | None = None
    places: dict[str, dict[str, str]] = field(default_factory=dict)
    """Managed npm prefix and pip venvs: location -> package -> ``VERSION DIGEST``."""

    @property
    def digest(self) -> str:
        """What finding ids are derived from: the accounted state, not when it was written."""
        doc: dict[str, Any] = {
            "status": self.status_sha256,
            "cursor": [self.cursor.time, self.cursor.seen],
        }
        if self.places:  # absent before managed places existed: the ids stay as they were
            doc["places"] = self.places
        return canonical_hash(doc)


def baseline_path(cfg: Config) -> Path:
    """``<log_dir>/package-baseline.json``."""
    return cfg.log_dir / NAME


def to_doc(b: Baseline) -> dict[str, Any]:
    """The file's JSON document."""
    return {
        "schema_version": SCHEMA,
        "written_at": b.written_at,
        "reason": b.reason,
        "status_sha256": b.status_sha256,
        "packages": dict(sorted(b.packages.items())),
        "dpkg_log_cursor": {"time": b.cursor.time, "seen": b.cursor.seen},
        "counts": dict(sorted(b.counts.items())),
        "last_finding_at": b.last_finding_at,
        "places": {k: dict(sorted(v.items())) for k, v in sorted(b.places.items())},
    }


def _str(doc: dict[str, Any], key: str) -> str:
    value = doc.get(key)
    if not isinstance(value, str):
        raise InputError(f"package baseline: {key} must be a string")
    return value


def from_doc(doc: Any) -> Baseline:
    """Parse the document strictly.

    Raises:
        InputError: not a baseline of this schema.
    """
    if not isinstance(doc, dict) or doc.get("schema_version") != SCHEMA:
        raise InputError("package baseline: unknown schema")
    packages = doc.get("packages")
    cursor = doc.get("dpkg_log_cursor")
    counts = doc.get("counts")
    if not isinstance(packages, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in packages.items()
    ):
        raise InputError("package baseline: packages must map names to strings")
    if (
        not isinstance(cursor, dict)
        or not isinstance(cursor.get("time"), str)
        or not isinstance(cursor.get("seen"), int)
    ):
        raise InputError("package baseline: malformed dpkg_log_cursor")
    if not isinstance(counts, dict) or not all(
        isinstance(v, int) and not isinstance(v, bool) for v in counts.values()
    ):
        raise InputError("package baseline: counts must be integers")
    last = doc.get("last_finding_at")
    places = doc.get("places", {})  # absent in a baseline written before places existed
    if not isinstance(places, dict) or not all(
        isinstance(k, str)
        and isinstance(v, dict)
        and all(isinstance(n, str) and isinstance(s, str) for n, s in v.items())
        for k, v in places.items()
    ):
        raise InputError("package baseline: places must map locations to package states")
    return Baseline(
        written_at=_str(doc, "written_at"),
        reason=_str(doc, "reason"),
        status_sha256=_str(doc, "status_sha256"),
        packages=dict(packages),
        cursor=Cursor(cursor["time"], cursor["seen"]),
        counts={str(k): int(v) for k, v in counts.items()},
        last_finding_at=last if isinstance(last, str) else None,
        places={k: dict(v) for k, v in places.items()},
    )


def read_baseline(cfg: Config) -> Baseline | None:
    """The baseline aegisd wrote, or None when there is none yet.

    Raises:
        InputError: present but not aegisd's (owner, mode) or malformed.
    """
    path = baseline_path(cfg)
    if not path.exists():
        return None
    return from_doc(loads_strict(read_trusted(path), max_bytes=MAX_BYTES))


def write_baseline(cfg: Config, b: Baseline) -> Path:
    """Write the baseline atomically (temp file, fsync, rename), 0640 root:aegis."""
    body = canonical_bytes(to_doc(b)) + b"\n"
    path = baseline_path(cfg)
    path.parent.mkdir(parents=True, exist_ok=True)
    dfd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    tmp = f".{NAME}.{os.getpid()}.{time.monotonic_ns()}.tmp"
    try:
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
        fd = os.open(tmp, flags, MODE, dir_fd=dfd)
        try:
            gid = group_gid()
            if os.geteuid() == 0 and gid is not None:
                os.fchown(fd, 0, gid)
            os.fchmod(fd, MODE)
            view = memoryview(body)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, NAME, src_dir_fd=dfd, dst_dir_fd=dfd)
        os.fsync(dfd)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp, dir_fd=dfd)
        raise
    finally:
        os.close(dfd)
    return path
