"""Records of the state store and their strict parsing (pure).

Rows read back from the store are untrusted (any member of group ``aegis`` can
write the file). :func:`parse_request_row` and :func:`parse_history_row` check
every column's type and shape, then recompute the row's SHA-256 over canonical
JSON and compare it with the stored ``row_hash``: an edited or corrupted row is
a :class:`CorruptStoreError` (exit 4) naming the row, never a traceback.

Example:
    >>> rec = RequestRecord(id="r-1", kind="apt install", ...)
    >>> request_row(rec)["row_hash"] == request_hash(rec)
    True
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

import orjson

from aegis.bounds import HEX64_RE as _HEX64
from aegis.canonical import canonical_bytes, loads_strict, sha256_hex
from aegis.errors import InputError, TrustError

TIME_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"
_TIME_RE = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z\Z")
_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}\Z")
ID_PATTERN = _ID_RE
"""What :func:`check_id` accepts, for a caller that must not raise per row."""
MAX_FACTS_BYTES = 16 * 1024
MAX_TEXT = 4096


class CorruptStoreError(TrustError):
    """A store row does not parse or fails its hash check."""


def format_time(when: datetime) -> str:
    """Store format: UTC, microseconds, ``Z``; sorts lexicographically."""
    if when.tzinfo is None:
        raise RuntimeError("naive datetime given to the store")
    u = when.astimezone(UTC)
    # TIME_FORMAT's fields spelled out: strftime goes through the C library's and costs
    # several times more, on every transition. Zero-padded like ISO 8601 (strftime's %Y
    # is not padded below year 1000, a year no store time has).
    return "%04d-%02d-%02dT%02d:%02d:%02d.%06dZ" % (  # noqa: UP031 - the fastest spelling
        u.year,
        u.month,
        u.day,
        u.hour,
        u.minute,
        u.second,
        u.microsecond,
    )


def parse_time(text: object) -> datetime:
    """Parse a stored time strictly."""
    if not isinstance(text, str) or not _TIME_RE.match(text):
        raise InputError(f"not a store timestamp: {text!r}")
    try:
        return datetime.strptime(text, TIME_FORMAT).replace(tzinfo=UTC)
    except ValueError as e:  # shape is right, calendar is not (month 13)
        raise InputError(f"not a store timestamp: {text!r}") from e


def check_id(value: object, what: str = "request id") -> str:
    """Refuse ids that are not short, plain tokens."""
    if not isinstance(value, str) or not _ID_RE.match(value):
        raise InputError(f"not a valid {what}: {str(value)[:80]!r}")
    return value


def check_sha256(value: object) -> str:
    """Refuse anything but 64 lowercase hex characters."""
    if not isinstance(value, str) or not _HEX64.match(value):
        raise InputError(f"not a SHA-256 hex digest: {str(value)[:80]!r}")
    return value


@dataclass(frozen=True)
class ArtifactRef:
    """An artifact attached by a transition."""

    kind: str
    sha256: str
    path: str | None = None
    """Where the file was written (for people); the store's bytes are authoritative."""


@dataclass(frozen=True)
class RequestRecord:
    """One change request as stored."""

    id: str
    kind: str
    """What the request is about, e.g. ``apt install``."""
    summary: str
    """Short untrusted description (targets); shown only through aegis/text.py."""
    state: str
    version: int
    created_at: str
    updated_at: str
    """When the request entered its current state (or its lease last changed)."""
    plan_id: str | None
    plan_hash: str | None
    lease_owner: str | None
    lease_expires_at: str | None
    head: str
    """row_hash of the request's last history row."""


@dataclass(frozen=True)
class HistoryRecord:
    """One transition in a request's append-only history."""

    request_id: str
    seq: int
    from_state: str | None
    to_state: str
    trigger: str
    actor: str
    at: str
    artifacts: tuple[ArtifactRef, ...]
    facts: dict[str, Any] = field(default_factory=dict)
    """Small evidence given with the trigger (reason, execution id, ...)."""
    workflow: str = ""
    """SHA-256 of the workflow file the transition was checked against."""
    prev_hash: str | None = None


