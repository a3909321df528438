"""Aegis-managed places (npm's global prefix, pip's managed venvs): root's alone, or refused.

They sit in the store directory (``/var/lib/aegis``), which members of group aegis may write:
an agent must not be able to create ``managed/`` or a prefix first, or swap one for a link,
and so choose what root installs and what people then run.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from aegis.errors import EnvironmentFailure


def safe_dir(path: Path, mode: int, *, levels: int = 1) -> None:
    """Create ``path`` and its ``levels - 1`` parents (``mode``), or refuse them.

    Refused: a link or not a directory, or, for root, a directory not root's or writable by
    group or others.

    Raises:
        EnvironmentFailure: why the directory cannot be used.
    """
    chain = [path, *path.parents][:levels]
    chain[-1].parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    for p in reversed(chain):
        try:
            p.mkdir(mode=mode)
            os.chmod(p, mode)  # not the daemon's umask: people must reach what lands here
        except FileExistsError:
            pass
    check_dir(path, levels=levels)


def check_dir(path: Path, *, levels: int = 1) -> None:
    """Refuse ``path`` or one of its ``levels - 1`` parents as :func:`safe_dir` does.

    Raises:
        EnvironmentFailure: a link, not a directory, or (for root) not root's alone.
    """
    for p in [path, *path.parents][:levels]:
        try:
            st = os.lstat(p)
        except OSError as e:
            raise EnvironmentFailure(f"{p}: {e.strerror}") from e
        if stat.S_ISLNK(st.st_mode) or not stat.S_ISDIR(st.st_mode):
            raise EnvironmentFailure(f"{p} is not a plain directory: refusing to use it")
        if os.geteuid() == 0 and (st.st_uid != 0 or st.st_mode & 0o022):
            raise EnvironmentFailure(f"{p} is not root's alone: refusing to use it")
