"""aegis-reviewd's wire format: length-framed canonical JSON over a Unix socket.

One frame is a 4-byte big-endian length and that many bytes of canonical JSON.
A client sends one request frame and reads one answer frame. Both sides cap the
frame size and read against a deadline, so a slow or silent peer costs one thread
a bounded time and never blocks the others.

Requests: ``{"schema_version": "aegis.reviewd.request/1", "op": "review", "plan": {...}}``
or ``{"schema_version": ..., "op": "ping"}``. Answers carry ``ok``; a review answer
carries ``review`` (the signed record), a refusal carries ``error``.

Example:
    >>> answer = call(Path("/run/aegis/aegis-reviewd.sock"), {"op": "ping", ...}, timeout=5)
    >>> answer["ok"]
    True
"""

from __future__ import annotations

import socket
import struct
import time
from pathlib import Path
from typing import Any

from aegis.canonical import canonical_bytes, loads_strict
from aegis.errors import EnvironmentFailure, InputError

REQUEST_SCHEMA = "aegis.reviewd.request/1"
MAX_REQUEST_BYTES = 16 * 1024 * 1024
"""A plan of a few thousand packages fits; larger requests are refused unread."""
MAX_ANSWER_BYTES = 1024 * 1024
_HEADER = struct.Struct(">I")


def encode_frame(value: Any, *, max_bytes: int) -> bytes:
    """The frame of ``value``.

    Raises:
        InputError: the encoded value is larger than ``max_bytes``.
    """
    body = canonical_bytes(value)
    if len(body) > max_bytes:
        raise InputError(f"message is {len(body)} bytes, more than the {max_bytes} allowed")
    return _HEADER.pack(len(body)) + body


def _recv_exact(sock: socket.socket, n: int, deadline: float) -> bytes:
    buf = bytearray()
    while len(buf) < n:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise InputError("peer too slow: message not complete before the read deadline")
        sock.settimeout(remaining)
        try:
            chunk = sock.recv(min(n - len(buf), 65536))
        except TimeoutError as e:
            raise InputError("peer too slow: message not complete before the read deadline") from e
        if not chunk:
            raise InputError("peer closed the connection mid-message")
        buf += chunk
    return bytes(buf)


def read_frame(sock: socket.socket, *, deadline: float, max_bytes: int) -> Any:
    """Read one frame and parse it strictly.

    Raises:
        InputError: too large (refused before reading the body), late, truncated, not
            strict JSON.
    """
    (size,) = _HEADER.unpack(_recv_exact(sock, _HEADER.size, deadline))
    if size > max_bytes:
        raise InputError(f"message of {size} bytes refused (limit {max_bytes})")
    return loads_strict(_recv_exact(sock, size, deadline), max_bytes=max_bytes)


def call(path: Path, request: dict[str, Any], *, timeout: float) -> dict[str, Any]:
    """Send one request to aegis-reviewd and return its answer.

    Raises:
        EnvironmentFailure: the daemon is not reachable, or did not answer in time.
        InputError: the answer is malformed.
    """
    frame = encode_frame(request, max_bytes=MAX_REQUEST_BYTES)
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        try:
            sock.connect(str(path))
            sock.sendall(frame)
        except OSError as e:
            raise EnvironmentFailure(
                f"aegis-reviewd is not reachable at {path}: {e.strerror or e}",
                hint="start aegis-reviewd, use --direct for development, or --no-review",
            ) from e
        try:
            answer = read_frame(
                sock, deadline=time.monotonic() + timeout, max_bytes=MAX_ANSWER_BYTES
            )
        except InputError as e:
            raise EnvironmentFailure(f"aegis-reviewd did not answer properly: {e.message}") from e
    if not isinstance(answer, dict) or not isinstance(answer.get("ok"), bool):
        raise InputError("aegis-reviewd's answer is not an answer object")
    return answer
