"""The audit event format (pure: no I/O, no clock).

One event per line. A line is the canonical JSON of an envelope::

    {"event":<canonical JSON of the event body>,"event_hash":"<sha256 hex of those bytes>"}

The hash is over the exact canonical bytes of the body as they appear on the line, so a
verifier hashes what it reads and never depends on re-serialising (and it is fast: a
slice and one SHA-256 per line). The envelope itself is canonical JSON too (``event``
sorts before ``event_hash``).

Every body has the same keys (:data:`BODY_KEYS`); ``prev_hash`` links it to the event
before it (:data:`GENESIS_HASH` for the very first event of a log), and ``seq`` counts
from 1 across every segment of a log.

Example:
    >>> body = make_body(seq=1, time="2026-01-01T00:00:00.000000Z", host="h",
    ...                  kind="note", prev_hash=GENESIS_HASH, fields={})
    >>> line, digest = encode_event(body)
    >>> decode_line(line) == (body, digest)
    True
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from typing import Any, NewType

from aegis.bounds import HEX64_RE as _HEX64_RE
from aegis.canonical import canonical_bytes
from aegis.errors import InputError

EventHash = NewType("EventHash", str)

EVENT_SCHEMA = "aegis.audit.event/1"
_HASH_HEX_LEN = 64  # SHA-256 as lowercase hex
GENESIS_HASH = "0" * _HASH_HEX_LEN
"""``prev_hash`` of the first event of a log."""

_PREFIX = b'{"event":'
_MIDDLE = b',"event_hash":"'
_SUFFIX = b'"}'
_TAIL_LEN = len(_MIDDLE) + _HASH_HEX_LEN + len(_SUFFIX)

# Kinds the log writes itself; callers of AuditLog.append may not use them.
KIND_CHECKPOINT = "checkpoint"
KIND_RECOVERED_TAIL = "recovered-tail"
KIND_SEGMENT_START = "segment-start"
RESERVED_KINDS = frozenset({KIND_CHECKPOINT, KIND_RECOVERED_TAIL, KIND_SEGMENT_START})

_KIND_RE = re.compile(r"^[a-z0-9][a-z0-9.-]{0,63}\Z")

CALLER_FIELDS = (
    "actor",
    "request_id",
    "execution_id",
    "decision",
    "argv",
    "exit_status",
    "output_hashes",
    "details",
)
"""Keys a caller may pass in ``fields``; anything else is kept under ``details``."""

BODY_KEYS = frozenset(
    {"schema_version", "seq", "time", "host", "kind", "prev_hash", *CALLER_FIELDS}
)

EMPTY_ACTOR: dict[str, Any] = {"uid": None, "pid": None, "signer": None, "approvers": []}


def check_kind(kind: str) -> str:
    """Return ``kind`` when it is a valid event kind.

    Raises:
        InputError: not lowercase ``[a-z0-9.-]``, or longer than 64 characters.
    """
    if not _KIND_RE.match(kind):
        raise InputError(f"audit event kind {kind!r} must match {_KIND_RE.pattern}")
    return kind


def _actor(value: Any) -> dict[str, Any]:
    if value is None:
        return dict(EMPTY_ACTOR)
    if not isinstance(value, Mapping):
        raise InputError("audit field 'actor' must be an object")
    out = dict(EMPTY_ACTOR)
    out.update(value)
    approvers = out.get("approvers")
    out["approvers"] = list(approvers) if approvers is not None else []
    return out


def make_body(
    *, seq: int, time: str, host: str, kind: str, prev_hash: str, fields: Mapping[str, Any]
) -> dict[str, Any]:
    """Build an event body with every key of :data:`BODY_KEYS`.

    Args:
        seq: sequence number (1 for the first event of the log).
        time: RFC 3339 UTC time text.
        host: host identity.
        kind: event kind (see :func:`check_kind`).
        prev_hash: ``event_hash`` of the previous event, or :data:`GENESIS_HASH`.
        fields: ``actor`` (uid, pid, signer, approvers), ``request_id``, ``execution_id``,
            ``decision`` (outcome, rule_ids, reasons), ``argv``, ``exit_status``,
            ``output_hashes``, ``details``; unknown keys are merged into ``details``.

    Raises:
        InputError: the kind is invalid (non-JSON values are refused by
            :func:`encode_event`).
    """
    details: dict[str, Any] = {}
    given = fields.get("details")
    if given is not None:
        if not isinstance(given, Mapping):
            raise InputError("audit field 'details' must be an object")
        details.update(given)
    for key, value in fields.items():
        if key not in CALLER_FIELDS:
            details[key] = value
    argv = fields.get("argv")
    body: dict[str, Any] = {
        "schema_version": EVENT_SCHEMA,
        "seq": seq,
        "time": time,
        "host": host,
        "kind": check_kind(kind),
        "actor": _actor(fields.get("actor")),
        "request_id": fields.get("request_id"),
        "execution_id": fields.get("execution_id"),
        "decision": fields.get("decision"),
        "argv": list(argv) if argv is not None else None,
        "exit_status": fields.get("exit_status"),
        "output_hashes": fields.get("output_hashes"),
        "prev_hash": prev_hash,
        "details": details,
    }
    return body


def encode_event(body: Mapping[str, Any]) -> tuple[bytes, EventHash]:
    """Return the line (with its trailing newline) and the event hash of ``body``."""
    raw = canonical_bytes(body)
    digest = hashlib.sha256(raw).hexdigest()
    return _PREFIX + raw + _MIDDLE + digest.encode("ascii") + _SUFFIX + b"\n", EventHash(digest)


class LineError(InputError):
    """A log line is not a well-formed audit event."""


class LineHashError(LineError):
    """A log line is well formed but its body does not hash to its ``event_hash``.

    Attributes:
        body: the parsed body (so a verifier can keep following the chain).
        claimed: the hash the line claims.
    """

    def __init__(self, message: str, body: dict[str, Any], claimed: str) -> None:
        super().__init__(message)
        self.body = body
        self.claimed = claimed


def decode_line(line: bytes) -> tuple[dict[str, Any], EventHash]:
    """Parse one line (with or without its newline) and check its hash.

    Returns:
        (event body, event hash)

    Raises:
        LineError: not an envelope, malformed JSON, floats, wrong keys or types.
        LineHashError: well formed, but the hash does not match the body bytes.
    """
    if line.endswith(b"\n"):
        line = line[:-1]
    if (
        len(line) <= len(_PREFIX) + _TAIL_LEN
        or not line.startswith(_PREFIX)
        or line[-_TAIL_LEN : -_TAIL_LEN + len(_MIDDLE)] != _MIDDLE
        or not line.endswith(_SUFFIX)
    ):
        raise LineError("not an audit event line")
    raw = line[len(_PREFIX) : -_TAIL_LEN]
    claimed = line[-_HASH_HEX_LEN - len(_SUFFIX) : -len(_SUFFIX)].decode("ascii", "replace")
    # The envelope around the body is fixed bytes, so parsing the body alone parses the
    # line; a hash that matches is hex by construction, one that does not is checked.
    try:
        text = raw.decode("utf-8")
        # raw_decode, not decode: no whitespace is skipped on either side (canonical JSON
        # has none), and the body must end exactly where the envelope resumes.
        body, end = _DECODER.raw_decode(text)
    except (ValueError, RecursionError) as e:  # JSONDecodeError and UnicodeDecodeError
        raise LineError(f"malformed JSON: {e}") from e
    if end != len(text):
        raise LineError("malformed JSON: extra data after the event body")
    if type(body) is not dict:
        raise LineError("not an audit event envelope")
    _check_body(body)
    if hashlib.sha256(raw).hexdigest() != claimed:
        if not _HEX64_RE.match(claimed):
            raise LineError("event_hash is not 64 lowercase hex characters")
        raise LineHashError("event body does not match its event_hash", body, claimed)
    return body, EventHash(claimed)


def _no_float(text: str) -> Any:
    raise ValueError(f"non-integer number {text[:16]!r}")


_DECODER = json.JSONDecoder(parse_float=_no_float, parse_constant=_no_float)


def _check_body(body: dict[str, Any]) -> None:
    if body.keys() != BODY_KEYS:
        raise LineError("event body keys are not the audit event schema")
    if body["schema_version"] != EVENT_SCHEMA:
        raise LineError(f"unknown event schema {body['schema_version']!r}")
    seq = body["seq"]
    if type(seq) is not int or seq < 1:
        raise LineError("event seq must be a positive integer")
    prev = body["prev_hash"]
    # A prev_hash that is not hex links to nothing and is reported by the walk.
    if not isinstance(prev, str) or len(prev) != _HASH_HEX_LEN:
        raise LineError("prev_hash is not 64 characters")
    if not isinstance(body["kind"], str) or not isinstance(body["details"], dict):
        raise LineError("event kind or details has the wrong type")
