"""Every audit event also goes to journald, with structured fields (best effort).

Fleets already forward the journal off their hosts; an audit event that arrives there
with ``AEGIS_REQUEST``, ``AEGIS_EVENT``, ``AEGIS_SEQ`` and ``AEGIS_HASH`` can be
searched (``journalctl AEGIS_REQUEST=<id>``) and matched to the host's log and its
signed checkpoints (``aegis audit checkpoint --json``) without logging in.

The message is one datagram of journald's native protocol to its socket
(``/run/systemd/journal/socket``): ``NAME=value`` lines, or ``NAME``, a little-endian
64-bit length and the raw bytes for a value that holds a newline. That protocol is a
few lines of code, so no library is needed (python3-systemd would add a C extension
for the same datagram).

Sending never blocks and never fails the append: the event is already fsync'd in the
log, which stays the record. The socket is non-blocking; an absent journald, a full
queue or an oversized datagram is a failure that is counted in ``<log>.journal``
(JSON: ``failures``, ``last_error``, ``last_failure_time``), which the monitor turns
into the ``aegis_audit_journal_failures_total`` metric. The file is written only when
a send fails, so the good path costs one ``sendto``.

Example:
    >>> sender = JournalSender(Path("/run/systemd/journal/socket"), status_path)
    >>> sender.send(body, event_hash, line)
    True
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import struct
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from aegis.config import group_gid

DEFAULT_SOCKET = Path("/run/systemd/journal/socket")
SOCKET_ENV = "AEGIS_JOURNAL_SOCKET"
"""Overrides the journal socket aegisd sends to; empty turns journal shipping off."""
SYSLOG_IDENTIFIER = "aegis-audit"
MAX_JSON_FIELD = 48 * 1024
"""Larger event lines are left out of ``AEGIS_EVENT_JSON``: one datagram must fit the
socket's send buffer (journald takes bigger entries only through a passed memfd)."""
_PRIORITY_INFO = "6"
_FACILITY_AUTHPRIV = "10"


def status_path_for(log_path: Path) -> Path:
    """Where the writer of ``log_path`` counts failed journal sends."""
    return log_path.with_name(log_path.name + ".journal")


def configured_socket(env: Mapping[str, str]) -> Path | None:
    """The journal socket aegisd sends to, or None when shipping is off.

    ``AEGIS_JOURNAL_SOCKET`` wins (empty: off); otherwise journald's socket, unless
    ``AEGIS_AUDIT_SYSLOG=0`` turned the off-host copies off (tests and the demo).
    """
    if SOCKET_ENV in env:
        value = env[SOCKET_ENV]
        return Path(value) if value else None
    if env.get("AEGIS_AUDIT_SYSLOG", "1") == "0":
        return None
    return DEFAULT_SOCKET


def _field(name: str, value: str | bytes) -> bytes:
    data = value.encode("utf-8", "replace") if isinstance(value, str) else value
    if b"\n" in data:
        return name.encode() + b"\n" + struct.pack("<Q", len(data)) + data + b"\n"
    return name.encode() + b"=" + data + b"\n"


def encode_entry(body: Mapping[str, Any], digest: str, line: bytes) -> bytes:
    """The native-protocol datagram for one audit event (pure)."""
    request = body.get("request_id")
    summary = f"aegis audit seq={body['seq']} event={body['kind']}"
    if request:
        summary += f" request={request}"
    fields: list[tuple[str, str | bytes]] = [
        ("MESSAGE", summary),
        ("PRIORITY", _PRIORITY_INFO),
        ("SYSLOG_FACILITY", _FACILITY_AUTHPRIV),
        ("SYSLOG_IDENTIFIER", SYSLOG_IDENTIFIER),
        ("AEGIS_EVENT", str(body["kind"])),
        ("AEGIS_SEQ", str(body["seq"])),
        ("AEGIS_HASH", digest),
        ("AEGIS_PREV_HASH", str(body["prev_hash"])),
        ("AEGIS_HOST", str(body["host"])),
    ]
    if request:
        fields.append(("AEGIS_REQUEST", str(request)))
    if body.get("execution_id"):
        fields.append(("AEGIS_EXECUTION", str(body["execution_id"])))
    event_line = line.rstrip(b"\n")
    if len(event_line) <= MAX_JSON_FIELD:
        fields.append(("AEGIS_EVENT_JSON", event_line))
    else:
        fields.append(("AEGIS_EVENT_JSON_OMITTED_BYTES", str(len(event_line))))
    return b"".join(_field(n, v) for n, v in fields)


def parse_entry(data: bytes) -> dict[str, bytes]:
    """Decode a native-protocol datagram (what journald does; used by tests and tools)."""
    out: dict[str, bytes] = {}
    pos = 0
    while pos < len(data):
        nl = data.index(b"\n", pos)
        head = data[pos:nl]
        if b"=" in head:
            name, _, value = head.partition(b"=")
            out[name.decode()] = value
            pos = nl + 1
            continue
        (size,) = struct.unpack("<Q", data[nl + 1 : nl + 9])
        out[head.decode()] = data[nl + 9 : nl + 9 + size]
        pos = nl + 9 + size + 1
    return out


class JournalSender:
    """Sends each event to journald; counts the sends that fail (never raises)."""

    def __init__(self, socket_path: Path, status_path: Path) -> None:
        """Ship to ``socket_path``; count failures in ``status_path``."""
        self.socket_path = socket_path
        self.status_path = status_path
        self._sock: socket.socket | None = None
        self._failures: int | None = None

    def send(self, body: Mapping[str, Any], digest: str, line: bytes, now: str) -> bool:
        """Send one event; False (and counted) when it could not be sent."""
        try:
            if self._sock is None:
                self._sock = socket.socket(
                    socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_NONBLOCK | socket.SOCK_CLOEXEC
                )
            self._sock.sendto(encode_entry(body, digest, line), str(self.socket_path))
        except OSError as e:
            self._count_failure(f"{self.socket_path}: {e.strerror or e}", now)
            return False
        return True

    def close(self) -> None:
        """Close the socket."""
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    def _count_failure(self, error: str, now: str) -> None:
        if self._failures is None:
            self._failures = read_status(self.status_path).get("failures", 0)
        self._failures += 1
        doc = {"failures": self._failures, "last_error": error[:300], "last_failure_time": now}
        # The count is advisory; the event itself is in the log.
        with contextlib.suppress(OSError):
            _write_status(self.status_path, json.dumps(doc, sort_keys=True).encode() + b"\n")


def read_status(path: Path) -> dict[str, Any]:
    """The failure count file, or {} when absent or unreadable (best effort)."""
    try:
        raw = path.read_bytes()[:4096]
        doc = json.loads(raw)
    except (OSError, ValueError):
        return {}
    if not isinstance(doc, dict) or type(doc.get("failures")) is not int:
        return {}
    return doc


def _write_status(path: Path, data: bytes) -> None:
    # Same permissions as the log (0640, group aegis): the monitor reads it. No fsync:
    # a count lost in a crash only under-reports, and the good path never gets here.

    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC, 0o640)
    try:
        gid = group_gid()
        if os.geteuid() == 0 and gid is not None:
            os.fchown(fd, 0, gid)
        os.write(fd, data)
    finally:
        os.close(fd)
