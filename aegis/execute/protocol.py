r"""aegisd's wire protocol: length-framed canonical JSON over a Unix stream socket.

One frame is a 4-byte big-endian length followed by that many bytes of canonical
JSON (UTF-8, sorted keys, compact). A client sends one request frame and reads one
answer frame. Both sides cap the frame size and read against a deadline, so a
slow or silent peer costs one thread a bounded time and never blocks the others.

Requests (``op``):

- ``apply``: ``execution_plan`` is the execution plan file's text, verbatim; aegisd
  parses it strictly itself so a duplicate key or a changed byte is caught by
  aegisd, not by the client.
- ``revoke``: burn ``execution_id`` with a ``reason``.
- ``resolve``: record an operator's signed resolution of an interrupted execution.
- ``status``: the ledger row of ``execution_id`` (used by ``aegis resume``).
- ``ping``: liveness and whether trusted keys are configured.
- ``confirm``: an operator keeps the change of ``execution_id`` that policy asked a
  human to confirm after its health probes (aegis/execute/verifier.py).
- ``record-out-of-band``: aegisd reads dpkg's state and logs itself and records what
  changed behind its back (aegis/oob/record.py); it takes no input.

Answers always carry ``ok``; it is false on any refusal, with ``refusal`` (a stable
step name such as ``signature`` or ``replay``) and a ``message``.

Example:
    >>> frame = encode_frame({"op": "ping", "schema_version": REQUEST_SCHEMA})
    >>> frame[:4]
    b'\x00\x00\x007'
"""

from __future__ import annotations

import socket
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from aegis import framing
from aegis.bounds import EXECUTION_ID_RE
from aegis.errors import EnvironmentFailure, InputError

REQUEST_SCHEMA = "aegis.aegisd.request/1"
ANSWER_SCHEMA = "aegis.aegisd.answer/1"
MAX_FRAME_BYTES = 8 * 1024 * 1024
"""Largest frame either side accepts (an execution plan embeds its plan: up to 4 MiB)."""
READ_TIMEOUT_S = 10.0
"""A client must deliver its whole request within this time."""
OPS = ("apply", "revoke", "resolve", "status", "ping", "record-out-of-band", "confirm")
# Refusal codes of aegisd's answers (``Answer.code``); own_dir.py and dpkg_lock.py keep theirs.
REFUSED_PEER = "refused:peer"
REFUSED_NO_KEYS = "refused:no-trusted-keys"
REFUSED_DPKG_AUDIT = "refused:dpkg-audit"
REFUSED_MALFORMED = "refused:malformed"
REFUSED_OVERSIZED = "refused:oversized"
REFUSED_SLOW = "refused:slow-client"
REFUSED_STATE = "refused:state"
REFUSED_VERIFYING = "refused:verifying"


def iso(moment: datetime) -> str:
    """RFC 3339 UTC with microseconds and ``Z`` (answers and aegisd's ledger)."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class ProtocolError(InputError):
    """A frame was too large, truncated, late or not strict JSON."""


@dataclass(frozen=True)
class Request:
    """One parsed client request."""

    op: str
    execution_plan: str | None = None
    """The execution plan document's text, exactly as the client read it."""
    execution_id: str | None = None
    reason: str | None = None
    request_id: str | None = None
    document: str | None = None
    """For ``resolve``: the operator's signed resolution document."""


@dataclass(frozen=True)
class Answer:
    """aegisd's answer; ``ok`` is false on any refusal."""

    ok: bool
    message: str
    refusal: str | None = None
    """Stable name of the step that refused (``signature``, ``replay``, ...)."""
    execution_id: str | None = None
    state: str | None = None
    """Ledger state after the request: started, finished, revoked, or None."""
    exit_status: int | None = None
    result: dict[str, Any] = field(default_factory=dict)
    """Details: argv, output hashes, drift, snapshot id, restart facts."""


def encode_frame(value: Any, *, max_bytes: int = MAX_FRAME_BYTES) -> bytes:
    """Return the frame (length prefix + canonical JSON) of ``value``.

    Raises:
        ProtocolError: the encoded document is larger than ``max_bytes``.
    """
    return framing.encode_frame(value, max_bytes=max_bytes, error=ProtocolError)


def read_frame(
    sock: socket.socket, *, max_bytes: int = MAX_FRAME_BYTES, timeout_s: float = READ_TIMEOUT_S
) -> Any:
    """Read one frame and parse it strictly (duplicate keys, floats refused).

    Raises:
        ProtocolError: oversized, truncated, late, or malformed frame.
    """
    deadline = time.monotonic() + timeout_s
    return framing.read_frame(sock, deadline=deadline, max_bytes=max_bytes, error=ProtocolError)


