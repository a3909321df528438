"""Store-directory and file helpers: host permissions and atomic writes.

On a host install (no ``AEGIS_HOME``) the store's directories are created mode 2770,
group ``aegis`` (the top level, made at install time, is 3770: sticky), and the process
umask is 007 (docs/design.md "Who may do what"); the store file and its ``-wal``/``-shm``
are 0660 group ``aegis`` (:func:`prepare_store_file`).
Files are written to a temp file in the same directory (O_EXCL|O_NOFOLLOW, so a
planted symlink is never followed), fsync'd, then ``os.replace``'d, all relative to
a descriptor of the directory; a store subdirectory replaced by a link is refused.

Example:
    >>> write_atomic(cfg.plans_dir / "p-1.json", body)
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
import time
from pathlib import Path

from aegis.config import group_gid, in_group, join_group_hint
from aegis.errors import EnvironmentFailure

STORE_DIR_MODE = 0o2770
STATE_DIR_MODE = 0o3770
"""The store's top level (made at install time): setgid and sticky, so a member may not
rename or delete another user's entry there, such as aegisd's own directory."""
STORE_FILE_MODE = 0o660
STORE_SIDE_SUFFIXES = ("-wal", "-shm")
"""SQLite's side files of the store; they must be as writable by the group as the store."""


def prepare_dir(path: Path, *, host_install: bool) -> None:
    """Create a store directory; on a host install: mode 2770, group aegis, umask 007.

    A directory that already has its mode and group is never chmod'ed: the monitor's
    unit has ``RestrictSUIDSGID=yes``, under which setting the setgid bit fails (EPERM)
    even when it is already set.

    Raises:
        EnvironmentFailure: the directory cannot be created (read-only path, permissions),
            or its mode cannot be made right.
    """
    if host_install:
        os.umask(0o007)
    try:
        if path.is_dir():
            return
        path.mkdir(parents=True, exist_ok=True)
    except PermissionError as e:
        raise _permission_failure(f"cannot create the store directory {path}", e) from e
    except OSError as e:
        raise EnvironmentFailure(
            f"cannot create the store directory {path}: {e.strerror or e}",
            hint="the state directory must be on a writable file system",
        ) from e
    if host_install:
        _settle_dir(path)


def _permission_failure(what: str, e: OSError) -> EnvironmentFailure:

    if not in_group(group_gid()):
        return EnvironmentFailure(f"{what}: {e.strerror or e}", hint=join_group_hint())
    return EnvironmentFailure(
        f"{what}: {e.strerror or e}",
        hint="the store must be mode 3770 (its subdirectories 2770), group aegis "
        "(aegis doctor names what is wrong)",
    )


def _settle_dir(path: Path) -> None:
    """Give a directory this process just made mode 2770 and group aegis, when not already.

    Raises:
        EnvironmentFailure: the mode or group is wrong and cannot be set.
    """
    gid = group_gid()
    try:
        # Through a descriptor of what was just made: a member who swaps the new
        # directory for a link (e.g. to /etc) before the chmod gets ELOOP, not /etc
        # turned 2770 group aegis.
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError as e:
        raise EnvironmentFailure(f"cannot open the new directory {path}: {e.strerror}") from e
    try:
        st = os.fstat(fd)
        if gid is not None and st.st_gid != gid:
            os.fchown(fd, -1, gid)
        # mkdir inside a setgid directory already gives 2770 under umask 007.
        if stat.S_IMODE(os.fstat(fd).st_mode) != STORE_DIR_MODE:
            os.fchmod(fd, STORE_DIR_MODE)  # docs/design.md: store dir 2770 root:aegis
    except OSError as e:
        raise EnvironmentFailure(
            f"cannot give {path} mode {STORE_DIR_MODE:04o} group "
            f"{gid if gid is not None else 'aegis'}: {e.strerror or e}",
            hint="create the store's directories at install time (systemd-tmpfiles "
            "--create /etc/tmpfiles.d/aegis.conf), mode 2770 root:aegis",
        ) from e
    finally:
        os.close(fd)


def prepare_store_file(path: Path, *, host_install: bool) -> None:
    """Make the SQLite store and its side files 0660 group aegis before SQLite opens them.

    Whoever opens the store first (root, the aegis-monitor user with its own umask, an
    agent) creates it here with O_CREAT|O_EXCL|O_NOFOLLOW through a descriptor, then
    sets the mode exactly (the umask cannot narrow it) and the group (root also takes
    ownership: the documented owner is root). SQLite creates ``-wal`` and ``-shm`` with
    the database file's mode, and as root with its owner and group too; a non-root
    creator's side files take the setgid store directory's group. Side files left with
    another mode by an older version are repaired when this process may (root or owner);
    anything it may not change is left for ``aegis doctor`` to name.

    Raises:
        EnvironmentFailure: the store name is not a regular file, or cannot be created.
    """
    if not host_install:
        return

    gid = group_gid()
    try:
        dfd = _open_parent(path)
    except PermissionError as e:
        raise _permission_failure(f"cannot open the store directory {path.parent}", e) from e
    except OSError as e:
        raise EnvironmentFailure(f"cannot open the store directory {path.parent}: {e}") from e
    try:
        _settle_file(dfd, path, gid, create=True)
        for suffix in STORE_SIDE_SUFFIXES:
            _settle_file(dfd, path.with_name(path.name + suffix), gid, create=False)
    finally:
        os.close(dfd)


