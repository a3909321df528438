"""aegisd's own copy of every .deb an apply installs: fetched by its planned URI, verified.

docs/apt-trust.md "One file from plan to install". The signed argv names each package to
install by a file in ``plan.deb_dir`` (aegisd's ``<aegisd_dir>/debs``, mode 0700, root's):
:func:`fetch_planned` puts exactly the planned files there, under aegisd's lock and before
``started`` is recorded; :func:`remove_planned` removes them after the run.

Each file comes through :func:`aegis.ecosystems.apt.evidence.download.fetch_deb`: aegisd's own
0700 cache (where its re-derivation's content inspection left a remote file), else its planned URI
(a local repository's file is copied, anything else is fetched by apt's ``apt-helper
download-file`` with the planned SHA-256). It is then copied into the directory while
hashed (:func:`~aegis.ecosystems.apt.evidence.download.copy_verified`), so it exists there under
its planned name only with the planned size and SHA-256. apt runs with no source list
(:func:`aegis.ecosystems.apt.argv.files_only`): dpkg unpacks these files and nothing else.

Example::

    fetched = fetch_planned(cfg, ep.plan, ep.argv)   # AegisError: refused, nothing ran
    try:
        run(ep.argv)
    finally:
        remove_planned(cfg, ep.plan, ep.argv)
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from aegis.ecosystems.apt.argv import planned_deb_path, source_parts_option
from aegis.ecosystems.apt.evidence.download import copy_verified, fetch_deb, private_dir
from aegis.errors import AegisError, TrustError

if TYPE_CHECKING:
    from aegis.config import Config
    from aegis.model import Plan, Provenance

REFUSED_DEB_MISMATCH = "refused:deb-mismatch"
"""The refusal of an apply whose planned URI served other bytes than the planned file (exit 4)."""
REFUSED_DEB_UNAVAILABLE = "refused:deb-unavailable"
"""The refusal of an apply whose planned .deb could not be fetched (exit 7)."""


@dataclass(frozen=True)
class Fetched:
    """What :func:`fetch_planned` put in place (for the audit event)."""

    files: int
    bytes: int
    duration_ms: int


def planned_files(plan: Plan, argv: Sequence[str]) -> list[tuple[Provenance, str]]:
    """(provenance, path) of every file of ``plan.deb_dir`` the argv names. Pure."""
    if not plan.deb_dir:
        return []
    named = set(argv)
    pairs = [(p, planned_deb_path(plan.deb_dir, p)) for p in plan.provenance]
    return [(p, path) for p, path in pairs if path is not None and path in named]


def _uses_dir(plan: Plan, argv: Sequence[str]) -> bool:

    return bool(plan.deb_dir) and source_parts_option(plan.deb_dir) in argv


def fetch_planned(cfg: Config, plan: Plan, argv: Sequence[str]) -> Fetched:
    """Put every planned .deb the argv names into aegisd's directory, verified.

    Raises:
        TrustError: the plan names another directory than aegisd's own.
        AegisError: a file could not be fetched, or is not the planned one
            (:class:`~aegis.ecosystems.apt.evidence.download.DebHashMismatchError`).
    """
    t0 = time.monotonic()
    if not _uses_dir(plan, argv):
        return Fetched(0, 0, 0)
    if plan.deb_dir != str(cfg.deb_dir):
        # Equal after the re-derivation; checked again because aegisd writes only here.
        raise TrustError(f"the plan's .deb directory {plan.deb_dir} is not aegisd's {cfg.deb_dir}")
    wanted = planned_files(plan, argv)
    total = 0
    with private_dir(cfg.deb_dir) as dir_fd:
        _remove_others(dir_fd, {Path(path).name for _, path in wanted})
        for prov, path in wanted:
            source = fetch_deb(
                prov,
                cache_dir=cfg.cache_dir,
                apt_config=cfg.apt_config,
                timeout_s=float(cfg.apt_timeout_s),
            )
            copy_verified(source, prov, dir_fd, Path(path).name)
            total += prov.size
    return Fetched(len(wanted), total, int((time.monotonic() - t0) * 1000))


def _remove_others(dir_fd: int, keep: set[str]) -> None:
    """Remove what an earlier, interrupted apply left (never reused unverified)."""
    for name in os.listdir(dir_fd):
        if name not in keep:
            with contextlib.suppress(OSError):
                os.unlink(name, dir_fd=dir_fd)


def remove_planned(cfg: Config, plan: Plan, argv: Sequence[str]) -> None:
    """Remove the files :func:`fetch_planned` put in place (never fatal)."""
    if not _uses_dir(plan, argv) or plan.deb_dir != str(cfg.deb_dir):
        return

    with contextlib.suppress(AegisError, OSError), private_dir(cfg.deb_dir) as dir_fd:
        for _, path in planned_files(plan, argv):
            with contextlib.suppress(OSError):
                os.unlink(Path(path).name, dir_fd=dir_fd)
