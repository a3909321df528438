"""aegisd's own directory: created or checked at startup, and re-checked before each use.

``<state>/aegisd`` (ledger, audit key, witness copy, rollback cache, run output) sits
inside the store directory, which is group ``aegis`` writable. It is sticky (3770) on
an install made by packaging/tmpfiles.d-aegis.conf, so members cannot rename or delete
root's entries; without the sticky bit (an older install, a hand-made layout) any
member of ``aegis`` may. So on such a layout a member could put a
symlink or a directory of their own where aegisd's directory should be, before the
first start or while aegisd runs, and aegisd would then keep its ledger (a fresh
one: every used or revoked execution id forgotten) and its audit secret key where
that user can read and write them. docs/design.md "Who may do what": root never
writes into a group-writable directory through a path it did not create.

:func:`claim_own_dir` refuses a path that is a symlink, not a directory, owned by
another user, or writable by group or others, and remembers the directory's
identity (device and inode); :func:`check_own_dir` refuses once the name points
anywhere else. aegisd re-checks before every request that touches its directory
and again just before it records ``started``. A member may also just move the
directory aside so that aegisd, on its next start, creates a fresh one with an
empty ledger: :func:`claim_own_dir_once` refuses to create it when the audit log
(in a directory the group cannot write) shows aegisd has run before.

Example:
    >>> ident = claim_own_dir(cfg.aegisd_dir)
    >>> check_own_dir(cfg.aegisd_dir, ident)  # raises TrustError after a swap
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from aegis.errors import TrustError

if TYPE_CHECKING:
    from aegis.config import Config

REFUSED_OWN_DIR = "refused:environment"
"""The refusal code of a request refused because aegisd's directory is not its own."""


@dataclass(frozen=True)
class DirIdentity:
    """Which directory aegisd claimed: (device, inode)."""

    dev: int
    ino: int


def _checked(path: Path) -> os.stat_result:
    """``lstat`` of ``path``, refusing anything but a private directory of this user."""
    try:
        st = os.lstat(path)
    except OSError as e:
        raise TrustError(f"aegisd's directory {path} cannot be checked: {e.strerror}") from e
    if stat.S_ISLNK(st.st_mode):
        problem = "is a symbolic link"
    elif not stat.S_ISDIR(st.st_mode):
        problem = "is not a directory"
    elif st.st_uid != os.geteuid():
        problem = f"belongs to uid {st.st_uid}, not to aegisd (uid {os.geteuid()})"
    elif st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        problem = f"is writable by group or others (mode {stat.S_IMODE(st.st_mode):o})"
    else:
        return st
    raise TrustError(
        f"aegisd's directory {path} {problem}; aegisd refuses to keep its ledger and keys there",
        hint=f"move it aside and let aegisd create {path} itself (mode 0700, owner root)",
    )


def check_private_dir(path: Path) -> None:
    """Refuse unless ``path`` is a directory of this user that no group or other may write.

    Raises:
        TrustError: a symlink, not a directory, someone else's, or group/other-writable.
    """
    _checked(path)


def claim_own_dir(path: Path) -> DirIdentity:
    """Create ``path`` (0700) unless it exists, check it, and return its identity.

    Raises:
        TrustError: the path is a symlink, not a directory, someone else's, or writable
            by group or others.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.mkdir(path, 0o700)
    except FileExistsError:
        pass  # checked below, without following a link
    except OSError as e:
        raise TrustError(f"cannot create aegisd's directory {path}: {e.strerror}") from e
    st = _checked(path)
    return DirIdentity(st.st_dev, st.st_ino)


def check_own_dir(path: Path, claimed: DirIdentity) -> None:
    """Refuse unless ``path`` is still the directory claimed at startup.

    Raises:
        TrustError: the name now points to another directory, a symlink or nothing.
    """
    st = _checked(path)
    if (st.st_dev, st.st_ino) != (claimed.dev, claimed.ino):
        raise TrustError(
            f"aegisd's directory {path} was replaced since aegisd started "
            "(the ledger and keys there are not aegisd's own)",
            hint="restore the original directory, or restart aegisd once the path is checked",
        )


def claim_own_dir_once(cfg: Config) -> DirIdentity:
    """:func:`claim_own_dir` for aegisd's directory, refusing to re-create a vanished one.

    Raises:
        TrustError: the directory is not aegisd's own, or it is missing although the
            audit log shows aegisd ran before (its ledger of used ids would be lost).
    """
    path = cfg.aegisd_dir
    if not os.path.lexists(path):
        try:
            logged = cfg.audit_path.stat().st_size
        except FileNotFoundError:
            logged = 0
        if logged:
            raise TrustError(
                f"aegisd's directory {path} is missing but the audit log {cfg.audit_path} "
                "shows aegisd ran before: starting afresh would forget every used and "
                "revoked execution id",
                hint=f"restore {path} (ledger.db, audit.key) from where it was moved",
            )
    return claim_own_dir(path)