REQUEST_COLUMNS = (
    "id",
    "kind",
    "summary",
    "state",
    "version",
    "created_at",
    "updated_at",
    "plan_id",
    "plan_hash",
    "lease_owner",
    "lease_expires_at",
    "head",
    "row_hash",
)
"""The ``requests`` table's columns, in the order the store reads and writes them."""


def _request_body(rec: RequestRecord) -> dict[str, Any]:
    # Equal to to_dict(rec), spelled out: it runs on every read and write of a request.
    # Its keys are in REQUEST_COLUMNS order (request_values relies on it).
    return {
        "id": rec.id,
        "kind": rec.kind,
        "summary": rec.summary,
        "state": rec.state,
        "version": rec.version,
        "created_at": rec.created_at,
        "updated_at": rec.updated_at,
        "plan_id": rec.plan_id,
        "plan_hash": rec.plan_hash,
        "lease_owner": rec.lease_owner,
        "lease_expires_at": rec.lease_expires_at,
        "head": rec.head,
    }


def _canonical_known(value: Any) -> bytes:
    """Canonical bytes of a structure built here from str/int/None/bool and checked facts.

    Same bytes as :func:`aegis.canonical.canonical_bytes` (same json.dumps arguments) without
    its type walk, which the callers already guarantee: facts pass :func:`check_facts`
    before a write and :func:`loads_strict` (no floats) on a read.
    """
    try:  # orjson writes the same bytes (see aegis/canonical.py), several times faster
        return orjson.dumps(value, option=orjson.OPT_SORT_KEYS)
    except orjson.JSONEncodeError:  # lone surrogates, huge integers: the reference encoder
        return _ENCODER.encode(value).encode("utf-8", "surrogatepass")


# json.dumps(value, **these) builds this encoder on every call; it holds no state of its own.
_ENCODER = json.JSONEncoder(
    sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
)


def request_hash(rec: RequestRecord) -> str:
    """SHA-256 over the canonical JSON of every field of the request row."""
    return sha256_hex(_canonical_known(_request_body(rec)))


def request_row(rec: RequestRecord) -> dict[str, Any]:
    """The row to write for ``rec``."""
    return {**_request_body(rec), "row_hash": request_hash(rec)}


def request_values(rec: RequestRecord) -> tuple[Any, ...]:
    """The row to write for ``rec`` as values: every column but ``id``, ``row_hash`` last.

    In the order of :data:`REQUEST_COLUMNS` (without its first, ``id``).
    """
    body = _request_body(rec)
    return (*list(body.values())[1:], sha256_hex(_canonical_known(body)))


class Addressed(Protocol):
    """An artifact as a history row records it: :class:`ArtifactRef` or one being stored."""

    @property
    def kind(self) -> str: ...  # noqa: D102
    @property
    def sha256(self) -> str: ...  # noqa: D102
    @property
    def path(self) -> str | None: ...  # noqa: D102


def new_history_body(
    *,
    request_id: str,
    seq: int,
    from_state: str | None,
    to_state: str,
    trigger: str,
    actor: str,
    at: str,
    artifacts: Iterable[Addressed],
    facts: dict[str, Any],
    workflow: str,
    prev_hash: str | None,
) -> dict[str, Any]:
    """The canonical structure a history row's hash covers, from its fields.

    The one definition of that structure (:func:`history_body` gives it for a record;
    :meth:`aegis.workflow.store.Store.commit` builds it from the moves it writes without
    a record in between). Spelled out rather than generic: it runs on every transition.
    """
    entries = [{"kind": a.kind, "sha256": a.sha256, "path": a.path} for a in artifacts]
    return _body(request_id, seq, from_state, to_state, trigger, actor, at, entries, facts,
                 workflow, prev_hash)  # fmt: skip


