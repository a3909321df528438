"""Reading a file someone else may have planted: regular files only, never blocking, capped.

Below every stage: store and cache files are writable by the whole ``aegis`` group, key and
policy files by root, plans by their author, so every reader opens the same way.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import BinaryIO

from aegis.errors import InputError


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
    with open_regular(path, what, follow=follow) as f:
        try:
            return read_upto(f, max_bytes + 1)
        except OSError as e:
            raise InputError(f"cannot read {what} {path}: {e.strerror}") from e


def read_upto(f: BinaryIO, limit: int) -> bytes:
    """At most ``limit`` bytes of an open regular file, read in the size it says it has.

    ``f.read(limit)`` allocates ``limit`` bytes before reading (tens of microseconds for a
    cap of megabytes, on files of a few hundred bytes); a file that grew since its stat is
    still read on, up to ``limit``.
    """
    size = os.fstat(f.fileno()).st_size
    data = f.read(min(size + 1, limit))
    if size < len(data) < limit:
        data += f.read(limit - len(data))
    return data


def read_fd_upto(fd: int, limit: int) -> bytes:
    """At most ``limit`` bytes of an open regular file descriptor (as :func:`read_upto`).

    Plain ``os.read`` calls: no buffered file object for a read of a few hundred bytes.
    """
    want = min(os.fstat(fd).st_size + 1, limit)
    parts: list[bytes] = []
    got = 0
    while got < limit:
        chunk = os.read(fd, want - got if got < want else min(1 << 20, limit - got))
        if not chunk:
            break
        parts.append(chunk)
        got += len(chunk)
    return b"".join(parts)
