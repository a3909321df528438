"""A listening Unix socket that appears at its path only once it accepts connections.

Below every stage: aegisd and aegis-reviewd both listen this way when systemd did not
hand them a socket.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import socket
import stat
from pathlib import Path

from aegis.errors import EnvironmentFailure, InputError


def listen_at(path: Path, mode: int, gid: int | None = None) -> socket.socket:
    """Listen on a Unix socket at ``path`` with ``mode`` (and group ``gid``, as root).

    Bound, owned and listening under a temporary name first, then renamed into place: a
    client that finds the path can connect, and never finds it with looser permissions.
    Bound at ``path`` directly, the socket exists before listen(), and a client that
    connected in between (``aegis review`` right after the daemon's start) was refused
    with ECONNREFUSED. The short random name keeps the temporary path no longer than most
    final ones (a Unix socket path has 107 bytes). A stale socket at ``path`` is replaced.

    Raises:
        InputError: something other than a socket is at ``path`` (a rename would replace it).
        EnvironmentFailure: the socket cannot be created (path too long, permissions).
    """
    try:
        st = path.lstat()
    except FileNotFoundError:
        pass
    else:
        if not stat.S_ISSOCK(st.st_mode):
            raise InputError(f"{path} exists and is not a socket; refusing to replace it")
    staging = path.with_name(f".{secrets.token_hex(3)}")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    old = os.umask(0o177)  # nobody but the owner until the mode below is set
    try:
        sock.bind(str(staging))
        if gid is not None and os.geteuid() == 0:
            os.chown(staging, 0, gid)
        os.chmod(staging, mode)
        sock.listen(64)
        os.rename(staging, path)
    except OSError as e:
        sock.close()
        with contextlib.suppress(OSError):
            staging.unlink()
        raise EnvironmentFailure(f"cannot listen on {path}: {e.strerror or e}") from e
    finally:
        os.umask(old)
    return sock
