"""Length-framed canonical JSON over a Unix stream socket: aegisd's and aegis-reviewd's wire.

One frame is a 4-byte big-endian length and that many bytes of canonical JSON. Both sides
cap the frame size and read against a deadline, so a slow or silent peer costs one thread
a bounded time and never blocks the others. Each daemon's module names its own caps, its
request and answer documents and the error its callers see (``error``, an
:class:`~aegis.errors.InputError`).
"""

from __future__ import annotations

import socket
import struct
import time
from typing import Any

from aegis.canonical import canonical_bytes, loads_strict
from aegis.errors import InputError

HEADER = struct.Struct(">I")


def encode_frame(value: Any, *, max_bytes: int, error: type[InputError] = InputError) -> bytes:
    """Return the frame (length prefix + canonical JSON) of ``value``.

    Raises:
        InputError: (``error``) the encoded document is larger than ``max_bytes``.
    """
    body = canonical_bytes(value)
    if len(body) > max_bytes:
        raise error(f"frame of {len(body)} bytes exceeds the {max_bytes}-byte cap")
    return HEADER.pack(len(body)) + body


def _recv_exact(sock: socket.socket, n: int, deadline: float, error: type[InputError]) -> bytes:
    chunks: list[bytes] = []
    remaining = n
    while remaining:
        left = deadline - time.monotonic()
        if left <= 0:
            raise error("peer too slow: frame not received before the read deadline")
        sock.settimeout(left)
        try:
            chunk = sock.recv(min(remaining, 65536))
        except TimeoutError as e:
            raise error("peer too slow: frame not received before the read deadline") from e
        if not chunk:
            raise error(f"connection closed with {remaining} bytes of the frame missing")
        chunks.append(chunk)
        remaining -= len(chunk)
    return b"".join(chunks)


def read_frame(
    sock: socket.socket, *, deadline: float, max_bytes: int, error: type[InputError] = InputError
) -> Any:
    """Read one frame by ``deadline`` (``time.monotonic()``) and parse it strictly.

    The length is checked before the body is read; duplicate keys and floats are refused.

    Raises:
        InputError: (``error``) oversized, truncated, late, or malformed frame.
    """
    (length,) = HEADER.unpack(_recv_exact(sock, HEADER.size, deadline, error))
    if length > max_bytes:
        raise error(f"frame of {length} bytes exceeds the {max_bytes}-byte cap")
    body = _recv_exact(sock, length, deadline, error)
    try:
        return loads_strict(body, max_bytes=max_bytes)
    except InputError as e:
        raise error(f"malformed frame: {e.message}") from e
