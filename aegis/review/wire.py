"""aegis-reviewd's wire format: length-framed canonical JSON over a Unix socket.

The frames are :mod:`aegis.framing`'s, as aegisd's: a client sends one request frame
and reads one answer frame, each capped and read against a deadline.

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
import time
from pathlib import Path
from typing import Any

from aegis import framing
from aegis.errors import EnvironmentFailure, InputError

REQUEST_SCHEMA = "aegis.reviewd.request/1"
MAX_REQUEST_BYTES = 16 * 1024 * 1024
"""A plan of a few thousand packages fits; larger requests are refused unread."""
MAX_ANSWER_BYTES = 1024 * 1024


def encode_frame(value: Any, *, max_bytes: int) -> bytes:
    """The frame of ``value`` (:func:`aegis.framing.encode_frame`).

    Raises:
        InputError: the encoded value is larger than ``max_bytes``.
    """
    return framing.encode_frame(value, max_bytes=max_bytes)


def read_frame(sock: socket.socket, *, deadline: float, max_bytes: int) -> Any:
    """Read one frame and parse it strictly (:func:`aegis.framing.read_frame`).

    Raises:
        InputError: too large (refused before reading the body), late, truncated, not
            strict JSON.
    """
    return framing.read_frame(sock, deadline=deadline, max_bytes=max_bytes)


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
