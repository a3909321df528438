"""The environment and apt cache options of every planning child.

Kept out of :mod:`aegis.ecosystems.apt` (whose package imports the model and the
ecosystem registry) so that a one-shot pass can start its first apt calls before it
imports the analyzer (:mod:`aegis.unattended.early`) with exactly the argv and
environment the analyzer uses. :mod:`aegis.ecosystems.apt.run` and
:mod:`aegis.ecosystems.apt.apt_runner` re-export these names.

Example:
    >>> child_env("/tmp/apt.conf")["APT_CONFIG"]
    '/tmp/apt.conf'
"""

from __future__ import annotations

import contextlib
import os
import stat
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from aegis.config import Config

SAFE_PATH = "/usr/sbin:/usr/bin:/sbin:/bin"


def child_env(
    apt_config: Path | str | None, extra: Mapping[str, str] | None = None
) -> dict[str, str]:
    """The explicit environment of every planning child."""
    env = {"PATH": SAFE_PATH, "LANG": "C", "LC_ALL": "C", "DEBIAN_FRONTEND": "noninteractive"}
    if apt_config is not None:
        env["APT_CONFIG"] = str(apt_config)
    if extra:
        env.update(extra)
    return env


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


def apt_cache_opts(cfg: Config) -> tuple[str, ...]:
    """The ``-o`` options naming Aegis's own package cache (none under a private APT_CONFIG).

    The host's own configuration may switch the package cache off (docs/testing.md
    "Facts about apt and Debian"); keep Aegis's own persistent copy, one per uid.
    """
    if cfg.apt_config is not None:
        return ()
    cache = private_cache_dir(cfg)
    if cache is None:
        return ()
    return (
        "-o",
        f"Dir::Cache::pkgcache={cache}/pkgcache.bin",
        "-o",
        f"Dir::Cache::srcpkgcache={cache}/srcpkgcache.bin",
    )
