"""The unattended pass's first apt calls, started before the analyzer is imported.

``aegis unattended run`` is a fresh process each pass: importing the analyzer, the
store and policy takes longer than apt's own simulation. So the console entry point
(:mod:`aegis.cli.aegis`) starts ``apt-config dump`` and ``apt-get -s upgrade`` first,
with exactly the argv and environment the analyzer will use
(:mod:`aegis.planning_env`), and the analysis takes them over when it gets there
(:mod:`aegis.early.slot`). Both change nothing; whatever the analysis does not take is
killed when the pass ends. This imports only the configuration, not the apt package.

Example::

    start_apt()   # then run the pass as usual
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from aegis.config import load_config
from aegis.early import process
from aegis.planning_env import apt_cache_opts, child_env

if TYPE_CHECKING:
    from aegis.config import Config

APT_CONFIG_BIN = "/usr/bin/apt-config"
"""Kept equal to :data:`aegis.ecosystems.apt.apt_runner.APT_CONFIG_BIN` (a test checks)."""
APT_GET = "/usr/bin/apt-get"


def first_apt_calls(cfg: Config) -> list[tuple[list[str], dict[str, str]]]:
    """(argv, environment) of the ``apt upgrade`` analysis's first two apt calls."""
    env = child_env(cfg.apt_config)
    return [
        ([APT_CONFIG_BIN, "dump"], env),
        ([APT_GET, *apt_cache_opts(cfg), "-s", "upgrade"], env),
    ]


def start_apt() -> None:
    """Start the analysis's first two apt calls (nothing when the configuration is unusable)."""
    cfg = load_config()
    if cfg.apt_config is not None and not cfg.apt_config.is_file():
        return  # the analysis refuses such a configuration before running apt
    for argv, env in first_apt_calls(cfg):
        process.start(argv, env)
