"""How the analyzer calls apt: the tool paths, the cache options and the simulation argv.

Split out of :mod:`aegis.ecosystems.apt.plan` so that the orchestration there and the
package delta in :mod:`aegis.ecosystems.apt.delta` share one runner. Every call goes
through :func:`aegis.ecosystems.apt.run.run_tool` with Aegis's APT_CONFIG (never the
host's by accident) and the analysis timeout; nothing here changes package state
(apt runs only with ``-s``, ``show``, ``policy``, ``--print-uris`` or ``dump``).

Example::

    apt = AptRunner(cfg)
    res = apt.run(APT_GET, *simulation_args(Operation.INSTALL, targets))
"""

from __future__ import annotations

import contextlib
import os
import stat
from collections.abc import Sequence
from pathlib import Path

from aegis.config import Config
from aegis.ecosystems.apt.names import Target
from aegis.ecosystems.apt.run import RunResult, run_tool
from aegis.model import Operation

APT_GET = "/usr/bin/apt-get"
APT_CACHE = "/usr/bin/apt-cache"
APT_CONFIG_BIN = "/usr/bin/apt-config"


def private_cache_dir(cfg: Config) -> Path | None:
    """This uid's own apt cache directory under ``<cache_dir>/apt``, or None.

    The cache directory is shared with group ``aegis``; apt trusts its binary package
    cache, so a member must not be able to plant one that root's planning (aegisd's
    re-derivation) would read. Each uid gets ``uid-<n>``, mode 0700, used only while it
    is a real directory owned by that uid with no group or other access; anything else
    (a link, a member's directory, a loosened mode) means planning runs without it.
    """
    uid = os.geteuid()
    cache = cfg.cache_dir / "apt" / f"uid-{uid}"
    try:
        cache.parent.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(FileExistsError):
            cache.mkdir(mode=0o700)
        st = os.lstat(cache)
    except OSError:
        return None
    if not stat.S_ISDIR(st.st_mode) or st.st_uid != uid or st.st_mode & 0o077:
        return None
    return cache


class AptRunner:
    """Runs apt tools with the planning environment and the persistent cache."""

    def __init__(self, cfg: Config) -> None:
        self.cfg = cfg
        self.timeout = float(cfg.apt_timeout_s)
        self.cache_opts: tuple[str, ...] = ()
        if cfg.apt_config is None:
            # The host's own configuration may switch the package cache off (docs/testing.md
            # "Facts about apt and Debian"); keep Aegis's own persistent copy, one per uid.
            cache = private_cache_dir(cfg)
            if cache is not None:
                self.cache_opts = (
                    "-o",
                    f"Dir::Cache::pkgcache={cache}/pkgcache.bin",
                    "-o",
                    f"Dir::Cache::srcpkgcache={cache}/srcpkgcache.bin",
                )

    def run(self, tool: str, *args: str, cache: bool = True) -> RunResult:
        """Run ``tool`` with ``args`` (plus the cache options unless ``cache`` is False)."""
        extra = self.cache_opts if cache else ()
        return run_tool(
            [tool, *extra, *args], apt_config=self.cfg.apt_config, timeout_s=self.timeout
        )


def simulation_args(
    op: Operation, targets: Sequence[Target], local: dict[str, str] | None = None
) -> list[str]:
    """apt-get arguments that simulate ``op`` on ``targets``.

    Args:
        op: the intent's operation.
        targets: parsed targets.
        local: target as given -> path of a kept .deb to hand to apt instead (rollback).
    """
    # A rollback target taken from the snapshot is handed to apt as its .deb's path.
    operands = [(local or {}).get(t.raw) or t.apt_operand for t in targets]
    if op is Operation.UPGRADE:
        return ["-s", "upgrade"]
    if op is Operation.FULL_UPGRADE:
        # Without -qq: apt lists what it keeps back (a dpkg hold) as it does for upgrade.
        return ["-s", "full-upgrade"]
    if op in (Operation.REMOVE, Operation.PURGE):
        # -qq would imply -y, and apt then refuses to simulate removing an Essential
        # package; -q shows the removal so the plan (and policy) can see it.
        return ["-s", "-q", op.value, "--", *operands]
    return ["-s", "-qq", "--allow-downgrades", "install", "--", *operands]


def download_set_args(
    op: Operation,
    targets: Sequence[Target],
    local: dict[str, str] | None,
    archives: Path,
) -> list[str] | None:
    """apt-get arguments that print the files apt's own resolution of ``op`` would fetch.

    The same resolution as :func:`simulation_args`, with ``--print-uris`` instead of
    ``-s``: one ``'URI' FILE SIZE HASH`` line per package apt would download, so the
    plan names the build apt's policy picked (two builds of one version differ in URI,
    size and hash, while ``pkg=version`` only names the version). ``archives`` must be an
    empty directory: apt leaves out what its archive cache already holds. None for
    operations that fetch nothing.
    """
    if op in (Operation.REMOVE, Operation.PURGE, Operation.UPDATE, Operation.RECOVER):
        return None
    sim = simulation_args(op, targets, local)
    rest = [a for a in sim if a not in ("-s", "-q", "-qq")]
    return ["-qq", "--print-uris", "-o", f"Dir::Cache::Archives={archives}/", *rest]
