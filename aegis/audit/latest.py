"""The host's latest signed checkpoint, read from the end of its audit log.

``aegis audit checkpoint --json`` prints it so a fleet can fetch it from every host
and compare it off the host: kept in an off-host witness file, a later checkpoint
must extend it (``aegis audit verify --witness FILE`` on the host's log reports
truncation or a rewritten head against it).

The log is read backwards from its end (the newest segment first), a chunk at a time:
aegisd checkpoints at every apply and every N events, so the newest checkpoint is
near the end and the command stays fast on a large log.

Example:
    >>> found = latest_checkpoint(Path("/var/log/aegis/audit.jsonl"))
    >>> found.doc["checkpoint"]["seq"], found.file, found.event_seq
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aegis.audit.chain import segment_paths
from aegis.audit.event import KIND_CHECKPOINT, LineError, decode_line
from aegis.errors import InputError

_CHUNK = 256 * 1024
_MAX_LINE = 4 * 1024 * 1024


@dataclass(frozen=True)
class FoundCheckpoint:
    """A checkpoint event found in the log."""

    doc: dict[str, Any]
    """The signed document, ``{"checkpoint": body, "signature": hex}``."""
    file: str
    event_seq: int
    """Sequence number of the ``checkpoint`` event that carries it."""


def _lines_backwards(path: Path) -> Iterator[bytes]:
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        end = os.fstat(fd).st_size
        rest = b""
        while end > 0:
            start = max(0, end - _CHUNK)
            rest = os.pread(fd, end - start, start) + rest
            end = start
            parts = rest.split(b"\n")
            rest = parts[0]  # may continue in the previous chunk
            yield from reversed([p for p in parts[1:] if p])
            if len(rest) > _MAX_LINE:
                raise InputError(f"{path} has a line longer than {_MAX_LINE} bytes")
        if rest:
            yield rest
    finally:
        os.close(fd)


def latest_checkpoint(path: Path) -> FoundCheckpoint | None:
    """The newest ``checkpoint`` event of the log at ``path`` (and its segments), or None.

    Lines that are not events (a torn tail, damage) are skipped: the checkpoint is
    signed, and its signature is what a reader checks.

    Raises:
        InputError: a segment cannot be read.
    """
    for file in [path, *reversed(segment_paths(path))]:
        try:
            lines = list(_lines_backwards_until_checkpoint(file))
        except FileNotFoundError:
            continue
        except OSError as e:
            raise InputError(f"cannot read audit log {file}: {e.strerror or e}") from e
        if lines:
            body = lines[0]
            return FoundCheckpoint(body["details"], file.name, body["seq"])
    return None


def _lines_backwards_until_checkpoint(file: Path) -> Iterator[dict[str, Any]]:
    for raw in _lines_backwards(file):
        try:
            body, _ = decode_line(raw)
        except LineError:
            continue
        if body["kind"] == KIND_CHECKPOINT:
            yield body
            return