def _body(  # noqa: PLR0917 - the hashed structure's fields, positional on the hot path
    request_id: str,
    seq: int,
    from_state: str | None,
    to_state: str,
    trigger: str,
    actor: str,
    at: str,
    artifacts: list[dict[str, Any]],
    facts: dict[str, Any],
    workflow: str,
    prev_hash: str | None,
) -> dict[str, Any]:
    """The hashed structure itself: for a new row, and for a row read back (_parse_history)."""
    return {
        "request_id": request_id,
        "seq": seq,
        "from_state": from_state,
        "to_state": to_state,
        "trigger": trigger,
        "actor": actor,
        "at": at,
        "artifacts": artifacts,
        "facts": facts,
        "workflow": workflow,
        "prev_hash": prev_hash,
    }


def history_body(rec: HistoryRecord) -> dict[str, Any]:
    """The canonical structure a history row's hash covers (equal to ``to_dict(rec)``)."""
    return new_history_body(
        request_id=rec.request_id,
        seq=rec.seq,
        from_state=rec.from_state,
        to_state=rec.to_state,
        trigger=rec.trigger,
        actor=rec.actor,
        at=rec.at,
        artifacts=rec.artifacts,
        facts=rec.facts,
        workflow=rec.workflow,
        prev_hash=rec.prev_hash,
    )


def body_hash(body: dict[str, Any]) -> str:
    """SHA-256 over the canonical JSON of a history body (:func:`new_history_body`)."""
    return sha256_hex(_canonical_known(body))


def history_hash(rec: HistoryRecord) -> str:
    """SHA-256 over the canonical JSON of the history record."""
    return body_hash(history_body(rec))


def body_values(body: dict[str, Any], row_hash: str | None = None) -> list[Any]:
    """The row to write for a history body as values in :data:`HISTORY_COLUMNS` order.

    Artifacts and facts go into ``evidence``. ``row_hash`` may be passed when the caller
    already computed :func:`body_hash`.
    """
    evidence = {
        "artifacts": body["artifacts"],
        "facts": body["facts"],
        "workflow": body["workflow"],
    }
    return [
        body["request_id"],
        body["seq"],
        body["from_state"],
        body["to_state"],
        body["trigger"],
        body["actor"],
        body["at"],
        _canonical_known(evidence).decode("utf-8", "surrogatepass"),
        body["prev_hash"],
        row_hash or body_hash(body),
    ]


def history_values(rec: HistoryRecord, row_hash: str | None = None) -> list[Any]:
    """The row to write for ``rec`` as values in :data:`HISTORY_COLUMNS` order.

    See :func:`body_values`.
    """
    return body_values(history_body(rec), row_hash)


def history_row(rec: HistoryRecord, row_hash: str | None = None) -> dict[str, Any]:
    """The row to write for ``rec`` (column name -> value); see :func:`history_values`."""
    return dict(zip(HISTORY_COLUMNS, history_values(rec, row_hash), strict=True))


def check_facts(facts: dict[str, Any]) -> dict[str, Any]:
    """Refuse evidence that is not small canonical JSON."""
    if not isinstance(facts, dict):
        raise InputError("evidence must be an object")
    if facts and len(canonical_bytes(facts)) > MAX_FACTS_BYTES:
        raise InputError(f"evidence is larger than {MAX_FACTS_BYTES} bytes")
    return facts


def _corrupt(what: str, problem: str) -> CorruptStoreError:
    return CorruptStoreError(
        f"store row {what} is corrupted or was edited: {problem}",
        hint="nothing was changed; restore the store from backup or cancel the request",
    )


def _check_row_fields(row: dict[str, Any], what: str) -> None:
    for key in ("created_at", "updated_at", "at", "lease_expires_at"):
        value = row.get(key)
        if value is not None and not (isinstance(value, str) and _TIME_RE.match(value)):
            raise InputError(f"{key} is not a store timestamp: {str(value)[:40]!r}")
    for key in ("plan_hash", "head", "prev_hash", "row_hash"):
        if row.get(key) is not None:
            check_sha256(row[key])
    for key in ("kind", "summary", "actor", "lease_owner"):
        value = row.get(key)
        if isinstance(value, str) and len(value) > MAX_TEXT:
            raise InputError(f"{key} longer than {MAX_TEXT} characters in {what}")


_REQUEST_KEYS = REQUEST_COLUMNS[:-1]  # the row's hash is checked on its own


