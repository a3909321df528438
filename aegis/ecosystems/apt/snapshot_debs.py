"""Rollback targets restored from the .deb aegisd kept in its dpkg-state snapshot.

``aegisctl rollback`` asks for every replaced package at its recorded version. When
no configured repository serves such a version any more, the analyzer plans it from
the snapshot's kept .deb, handed to apt as an absolute path (apt simulates and
installs a local archive given that way). The snapshot manifest aegisd wrote into
its root-only rollback cache is that file's provenance, so before a kept .deb is
used the analyzer checks, in order:

- the rollback cache, the snapshot directory, the manifest and the .deb are not
  symlinks, are owned by root (or by the analyzing uid, which is root on a real
  install) and are writable by nobody else;
- the manifest names the file as a plain name inside the snapshot's own directory;
- the file's SHA-256 and size equal the manifest's;
- the .deb's own Package, Version and Architecture equal the manifest entry;
- the file did not change while it was checked.

A failed check is a plan failure (``snapshot-mismatch``; ``rollback-unobtainable``
when the snapshot kept no .deb of the version), never a silent fallback: policy
denies, and nothing runs. aegisd repeats :func:`recheck` on the signed plan right
before it runs the argv.

Example:
    >>> found = rollback_sources(cfg, intent, targets, apt_run)
    >>> found.operands
    {'aegis-base=1.0': '/var/lib/aegis/aegisd/rollback-cache/snap-1/aegis-base_1.0_all.deb'}
"""

from __future__ import annotations

import hashlib
import os
import re
import stat
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

from aegis.config import Config
from aegis.ecosystems.apt import parse as aptparse
from aegis.ecosystems.apt.names import Target
from aegis.ecosystems.apt.run import RunResult, run_tool
from aegis.errors import AegisError
from aegis.execute.snapshots import ReplacedPackage, Snapshot, load_snapshot, snapshot_dir
from aegis.model import Intent, Operation, SnapshotDeb

APT_CACHE = "/usr/bin/apt-cache"
DPKG_DEB = "/usr/bin/dpkg-deb"
_DEB_NAME = re.compile(r"\A[A-Za-z0-9][A-Za-z0-9.+~%_-]*\.deb\Z")

AptRun = Callable[..., RunResult]


class _Problem(Exception):
    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message


def _mismatch(message: str) -> _Problem:
    return _Problem("snapshot-mismatch", message)


@dataclass(frozen=True)
class RollbackSources:
    """What the analyzer takes from the snapshot for one rollback intent."""

    debs: tuple[SnapshotDeb, ...] = ()
    operands: dict[str, str] = field(default_factory=dict)
    """Target as given -> absolute .deb path handed to apt instead."""
    records: dict[tuple[str, str], dict[str, str]] = field(default_factory=dict)
    """(name, version) -> the kept .deb's control fields (Source, Essential...)."""
    failure_kind: str | None = None
    failure: str | None = None


def _node(path: Path, *, directory: bool) -> os.stat_result:
    try:
        st = os.lstat(path)
    except OSError as e:
        raise _mismatch(f"{path}: {e.strerror}") from e
    if stat.S_ISLNK(st.st_mode):
        raise _mismatch(f"{path} is a symlink")
    if directory != stat.S_ISDIR(st.st_mode) or not (directory or stat.S_ISREG(st.st_mode)):
        raise _mismatch(f"{path} is not a {'directory' if directory else 'regular file'}")
    if st.st_uid not in (0, os.geteuid()):
        raise _mismatch(f"{path} is owned by uid {st.st_uid}, not root")
    if st.st_mode & 0o022:
        raise _mismatch(f"{path} is writable by others (mode {stat.S_IMODE(st.st_mode):o})")
    return st


def _measure(path: Path) -> tuple[str, int, os.stat_result]:
    """SHA-256 and size of the file, read without following a symlink."""
    try:
        # O_NONBLOCK: a FIFO swapped in after the lstat must not hang the analysis.
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK)
    except OSError as e:
        raise _mismatch(f"{path}: {e.strerror}") from e
    digest = hashlib.sha256()
    size = 0
    with os.fdopen(fd, "rb") as f:
        st = os.fstat(f.fileno())
        if not stat.S_ISREG(st.st_mode):
            raise _mismatch(f"{path} is not a regular file")
        for block in iter(lambda: f.read(1 << 16), b""):
            digest.update(block)
            size += len(block)
    return digest.hexdigest(), size, st


def _same_file(a: os.stat_result, b: os.stat_result) -> bool:
    return (a.st_dev, a.st_ino, a.st_size, a.st_mtime_ns) == (
        b.st_dev,
        b.st_ino,
        b.st_size,
        b.st_mtime_ns,
    )


def _snapshot_base(cfg: Config, snapshot_id: str) -> Path:
    try:
        base = snapshot_dir(cfg, snapshot_id)
    except AegisError as e:
        raise _mismatch(e.message) from e
    _node(cfg.rollback_cache_dir, directory=True)
    _node(base, directory=True)
    return base


def _kept_path(cfg: Config, snapshot_id: str, deb: str | None) -> Path:
    if deb is None or not _DEB_NAME.match(deb):
        raise _mismatch(f"snapshot {snapshot_id} names {deb!r}, not a file of its own directory")
    return _snapshot_base(cfg, snapshot_id) / deb


def _load(cfg: Config, snapshot_id: str) -> Snapshot:
    _node(_snapshot_base(cfg, snapshot_id) / "manifest.json", directory=False)
    try:
        return load_snapshot(cfg, snapshot_id)
    except AegisError as e:
        raise _mismatch(e.message) from e


