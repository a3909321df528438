"""Content and vulnerability evidence for an apt plan.

Built on :mod:`aegis.ecosystems.apt.evidence.download`, ``contents`` and ``vulnerabilities``.

- :func:`inspect_contents`: fetch each .deb to install into Aegis's private cache
  (kept by hash, checked against the signed index's SHA-256 and size), scan it
  without extracting it, and mark its provenance ``verified``. For upgrades,
  downgrades and reinstalls the scripts are compared with the installed ones in
  dpkg's info directory. A file that cannot be fetched gives a
  ``content.unavailable`` signal; one that does not match the index gives
  ``content.hash-mismatch`` (its provenance stays unverified: policy denies).
- :func:`match_vulnerabilities`: match the delta against the imported tracker
  index at ``cfg.vulndb_path``; no index means no data (policy decides), a
  malformed one gives a ``vulnerability.db-invalid`` signal.
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from aegis.analyze.evidence.scripts import scan_script
from aegis.analyze.evidence.vulndb import load_index
from aegis.analyze.evidence.vulnerabilities import match
from aegis.config import Config
from aegis.ecosystems.apt.evidence.contents import InstalledInfo, inspect_deb, installed_scripts
from aegis.ecosystems.apt.evidence.debfile import DebContents
from aegis.ecosystems.apt.evidence.download import (
    IN_MEMORY_MAX,
    DebHashMismatchError,
    cache_path,
    fetched_private,
    private_dir,
    verified_bytes,
)
from aegis.errors import AegisError
from aegis.model import Action, Finding, PackageChange, Provenance, Signal, Vulnerability

_COMPARE = (Action.UPGRADE, Action.DOWNGRADE, Action.REINSTALL)


@dataclass(frozen=True)
class ContentResult:
    """What content inspection adds to a plan: findings, verified provenance, signals."""

    findings: tuple[Finding, ...]
    provenance: tuple[Provenance, ...]
    signals: tuple[Signal, ...]


@dataclass(frozen=True)
class VulnResult:
    """Vulnerabilities matched against the delta, the index date, and index signals."""

    vulnerabilities: tuple[Vulnerability, ...]
    db_date: str | None
    signals: tuple[Signal, ...]


def inspect_contents(
    cfg: Config,
    changes: Sequence[PackageChange],
    provenance: Sequence[Provenance],
    info_dir: Path,
    *,
    timeout_s: float,
    wait_for: Callable[[str], None] | None = None,
    parsed: Callable[[str], DebContents | None] | None = None,
    early: Callable[[str], bytes | None] | None = None,
    installed: InstalledInfo | None = None,
) -> ContentResult:
    """Fetch and scan every package of ``provenance``.

    A file the warmer read (``early``) is verified and scanned on the calling thread;
    the others are fetched and scanned concurrently.

    ``wait_for(uri)``: called before each package's file is fetched; it returns once
    :class:`aegis.ecosystems.apt.cache_warm.CacheWarmer` has read that file.
    ``parsed(sha256)``: that warmer's parse of the file with this SHA-256, used for a
    file only once its verified bytes have it (in memory: nothing can swap them).
    ``early(sha256)``: the bytes that warmer read with this SHA-256, handed to
    :func:`verified_bytes`, which hashes them again before using them.
    ``installed``: the plan's reader of ``info_dir`` (shared with
    :func:`installed_script_findings`).
    """
    by_name = {c.name: c for c in changes}

    def one(p: Provenance, read: bytes | None) -> tuple[Provenance, list[Finding], Signal | None]:
        change = by_name.get(p.package)
        compare = change is not None and change.action in _COMPARE
        copies = ExitStack()
        own: Path | bytes
        fetch: dict[str, Any] = {
            "cache_dir": cfg.cache_dir,
            "apt_config": cfg.apt_config,
            "timeout_s": timeout_s,
            # A file the warmer read is local: no fetch, no work directory to make.
            "work_dir": work.path() if read is None else None,
            "cache_fd": cache_fd,
        }
        try:
            # The bytes scanned are the bytes verified: held in memory when small (no file
            # to create: on a loaded disk that was most of the cost), else a private copy,
            # never the shared cache.
            if p.size <= IN_MEMORY_MAX:
                own = verified_bytes(p, **fetch, early=read)
            else:
                own = copies.enter_context(fetched_private(p, **fetch))
        except DebHashMismatchError as exc:
            return p, [], Signal("content.hash-mismatch", p.package, str(exc)[:300])
        except AegisError as exc:
            return p, [], Signal("content.unavailable", p.package, str(exc)[:300])
        # Verified bytes hash to p.sha256, so a parse kept under that hash is theirs.
        warm = parsed(p.sha256) if parsed is not None and isinstance(own, bytes) else None
        with copies:
            result = inspect_deb(
                own,
                p.package,
                p.version,
                installed_info_dir=info_dir if compare else None,
                arch=p.arch,
                parsed=warm,
                installed=installed,
            )
        return replace(p, verified=True), list(result.findings), None

    def early_bytes(p: Provenance) -> bytes | None:
        """What the warmer read for ``p`` (waiting for it), when ``p`` is kept in memory."""
        if wait_for is not None:
            wait_for(p.uri)
        if early is None or p.size > IN_MEMORY_MAX:
            return None
        return early(p.sha256)

    findings: list[Finding] = []
    out: list[Provenance] = []
    signals: list[Signal] = []
    # One private directory (mode 0700) for the run's per-package work directories:
    # creating and removing hundreds of them in the shared system temp directory cost
    # more than fetching and scanning the packages.
    work = _WorkDir()
    with work, ExitStack() as cache, ThreadPoolExecutor(max_workers=4) as pool:
        # The cache directory is opened and checked once for the plan; when that fails,
        # each package tries on its own and says so (content.unavailable).
        cache_fd: int | None = None
        with contextlib.suppress(AegisError):
            cache_fd = cache.enter_context(private_dir(cache_path(cfg.cache_dir, "0" * 64).parent))
        # A file the warmer already read is verified and scanned here, in order: that is
        # a little CPU each, and threads taking turns at it cost more than the work (each
        # of their file system calls waits for the interpreter lock again). Files still
        # to be fetched go to the pool, whose threads wait on the network and disk.
        done: list[
            Future[tuple[Provenance, list[Finding], Signal | None]]
            | tuple[Provenance, list[Finding], Signal | None]
        ] = []
        for p in provenance:
            read = early_bytes(p)
            done.append(one(p, read) if read is not None else pool.submit(one, p, None))
        for item in done:
            p2, f2, sig = item.result() if isinstance(item, Future) else item
            out.append(p2)
            findings.extend(f2)
            if sig is not None:
                signals.append(sig)
    findings.sort(key=lambda f: (f.package, f.file, f.line, f.rule))
    return ContentResult(tuple(findings), tuple(out), tuple(signals))


class _WorkDir:
    """The run's private work directory (mode 0700), made when a fetch first needs it.

    Files the warmer read need none; making and removing it cost more than scanning them
    on a busy disk.
    """

    def __init__(self) -> None:
        self._path: Path | None = None
        self._lock = threading.Lock()

    def path(self) -> Path:
        with self._lock:
            if self._path is None:
                self._path = Path(tempfile.mkdtemp(prefix="aegis-inspect-"))
            return self._path

    def __enter__(self) -> _WorkDir:
        return self

    def __exit__(self, *exc: object) -> None:
        if self._path is not None:
            shutil.rmtree(self._path, ignore_errors=True)


# The installed package's scripts dpkg runs for each action: ``prerm`` and ``postrm`` of
# the old version run on remove, purge, upgrade, downgrade and reinstall (dpkg's
# maintainer-script flowcharts, Debian Policy 6.6). They are on this host already, so
# they are read from dpkg's info directory, not fetched.
_OLD_SCRIPTS_RUN = dict.fromkeys(
    (Action.REMOVE, Action.PURGE, Action.UPGRADE, Action.DOWNGRADE, Action.REINSTALL),
    ("prerm", "postrm"),
)
INSTALLED_PREFIX = "installed:"
"""Findings in an installed script name the file ``installed:<script>``."""


def installed_script_findings(
    changes: Sequence[PackageChange], info_dir: Path, installed: InstalledInfo | None = None
) -> tuple[Finding, ...]:
    """Rule findings over the installed scripts the delta makes dpkg run (no download).

    ``installed``: the plan's reader of ``info_dir``, when it has one.
    """
    out: list[Finding] = []
    for c in changes:
        wanted = _OLD_SCRIPTS_RUN.get(c.action, ())
        scripts = None
        if wanted:
            scripts = (
                installed.scripts(c.name, c.arch)
                if installed is not None and installed.info_dir == info_dir
                else installed_scripts(info_dir, c.name, c.arch)
            )
        for name in wanted:
            body = (scripts or {}).get(name)
            if body is not None:
                out.extend(scan_script(c.name, f"{INSTALLED_PREFIX}{name}", body))
    out.sort(key=lambda f: (f.package, f.file, f.line, f.rule))
    return tuple(out)


def _load_vulndb(cfg: Config) -> tuple[Any, str | None]:
    """(index or None, problem): via :func:`aegis.analyze.evidence.vulndb.load_index`."""
    try:
        return load_index(cfg), None
    except (AegisError, OSError) as exc:
        return None, str(exc)[:300]


def match_vulnerabilities(cfg: Config, changes: Sequence[PackageChange]) -> VulnResult:
    """Vulnerabilities of the delta at post-change versions, and the database date."""
    index, problem = _load_vulndb(cfg)
    signals = (Signal("vulnerability.db-invalid", None, problem),) if problem else ()
    if index is None:
        return VulnResult((), None, signals)

    vulns = tuple(match(changes, index)) if changes else ()
    return VulnResult(vulns, index.date, signals)
