"""The unattended pass's first apt calls, started before the analyzer is imported.

``aegis unattended run`` is a fresh process each pass: importing the analyzer, the
store and policy takes longer than apt's own simulation. So the console entry point
(:mod:`aegis.cli.aegis`) starts ``apt-config dump``, ``apt-get -s upgrade`` and apt's
download set (``apt-get --print-uris upgrade``, in an empty archive directory made for it,
:mod:`aegis.early.scratch`) first, with exactly the argv and environment the analyzer will
use (:mod:`aegis.planning_env`), and the analysis takes them over when it gets there
(:mod:`aegis.early.slot`). None changes anything; whatever the analysis does not take is
killed (and the directory removed) when the pass ends. This imports only the
configuration, not the apt package.

Example::

    start_apt()   # then run the pass as usual
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from aegis.config import load_config
from aegis.early import process, scratch
from aegis.planning_env import apt_cache_opts, child_env

if TYPE_CHECKING:
    from aegis.config import Config

APT_CONFIG_BIN = "/usr/bin/apt-config"
"""Kept equal to :data:`aegis.ecosystems.apt.apt_runner.APT_CONFIG_BIN` (a test checks)."""
APT_GET = "/usr/bin/apt-get"


def first_apt_calls(cfg: Config) -> list[tuple[list[str], dict[str, str]]]:
    """(argv, environment) of the ``apt upgrade`` analysis's first two apt calls.

    The third, apt's download set, needs its directory: :func:`download_set_call`.
    """
    env = child_env(cfg.apt_config)
    return [
        ([APT_CONFIG_BIN, "dump"], env),
        ([APT_GET, *apt_cache_opts(cfg), "-s", "upgrade"], env),
    ]


def download_set_call(cfg: Config, archives: str) -> tuple[list[str], dict[str, str]]:
    """(argv, environment) of the analysis's ``--print-uris`` call, in ``archives``.

    :func:`aegis.ecosystems.apt.apt_runner.download_set_args` for ``apt upgrade`` (a test
    checks), spelled out here: that module imports the plan model.
    """
    argv = [APT_GET, *apt_cache_opts(cfg), "-qq", "--print-uris"]
    return [*argv, "-o", f"Dir::Cache::Archives={archives}/", "upgrade"], child_env(cfg.apt_config)


def start_apt() -> None:
    """Start the analysis's first apt calls (nothing when the configuration is unusable).

    ``apt-config dump`` and the simulation, then apt's download set, whose empty archive
    directory the analysis takes over with it (:mod:`aegis.early.scratch`).
    """
    cfg = load_config()
    if cfg.apt_config is not None and not cfg.apt_config.is_file():
        return  # the analysis refuses such a configuration before running apt
    for argv, env in first_apt_calls(cfg):
        process.start(argv, env)
    archives = scratch.make(scratch.ARCHIVES_PREFIX)
    if archives is not None:
        process.start(*download_set_call(cfg, archives))
        scratch.keep(scratch.ARCHIVES, archives)