def _control(path: Path, timeout_s: float) -> dict[str, str]:
    res = run_tool([DPKG_DEB, "--field", "--", str(path)], apt_config=None, timeout_s=timeout_s)
    records = aptparse.parse_control_records(res.stdout) if res.ok else []
    if not records:
        raise _mismatch(f"{path} is not a readable .deb: {res.stderr.strip()[-200:]}")
    return records[0]


def _check(
    cfg: Config, snapshot_id: str, entry: ReplacedPackage, timeout_s: float
) -> tuple[int, dict[str, str]]:
    label = f"{entry.name}={entry.version}"
    if entry.deb is None or entry.sha256 is None:
        raise _Problem(
            "rollback-unobtainable",
            f"{label}: no configured repository serves it and snapshot {snapshot_id} kept "
            f"no .deb of it ({entry.obtained_from}: {entry.detail or 'no detail'})",
        )
    path = _kept_path(cfg, snapshot_id, entry.deb)
    before = _node(path, directory=False)
    digest, size, opened = _measure(path)
    if digest != entry.sha256:
        raise _mismatch(f"{path}: SHA-256 {digest} is not the manifest's {entry.sha256}")
    if entry.size is not None and size != entry.size:
        raise _mismatch(f"{path}: {size} bytes, the manifest says {entry.size}")
    control = _control(path, timeout_s)
    got = (control.get("Package"), control.get("Version"), control.get("Architecture"))
    if got != (entry.name, entry.version, entry.arch):
        raise _mismatch(
            f"{path} is {'/'.join(str(g) for g in got)}, the manifest says "
            f"{entry.name}/{entry.version}/{entry.arch}"
        )
    after = _node(path, directory=False)
    if not (_same_file(before, opened) and _same_file(opened, after)):
        raise _mismatch(f"{path} changed while it was checked")
    return size, control


def _served(pol: aptparse.PackagePolicy | None, version: str) -> bool:
    """A configured repository offers ``version`` (or it is what is installed)."""
    return pol is not None and (bool(pol.versions.get(version)) or pol.installed == version)


def rollback_sources(
    cfg: Config, intent: Intent, targets: Sequence[Target], run: AptRun
) -> RollbackSources:
    """The kept .debs a rollback intent needs, each checked against the manifest.

    Only targets no configured repository serves are taken from the snapshot: a
    version a signed index still carries keeps its index provenance.
    """
    if intent.operation is not Operation.ROLLBACK or not intent.rollback_of:
        return RollbackSources()
    wanted = [t for t in targets if t.kind == "package" and t.name and t.version]
    if not wanted:
        return RollbackSources()
    names = sorted({t.name for t in wanted if t.name})
    policies = aptparse.parse_apt_policy(run(APT_CACHE, "policy", "--", *names).stdout)
    missing = [t for t in wanted if not _served(policies.get(t.name or ""), t.version or "")]
    if not missing:
        return RollbackSources()
    snapshot_id = intent.rollback_of
    timeout_s = float(cfg.apt_timeout_s)
    debs: list[SnapshotDeb] = []
    operands: dict[str, str] = {}
    records: dict[tuple[str, str], dict[str, str]] = {}
    try:
        snap = _load(cfg, snapshot_id)
    except _Problem as p:
        return RollbackSources(failure_kind=p.kind, failure=p.message)
    entries = {(r.name, r.version): r for r in snap.replaced}
    failure: _Problem | None = None
    for t in sorted(missing, key=lambda t: t.raw):
        entry = entries.get((t.name or "", t.version or ""))
        if entry is None:
            failure = failure or _Problem(
                "rollback-unobtainable",
                f"{t.raw}: no configured repository serves it and snapshot {snapshot_id} "
                "did not replace it",
            )
            continue
        sd = SnapshotDeb(
            package=entry.name,
            version=entry.version,
            arch=entry.arch,
            snapshot_id=snapshot_id,
            path=str(cfg.rollback_cache_dir / snapshot_id / (entry.deb or "")),
            sha256=entry.sha256 or "",
            size=entry.size or 0,
            obtained_from=entry.obtained_from,
            verified=False,
        )
        try:
            size, control = _check(cfg, snapshot_id, entry, timeout_s)
        except _Problem as p:
            failure = failure or p
            debs.append(replace(sd, problem=p.message))
            continue
        debs.append(replace(sd, size=size, verified=True))
        operands[t.raw] = sd.path
        records[(entry.name, entry.version)] = control
    if failure is not None:
        return RollbackSources(tuple(debs), {}, {}, failure.kind, failure.message)
    return RollbackSources(tuple(debs), operands, records)


def recheck(cfg: Config, sd: SnapshotDeb) -> str | None:
    """Say why the kept .deb no longer matches, or None; aegisd's last look before running."""
    try:
        path = _kept_path(cfg, sd.snapshot_id, Path(sd.path).name)
        if str(path) != sd.path:
            raise _mismatch(f"{sd.path} is not inside snapshot {sd.snapshot_id}'s directory")
        _node(path, directory=False)
        digest, size, _ = _measure(path)
        if (digest, size) != (sd.sha256, sd.size):
            raise _mismatch(
                f"{path} changed after signing: SHA-256 {digest} ({size} bytes), "
                f"signed {sd.sha256} ({sd.size} bytes)"
            )
    except _Problem as p:
        return p.message
    return None


def changed_since_signing(cfg: Config, debs: Sequence[SnapshotDeb]) -> str | None:
    """The first kept .deb of a signed plan that no longer matches, named; else None."""
    for sd in debs:
        problem = recheck(cfg, sd)
        if problem is not None:
            return f"snapshot .deb of {sd.package}={sd.version}: {problem}"
    return None
