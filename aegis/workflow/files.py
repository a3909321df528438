"""Store-directory and file helpers: host permissions and atomic writes.

On a host install (no ``AEGIS_HOME``) the store directory is created mode 2770,
group ``aegis``, and the process umask is 007 (docs/design.md "Who may do what").
Files are written to a temp file in the same directory (O_EXCL|O_NOFOLLOW, so a
planted symlink is never followed), fsync'd, then ``os.replace``'d, all relative to
a descriptor of the directory; a store subdirectory replaced by a link is refused.

Example:
    >>> write_atomic(cfg.plans_dir / "p-1.json", body)
"""

from __future__ import annotations

import contextlib
import os
import time
from pathlib import Path
from typing import BinaryIO

from aegis.errors import EnvironmentFailure


def prepare_dir(path: Path, *, host_install: bool) -> None:
    """Create a store directory; on a host install: mode 2770, group aegis, umask 007.

    Raises:
        EnvironmentFailure: the directory cannot be created (read-only path, permissions).
    """
    if host_install:
        os.umask(0o007)
    try:
        if not path.is_dir():
            path.mkdir(parents=True, exist_ok=True)
            if host_install:
                # Through a descriptor of what was just made: a member who swaps the new
                # directory for a link (e.g. to /etc) before the chmod gets ELOOP, not /etc
                # turned 2770 group aegis.
                fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
                try:
                    os.fchmod(fd, 0o2770)  # docs/design.md: store dir 2770 root:aegis
                    _chgrp_aegis(fd)
                finally:
                    os.close(fd)
    except OSError as e:
        raise EnvironmentFailure(
            f"cannot create the store directory {path}: {e.strerror or e}",
            hint="the state directory must be on a writable file system",
        ) from e


def _chgrp_aegis(fd: int) -> None:
    import grp

    try:
        gid = grp.getgrnam("aegis").gr_gid
    except KeyError:
        return  # no aegis group on this machine (development); mode still applies
    with contextlib.suppress(PermissionError):
        os.fchown(fd, -1, gid)


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
    import errno
    import stat

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
    except OSError as e:
        raise EnvironmentFailure(f"cannot write {path}: {e.strerror or e}") from e
    return path


def open_regular(path: Path, what: str, *, follow: bool = True) -> BinaryIO:
    """Open a regular file someone else may have planted, for reading.

    Store and cache files are writable by the whole ``aegis`` group, so the path may be
    a FIFO (``open`` would wait forever for a writer) or a link to ``/dev/zero``: open
    without blocking and refuse anything but a regular file. With ``follow`` (a user's
    own command), symlinks to regular files are followed, what was read is checked by
    its hash wherever it matters; aegisd passes ``follow=False``.

    Raises:
        InputError: unreadable, or not a regular file.
    """
    import stat

    from aegis.errors import InputError

    try:
        flags = os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK | os.O_NOCTTY
        fd = os.open(path, flags if follow else flags | os.O_NOFOLLOW)
    except OSError as e:
        raise InputError(f"cannot read {what} {path}: {e.strerror}") from e
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise InputError(f"{what} {path} is not a regular file")
    return os.fdopen(fd, "rb")


def read_capped(path: Path, max_bytes: int, what: str, *, follow: bool = True) -> bytes:
    """Read at most ``max_bytes`` + 1 bytes of a file through :func:`open_regular`.

    Raises:
        InputError: unreadable, or not a regular file.
    """
    from aegis.errors import InputError

    with open_regular(path, what, follow=follow) as f:
        try:
            return f.read(max_bytes + 1)
        except OSError as e:
            raise InputError(f"cannot read {what} {path}: {e.strerror}") from e
