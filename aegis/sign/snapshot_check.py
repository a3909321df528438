"""``aegisctl snapshot check``: can the snapshot control be satisfied on this host?

``aegisctl sign`` refuses a plan whose policy requires a snapshot unless this check
passes. It does not take a snapshot (aegisd does, ``aegis/execute/snapshots.py``); it
checks that one could be taken: replaced packages can be kept (apt's archive cache
exists or ``dpkg-repack`` is installed), dpkg's status is readable, and the rollback
cache directory is writable by aegisd (root) or by us, with some free space.

The probe (:func:`probe`) reads the file system; :func:`evaluate` is pure.

Example:
    >>> result = check_snapshot_capability(cfg)
    >>> result.ok
    True
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from aegis.config import Config

DPKG_REPACK = Path("/usr/bin/dpkg-repack")
_MIB = 1024 * 1024
MIN_FREE_BYTES = 64 * _MIB


@dataclass(frozen=True)
class Probe:
    """Facts about this host, gathered by :func:`probe`."""

    dpkg_repack: bool
    apt_archives: bool
    dpkg_status_readable: bool
    cache_dir: str
    cache_writable: bool
    """We can write it, or root (aegisd) owns it."""
    cache_free_bytes: int


@dataclass(frozen=True)
class SnapshotItem:
    """One line of the check."""

    name: str
    ok: bool
    detail: str


@dataclass(frozen=True)
class SnapshotCapability:
    """The answer: ok only when every item is ok."""

    ok: bool
    items: tuple[SnapshotItem, ...]

    def reasons(self) -> list[str]:
        """Details of the failed items."""
        return [f"{i.name}: {i.detail}" for i in self.items if not i.ok]


def _nearest_existing(path: Path) -> Path:
    """The deepest ancestor of ``path`` (or itself) this user can see.

    An operator in group aegis cannot look inside aegisd's root-only directory: the
    nearest directory it can stat (aegisd's own, root-owned) then stands for the cache,
    which is what aegisd, running as root, writes.
    """
    current = path
    while current != current.parent:
        try:
            current.stat()
        except (FileNotFoundError, NotADirectoryError, PermissionError):
            current = current.parent
            continue
        return current
    return current


def probe(cfg: Config) -> Probe:
    """Gather the facts (file-system reads only)."""
    root = cfg.dpkg_root or Path("/")
    cache = cfg.rollback_cache_dir
    existing = _nearest_existing(cache)
    try:
        st = existing.stat()
        writable = os.access(existing, os.W_OK) or st.st_uid == 0
        free = shutil.disk_usage(existing).free
    except OSError:
        writable, free = False, 0
    status = root / "var/lib/dpkg/status"
    return Probe(
        dpkg_repack=DPKG_REPACK.is_file() and os.access(DPKG_REPACK, os.X_OK),
        apt_archives=(root / "var/cache/apt/archives").is_dir(),
        dpkg_status_readable=status.is_file() and os.access(status, os.R_OK),
        cache_dir=str(cache),
        cache_writable=writable,
        cache_free_bytes=free,
    )


def evaluate(p: Probe, *, min_free_bytes: int = MIN_FREE_BYTES) -> SnapshotCapability:
    """Decide from the facts (pure)."""
    keep = p.dpkg_repack or p.apt_archives
    sources = [
        n for n, ok in (("apt archive cache", p.apt_archives), ("dpkg-repack", p.dpkg_repack)) if ok
    ]
    items = (
        SnapshotItem(
            "replaced-packages",
            keep,
            ", ".join(sources) if keep else "neither apt's archive cache nor dpkg-repack exists",
        ),
        SnapshotItem(
            "dpkg-status",
            p.dpkg_status_readable,
            "readable" if p.dpkg_status_readable else "dpkg status file is not readable",
        ),
        SnapshotItem(
            "rollback-cache",
            p.cache_writable,
            p.cache_dir if p.cache_writable else f"{p.cache_dir} is not writable",
        ),
        SnapshotItem(
            "free-space",
            p.cache_free_bytes >= min_free_bytes,
            f"{p.cache_free_bytes // _MIB} MiB free (need {min_free_bytes // _MIB})",
        ),
    )
    return SnapshotCapability(all(i.ok for i in items), items)


def check_snapshot_capability(cfg: Config) -> SnapshotCapability:
    """Probe this host and evaluate."""
    return evaluate(probe(cfg))