def _open_store_name(dfd: int, path: Path, *, create: bool) -> tuple[int, bool] | None:
    """(descriptor, created) for the store or a side file; None when there is nothing."""
    flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK | os.O_NOCTTY
    try:
        if create:
            try:
                mode = STORE_FILE_MODE
                return os.open(path.name, flags | os.O_CREAT | os.O_EXCL, mode, dir_fd=dfd), True
            except FileExistsError:
                pass
        return os.open(path.name, flags, dir_fd=dfd), False
    except FileNotFoundError:
        return None  # a side file SQLite has not made (or has removed)
    except PermissionError as e:
        if create:
            raise _permission_failure(f"cannot open the state store {path}", e) from e
        return None
    except OSError as e:
        raise EnvironmentFailure(f"cannot open the state store {path}: {e.strerror or e}") from e


def _settle_file(dfd: int, path: Path, gid: int | None, *, create: bool) -> None:
    opened = _open_store_name(dfd, path, create=create)
    if opened is None:
        return
    fd, created = opened
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise EnvironmentFailure(
                f"the state store {path} is not a regular file",
                hint="move it aside; aegis creates the store itself",
            )
        root = os.geteuid() == 0
        if not (root or st.st_uid == os.geteuid()):
            return  # someone else's file: only aegis doctor can say what is wrong
        want_uid = 0 if root and st.st_uid != 0 else -1
        want_gid = gid if gid is not None and st.st_gid != gid else -1
        try:
            if want_uid != -1 or want_gid != -1:
                os.fchown(fd, want_uid, want_gid)
            if stat.S_IMODE(st.st_mode) != STORE_FILE_MODE:
                os.fchmod(fd, STORE_FILE_MODE)
        except OSError as e:
            if created:
                raise EnvironmentFailure(
                    f"cannot give the new state store {path} mode 0660 group aegis: {e}"
                ) from e
            # An existing file this process cannot fix: aegis doctor names it.
    finally:
        os.close(fd)


def _open_parent(path: Path) -> int:
    """A descriptor of ``path``'s directory, refusing a link someone else could have planted.

    Store subdirectories (plans/, results/, ...) sit in the group-writable store: a member
    can replace one with a link to any directory, and root writing "into the store" would
    then create files there. A link in a directory only root can write (an operator
    relocating the store) is followed. Writing relative to the descriptor keeps a swap
    after this check from redirecting the write.

    Raises:
        OSError: the directory cannot be opened, or it is such a link (ELOOP).
    """
    parent = path.parent
    fd = os.open(parent, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        st = os.lstat(parent)
        if stat.S_ISLNK(st.st_mode):
            holder = os.stat(parent.parent).st_mode
            shared = holder & (stat.S_IWGRP | stat.S_IWOTH) and not holder & stat.S_ISVTX
            if shared:
                raise OSError(errno.ELOOP, "a symbolic link in a group-writable directory")
        elif (st.st_dev, st.st_ino) != (os.fstat(fd).st_dev, os.fstat(fd).st_ino):
            raise OSError(errno.ELOOP, "the directory was replaced while opening it")
    except BaseException:
        os.close(fd)
        raise
    return fd


def write_atomic(
    path: Path, data: bytes, *, host_install: bool = False, mode: int | None = None
) -> Path:
    """Write ``data`` to ``path`` via a temp file in the same directory and ``os.replace``.

    The temp file is created with O_EXCL|O_NOFOLLOW, so a planted symlink is never followed.
    Without ``mode`` the file is 0660 on a host install (group aegis shares the store),
    else 0644, both under the umask; an explicit ``mode`` is set exactly.

    Raises:
        EnvironmentFailure: the file cannot be written.
    """
    prepare_dir(path.parent, host_install=host_install)
    tmp = f".{path.name}.{os.getpid()}.{time.monotonic_ns()}.tmp"
    try:
        dfd = _open_parent(path)
        try:
            fd = os.open(
                tmp,
                os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW,
                0o660 if host_install else 0o644,
                dir_fd=dfd,
            )
            try:
                with os.fdopen(fd, "wb") as fh:
                    if mode is not None:
                        os.fchmod(fh.fileno(), mode)
                    fh.write(data)
                    fh.flush()
                    os.fsync(fh.fileno())
            except BaseException:
                with contextlib.suppress(OSError):
                    os.unlink(tmp, dir_fd=dfd)
                raise
            os.replace(tmp, path.name, src_dir_fd=dfd, dst_dir_fd=dfd)
        finally:
            os.close(dfd)
    except PermissionError as e:
        raise _permission_failure(f"cannot write {path}", e) from e
    except OSError as e:
        raise EnvironmentFailure(f"cannot write {path}: {e.strerror or e}") from e
    return path