def _request_from_dict(data: dict[str, Any]) -> RequestRecord:
    """Strict parse of a request record: every field present, of its declared type.

    Hand-written (same checks and messages as ``from_dict``): it runs on every read.
    """
    unknown = sorted(set(data) - set(_REQUEST_KEYS))
    if unknown:
        raise InputError(f"$: unknown key(s) {', '.join(map(repr, unknown))}")
    for key in _REQUEST_KEYS:
        if key not in data:
            raise InputError(f"$: missing key {key!r}")
    version = data["version"]
    if isinstance(version, bool) or not isinstance(version, int):
        raise InputError("$.version: expected an integer")
    for key in ("id", "kind", "summary", "state", "created_at", "updated_at", "head"):
        if not isinstance(data[key], str):
            raise InputError(f"$.{key}: expected a string")
    for key in ("plan_id", "plan_hash", "lease_owner", "lease_expires_at"):
        if data[key] is not None and not isinstance(data[key], str):
            raise InputError(f"$.{key}: expected a string")
    return RequestRecord(**data)


def parse_request_row(row: dict[str, Any], states: frozenset[str]) -> RequestRecord:
    """Parse a ``requests`` row strictly and check its hash.

    Raises:
        CorruptStoreError: wrong types, unknown state, bad timestamps, hash mismatch.
    """
    what = f"request {str(row.get('id'))[:80]!r}"
    try:
        data = dict(row)
        stored_hash = data.pop("row_hash", None)
        _check_row_fields({**data, "row_hash": stored_hash}, what)
        rec = _request_from_dict(data)
        check_id(rec.id)
        parse_time(rec.updated_at)  # the calendar too: ages are computed from it
        if rec.state not in states:
            raise InputError(f"unknown state {rec.state!r}")
        if rec.version < 0:
            raise InputError("negative version")
    except InputError as e:
        raise _corrupt(what, e.message) from e
    if stored_hash != request_hash(rec):
        raise _corrupt(what, "row hash does not match its contents")
    return rec


_ARTIFACT_KEYS = frozenset({"kind", "sha256", "path"})


HISTORY_COLUMNS = (
    "request_id",
    "seq",
    "from_state",
    "to_state",
    "trigger",
    "actor",
    "at",
    "evidence",
    "prev_hash",
    "row_hash",
)
"""The ``history`` table's columns, in the order the store reads and writes them."""
_HISTORY_COLUMN_SET = frozenset(HISTORY_COLUMNS)
_EVIDENCE_KEYS = frozenset({"artifacts", "facts", "workflow"})


def _artifact_entries(raw: object) -> list[dict[str, Any]]:
    """The evidence's artifact entries, checked: each exactly kind, sha256 and path."""
    if not isinstance(raw, list):
        raise InputError("artifacts: expected a list")
    for item in raw:
        if not isinstance(item, dict) or item.keys() != _ARTIFACT_KEYS:
            raise InputError("artifacts: malformed entry")
        if not isinstance(item["kind"], str):
            raise InputError("kind: expected a string")
        check_sha256(item["sha256"])
        path = item["path"]
        if path is not None and not isinstance(path, str):
            raise InputError("path: expected a string")
    return raw


