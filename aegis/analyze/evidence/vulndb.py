"""The stored vulnerability index: import a tracker file, load it, report its status (edge).

``aegis vulndb import FILE`` reads an offline Debian security tracker JSON file
(an operator fetched it elsewhere) or OSV records for Debian (osv.dev's export,
:mod:`aegis.analyze.evidence.vuln_osv`), validates it with
:func:`aegis.analyze.evidence.vulnerabilities.parse_tracker` (or ``parse_osv``) for
``cfg.vuln_release`` and writes the index to ``cfg.vulndb_path`` (temp file +
``os.replace``; on a host install only root may import, and readers refuse an index
not owned by root or writable by group or others). The database date recorded in
every plan is the tracker file's modification time (when the operator fetched it),
never later than the import time; the import time is recorded beside it.

Public API: :func:`import_file`, :func:`load_index` (None when nothing was
imported), :func:`status`.

Example:
    >>> idx = load_index(cfg)  # doctest: +SKIP
    >>> vulns = vulnerabilities.match(plan_changes, idx) if idx else ()  # doctest: +SKIP
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from aegis.analyze.evidence.vuln_osv import looks_like_osv, parse_osv
from aegis.analyze.evidence.vulnerabilities import (
    MAX_INDEX_BYTES,
    MAX_TRACKER_BYTES,
    VulnIndex,
    index_from_dict,
    index_to_dict,
    parse_tracker,
    valid_release,
)
from aegis.canonical import canonical_bytes, loads_strict
from aegis.config import Config
from aegis.errors import EnvironmentFailure, InputError
from aegis.safe_read import open_regular, read_capped
from aegis.workflow.files import write_atomic


@dataclass(frozen=True)
class VulnDbStatus:
    """What ``aegis vulndb status`` reports."""

    path: str
    present: bool
    release: str | None = None
    date: str | None = None
    imported_at: str | None = None
    source_sha256: str | None = None
    packages: int = 0
    entries: int = 0


def _iso(dt: datetime) -> str:
    return dt.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _read_capped(path: Path, cap: int, what: str) -> bytes:

    if not path.exists():
        raise InputError(f"{what} {path} does not exist")
    data = read_capped(path, cap, what)  # a FIFO or device given by mistake: refused
    if len(data) > cap:
        raise InputError(f"{what} {path} is larger than {cap} bytes")
    return data


FORMATS = ("auto", "tracker", "osv")
"""Import formats: the tracker's JSON export, OSV records for Debian, or either by content."""


def import_file(
    cfg: Config, source: Path, now: datetime, fmt: str = "auto"
) -> tuple[VulnIndex, Path]:
    """Validate ``source`` and write the index for ``cfg.vuln_release``.

    Args:
        cfg: configuration (``vulndb_path``, ``vuln_release``).
        source: the tracker JSON file, or OSV records for Debian
            (:mod:`aegis.analyze.evidence.vuln_osv`: a record, a JSON array, a zip).
        now: the import time (UTC).
        fmt: ``tracker``, ``osv``, or ``auto`` (OSV when the content looks like it).

    Returns:
        The index and the path it was written to.

    Raises:
        InputError: the file is missing, oversized or malformed (nothing is written).
        EnvironmentFailure: the index cannot be written.
    """
    if fmt not in FORMATS:
        raise InputError(f"unknown import format {fmt!r} (one of {', '.join(FORMATS)})")
    if cfg.home is None and os.geteuid() != 0:
        # Planning, policy and aegisd (as root) trust the index: on a host only root
        # writes it (see _root_written), never a member of group aegis.
        raise EnvironmentFailure(
            "aegis vulndb import writes the index that policy and aegisd trust: "
            "only root may import on a host",
            hint=f"sudo aegis vulndb import {source}",
        )
    release = valid_release(cfg.vuln_release)
    data = _read_capped(source, MAX_TRACKER_BYTES, "tracker file")
    try:
        mtime = datetime.fromtimestamp(source.stat().st_mtime, UTC)
    except OSError as e:
        raise InputError(f"cannot stat tracker file {source}: {e.strerror}") from e
    date = _iso(min(mtime, now))
    osv = fmt == "osv" or (fmt == "auto" and looks_like_osv(data))
    parse = parse_osv if osv else parse_tracker
    index = parse(data, release=release, date=date, imported_at=_iso(now))
    target = cfg.vulndb_path
    write_atomic(target, canonical_bytes(index_to_dict(index)), mode=0o644)
    return index, target


def load_index(cfg: Config) -> VulnIndex | None:
    """The stored index, or None when ``aegis vulndb import`` never ran.

    Raises:
        InputError: the stored index is malformed or oversized (never silently ignored).
    """
    path = cfg.vulndb_path
    if not path.exists():
        return None

    # The index sits in the group-writable store and aegisd reads it as root: a FIFO
    # planted there must not hang every apply (refused as not a regular file).
    with open_regular(path, "vulnerability index", follow=False) as fh:
        if cfg.home is None:
            _root_written(path, os.fstat(fh.fileno()))
        try:
            raw = fh.read(MAX_INDEX_BYTES + 1)
        except OSError as e:
            raise InputError(f"cannot read vulnerability index {path}: {e.strerror}") from e
    if len(raw) > MAX_INDEX_BYTES:
        raise InputError(f"vulnerability index {path} is larger than {MAX_INDEX_BYTES} bytes")
    doc: Any = loads_strict(raw, max_bytes=MAX_INDEX_BYTES)
    index = index_from_dict(doc)
    if index.release != cfg.vuln_release:
        # Matching bookworm packages against another release's fixes would be wrong.
        raise InputError(
            f"vulnerability index {path} is for {index.release!r}, configured release is "
            f"{cfg.vuln_release!r}",
            hint="run: aegis vulndb import FILE",
        )
    return index


def _root_written(path: Path, st: os.stat_result) -> None:
    """Refuse an index that root did not write (host install).

    Every member of group ``aegis`` can write the store directory: an agent's empty or
    old index would hide vulnerabilities from plans, policy and aegisd. Only root
    imports on a host (:func:`import_file`), so anything else is no data at all
    (``vuln.db-missing``), checked on the open file, not on a name that can be swapped.
    """
    if st.st_uid != 0:
        problem = f"belongs to uid {st.st_uid}, not root"
    elif st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        problem = f"is writable by group or others (mode {stat.S_IMODE(st.st_mode):o})"
    else:
        return
    raise InputError(
        f"vulnerability index {path} {problem}: only an index root imported is trusted",
        hint="as root: aegis vulndb import FILE",
    )


def status(cfg: Config) -> VulnDbStatus:
    """Describe the stored index (for ``aegis vulndb status``)."""
    index = load_index(cfg)
    if index is None:
        return VulnDbStatus(path=str(cfg.vulndb_path), present=False)
    return VulnDbStatus(
        path=str(cfg.vulndb_path),
        present=True,
        release=index.release,
        date=index.date,
        imported_at=index.imported_at,
        source_sha256=index.source_sha256,
        packages=len(index.entries),
        entries=index.entry_count,
    )
