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

from collections.abc import Sequence
from pathlib import Path

from aegis.config import Config
from aegis.ecosystems.apt.names import Target
from aegis.ecosystems.apt.run import RunResult, run_tool
from aegis.model import Operation
from aegis.planning_env import apt_cache_opts, private_cache_dir

__all__ = [
    "APT_CACHE",
    "APT_CONFIG_BIN",
    "APT_GET",
    "AptRunner",
    "download_set_args",
    "private_cache_dir",
    "simulation_args",
]

APT_GET = "/usr/bin/apt-get"
APT_CACHE = "/usr/bin/apt-cache"
APT_CONFIG_BIN = "/usr/bin/apt-config"


class AptRunner:
    """Runs apt tools with the planning environment and the persistent cache."""

    def __init__(self, cfg: Config) -> None:
        self.cfg = cfg
        self.timeout = float(cfg.apt_timeout_s)
        self.cache_opts: tuple[str, ...] = apt_cache_opts(cfg)

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