def parse_request(data: Any) -> Request:
    """Validate a decoded request frame.

    Raises:
        ProtocolError: wrong schema, unknown op, unknown keys or wrong types.
    """
    if not isinstance(data, dict):
        raise ProtocolError("request must be a JSON object")
    if data.get("schema_version") != REQUEST_SCHEMA:
        raise ProtocolError(f"request schema_version must be {REQUEST_SCHEMA!r}")
    allowed = {
        "schema_version",
        "op",
        "execution_plan",
        "execution_id",
        "reason",
        "request_id",
        "document",
    }
    unknown = sorted(set(data) - allowed)
    if unknown:
        raise ProtocolError(f"unknown request key(s): {', '.join(unknown)}")
    op = data.get("op")
    if op not in OPS:
        raise ProtocolError(f"unknown op {op!r}; expected one of {', '.join(OPS)}")
    for key in ("execution_plan", "execution_id", "reason", "request_id", "document"):
        if key in data and data[key] is not None and not isinstance(data[key], str):
            raise ProtocolError(f"request {key} must be a string")
    req = Request(
        op=op,
        execution_plan=data.get("execution_plan"),
        execution_id=data.get("execution_id"),
        reason=data.get("reason"),
        request_id=data.get("request_id"),
        document=data.get("document"),
    )
    if op == "apply" and not req.execution_plan:
        raise ProtocolError("apply needs execution_plan")
    if op == "resolve" and not (req.document and req.execution_id):
        raise ProtocolError("resolve needs execution_id and document")
    if op in ("revoke", "status", "confirm") and not req.execution_id:
        raise ProtocolError(f"{op} needs execution_id")
    if op == "revoke" and not (req.reason or "").strip():
        raise ProtocolError("revoke needs a reason")
    # No id is ever drawn in another shape: anything else is a typo or an attack, and must
    # not be "revoked" (a typo would look like success) nor reach the ledger or audit log.
    if req.execution_id is not None and not EXECUTION_ID_RE.match(req.execution_id):
        raise ProtocolError("execution_id must be 32 lower-case hex characters")
    return req


def request_to_dict(req: Request) -> dict[str, Any]:
    """Return the wire form of ``req`` (None fields omitted)."""
    out: dict[str, Any] = {"schema_version": REQUEST_SCHEMA, "op": req.op}
    for key in ("execution_plan", "execution_id", "reason", "request_id", "document"):
        value = getattr(req, key)
        if value is not None:
            out[key] = value
    return out


def answer_to_dict(ans: Answer) -> dict[str, Any]:
    """Return the wire form of ``ans``."""
    return {
        "schema_version": ANSWER_SCHEMA,
        "ok": ans.ok,
        "message": ans.message,
        "refusal": ans.refusal,
        "execution_id": ans.execution_id,
        "state": ans.state,
        "exit_status": ans.exit_status,
        "result": ans.result,
    }


def parse_answer(data: Any) -> Answer:
    """Validate a decoded answer frame.

    Raises:
        ProtocolError: not an aegisd answer.
    """
    if not isinstance(data, dict) or data.get("schema_version") != ANSWER_SCHEMA:
        raise ProtocolError("not an aegisd answer")
    ok = data.get("ok")
    if not isinstance(ok, bool) or not isinstance(data.get("message"), str):
        raise ProtocolError("aegisd answer lacks ok/message")
    result = data.get("result") or {}
    if not isinstance(result, dict):
        raise ProtocolError("aegisd answer result must be an object")
    exit_status = data.get("exit_status")
    if exit_status is not None and (
        isinstance(exit_status, bool) or not isinstance(exit_status, int)
    ):
        raise ProtocolError("aegisd answer exit_status must be an integer")
    return Answer(
        ok=ok,
        message=data["message"],
        refusal=_opt_str(data.get("refusal")),
        execution_id=_opt_str(data.get("execution_id")),
        state=_opt_str(data.get("state")),
        exit_status=exit_status,
        result=result,
    )


def _opt_str(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def call(
    socket_path: str, req: Request, *, timeout_s: float = 3600.0, connect_timeout_s: float = 5.0
) -> Answer:
    """Send ``req`` to aegisd at ``socket_path`` and return its answer.

    ``timeout_s`` bounds the wait for the answer (a run may take minutes).

    Raises:
        EnvironmentFailure: aegisd is not reachable, or closed without answering.
        ProtocolError: the answer is malformed.
    """
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.settimeout(connect_timeout_s)
        try:
            sock.connect(socket_path)
        except (FileNotFoundError, ConnectionRefusedError) as e:
            raise EnvironmentFailure(
                f"aegisd is not listening on {socket_path}",
                hint="start aegisd.service (or aegisd --socket PATH)",
            ) from e
        except PermissionError as e:
            raise EnvironmentFailure(
                f"permission denied connecting to {socket_path}",
                hint="only root and members of group aegis-apply may reach aegisd",
            ) from e
        except OSError as e:
            raise EnvironmentFailure(f"cannot connect to aegisd at {socket_path}: {e}") from e
        sock.sendall(encode_frame(request_to_dict(req)))
        try:
            data = read_frame(sock, timeout_s=timeout_s)
        except ProtocolError as e:
            raise EnvironmentFailure(f"aegisd did not answer: {e.message}") from e
        return parse_answer(data)
    finally:
        sock.close()