def _parse_history(values: Sequence[Any], states: frozenset[str]) -> dict[str, Any]:  # noqa: PLR0912 - one check per column
    """Strict parse of a history row's values into its body (:func:`new_history_body`).

    Hand-written: it runs on every row read. The body's artifact entries are the parsed
    evidence's own dicts, checked to hold exactly what :func:`new_history_body` puts there.
    """
    request_id, seq, from_state, to_state, trigger, actor, at, raw_evidence, prev_hash, _ = values
    # The checks of _text and check_sha256, inlined (same order and messages).
    if not isinstance(at, str) or not _TIME_RE.match(at):
        raise InputError(f"at is not a store timestamp: {str(at)[:40]!r}")
    if prev_hash is not None:
        check_sha256(prev_hash)
    if not isinstance(actor, str):
        raise InputError("actor: expected a string")
    if len(actor) > MAX_TEXT:
        raise InputError(f"actor longer than {MAX_TEXT} characters")
    if isinstance(seq, bool) or not isinstance(seq, int) or seq < 0:
        raise InputError("seq: expected a non-negative integer")
    if not isinstance(raw_evidence, str):
        raise InputError("evidence is not text")
    evidence = loads_strict(raw_evidence.encode("utf-8"), max_bytes=4 * MAX_FACTS_BYTES)
    if not isinstance(evidence, dict) or evidence.keys() != _EVIDENCE_KEYS:
        raise InputError("evidence has the wrong shape")
    artifacts = _artifact_entries(evidence["artifacts"])
    facts = evidence["facts"]
    if not isinstance(facts, dict):
        raise InputError("facts: expected an object")
    if from_state is not None:
        if not isinstance(from_state, str):
            raise InputError("from_state: expected a string")
        if from_state not in states:
            raise InputError(f"unknown state {from_state!r}")
    if not isinstance(to_state, str):
        raise InputError("to_state: expected a string")
    if to_state not in states:
        raise InputError(f"unknown state {to_state!r}")
    if not isinstance(request_id, str):
        raise InputError("request_id: expected a string")
    if not isinstance(trigger, str):
        raise InputError("trigger: expected a string")
    workflow = evidence["workflow"]
    if not isinstance(workflow, str):
        raise InputError("workflow: expected a string")
    return _body(request_id, seq, from_state, to_state, trigger, actor, at, artifacts, facts,
                 workflow, prev_hash)  # fmt: skip


def check_history_values(values: Sequence[Any], states: frozenset[str]) -> dict[str, Any]:
    """A ``history`` row given as values in :data:`HISTORY_COLUMNS` order, parsed and checked.

    Parsing is strict: every column's type and value is checked, and the row's hash must
    be that of what was parsed. Returns the row's body (:func:`new_history_body`), for a
    reader that needs no :class:`HistoryRecord` (:func:`parse_history_values` builds it).

    Raises:
        CorruptStoreError: wrong types, unknown states, malformed evidence, hash mismatch.
    """
    try:
        if len(values) != len(HISTORY_COLUMNS):
            raise InputError(f"expected {len(HISTORY_COLUMNS)} columns, got {len(values)}")
        stored_hash = check_sha256(values[-1])
        body = _parse_history(values, states)
    except InputError as e:
        head = (*values[:2], None, None)
        what = f"history {str(head[0])[:80]!r}#{head[1]!r}"
        raise _corrupt(what, e.message) from e
    if stored_hash != body_hash(body):
        raise _corrupt(
            f"history {body['request_id'][:80]!r}#{body['seq']!r}",
            "row hash does not match its contents",
        )
    return body


def parse_history_values(values: Sequence[Any], states: frozenset[str]) -> HistoryRecord:
    """Parse a ``history`` row given as values in :data:`HISTORY_COLUMNS` order; check its hash.

    See :func:`check_history_values`.

    Raises:
        CorruptStoreError: wrong types, unknown states, malformed evidence, hash mismatch.
    """
    body = check_history_values(values, states)
    return HistoryRecord(
        request_id=body["request_id"],
        seq=body["seq"],
        from_state=body["from_state"],
        to_state=body["to_state"],
        trigger=body["trigger"],
        actor=body["actor"],
        at=body["at"],
        artifacts=tuple(ArtifactRef(a["kind"], a["sha256"], a["path"]) for a in body["artifacts"]),
        facts=body["facts"],
        workflow=body["workflow"],
        prev_hash=body["prev_hash"],
    )


def parse_history_row(row: Mapping[str, Any], states: frozenset[str]) -> HistoryRecord:
    """Parse a ``history`` row (column name -> value) strictly and check its hash.

    Raises:
        CorruptStoreError: wrong or missing columns, wrong types, unknown states, malformed
            evidence, hash mismatch.
    """
    if set(row) != _HISTORY_COLUMN_SET:
        what = f"history {str(row.get('request_id'))[:80]!r}#{row.get('seq')!r}"
        extra = sorted(set(row) ^ _HISTORY_COLUMN_SET)
        raise _corrupt(what, f"history columns differ: {extra}")
    return parse_history_values([row[c] for c in HISTORY_COLUMNS], states)
