"""Verify an audit log: hashes, links, sequence, checkpoint signatures, the witness.

``verify(path, audit_public_key_hex=K, witness=W)`` reads every segment of the log
(``<log>.1``, ``<log>.2``, ..., then ``<log>``) and reports each problem with the file
and line number where it is:

- ``modified``: a line's body does not hash to its ``event_hash``, or a line was
  rewritten with a fresh hash (the next line links to a hash that is not there);
- ``inserted``: lines that the chain skips over (the next line links past them);
- ``deleted``: the chain jumps over missing sequence numbers;
- ``reordered``: a line comes before its predecessor or after its successor;
- ``duplicated``: the same event appears twice;
- ``malformed``: a line that is not an event (and not a recorded torn tail);
- ``torn-tail``: the last line is incomplete and no ``recovered-tail`` event records it;
- ``checkpoint``: a checkpoint whose signature fails, or that signs a head other than
  the chain it sits on (the chain before it was rewritten);
- ``truncated`` / ``witness-mismatch``: the newest checkpoint held off the log (the
  witness) covers events the log no longer has, or a different head.

The hash chain alone proves nothing against someone who can rewrite the whole file;
the signed checkpoints (with the trusted audit public key) and the witness copy held
off the log are what make rewriting and truncation visible.

Example:
    >>> report = verify(Path("/var/log/aegis/audit.jsonl"), audit_public_key_hex=pub)
    >>> report.ok, [p.line for p in report.problems]
"""

from __future__ import annotations

import gc
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

from aegis.audit.chain import segment_paths
from aegis.audit.checkpoints import read_witness, verify_checkpoint
from aegis.audit.event import (
    GENESIS_HASH,
    KIND_CHECKPOINT,
    KIND_RECOVERED_TAIL,
    KIND_SEGMENT_START,
    LineError,
    LineHashError,
    decode_line,
)
from aegis.canonical import sha256_hex
from aegis.errors import InputError


@dataclass(frozen=True)
class Problem:
    """One finding, located at a line of a file."""

    file: str
    """Segment file name."""
    line: int
    """1-based line number in that file."""
    kind: str
    """modified, inserted, deleted, reordered, duplicated, malformed, torn-tail, sequence,
    checkpoint, truncated, witness-mismatch, witness."""
    message: str


@dataclass
class VerifyReport:
    """The outcome of :func:`verify`."""

    path: str
    segments: list[str] = field(default_factory=list)
    lines: int = 0
    events: int = 0
    head_seq: int = 0
    head_hash: str = GENESIS_HASH
    checkpoints: int = 0
    last_checkpoint_seq: int = 0
    """Highest sequence number covered by a valid signed checkpoint in the log."""
    covered_seq: int = 0
    """Highest sequence number vouched for: a signed checkpoint's head, or the checkpoint
    event right after it that carries the signed document (it cannot sign itself)."""
    witness_seq: int | None = None
    problems: list[Problem] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    request_last_seq: dict[str, int] = field(default_factory=dict)
    """For each request id, the sequence number of its last event."""

    @property
    def ok(self) -> bool:
        """True when no problem was found."""
        return not self.problems

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dict (without the per-request index)."""
        out = asdict(self)
        out.pop("request_last_seq")
        out["ok"] = self.ok
        return out


@dataclass(slots=True)
class _Entry:
    file: str
    line: int
    raw: bytes
    body: dict[str, Any] | None
    digest: str | None
    hash_ok: bool
    error: str | None = None


_KEPT_DETAILS = frozenset({KIND_CHECKPOINT, KIND_RECOVERED_TAIL, KIND_SEGMENT_START})


def _slim(body: dict[str, Any]) -> dict[str, Any]:
    # Keep what the walk needs; the full bodies of 100k events cost time to hold and free.
    kind = body["kind"]
    return {
        "seq": body["seq"],
        "prev_hash": body["prev_hash"],
        "kind": kind,
        "request_id": body["request_id"],
        "details": body["details"] if kind in _KEPT_DETAILS else {},
    }


def _read_entries(files: list[Path]) -> tuple[list[_Entry], list[tuple[str, int]], bool]:
    entries: list[_Entry] = []
    ends: list[tuple[str, int]] = []
    torn_end = False
    for index, path in enumerate(files):
        try:
            data = path.read_bytes()
        except OSError as e:
            raise InputError(f"cannot read audit log {path}: {e.strerror}") from e
        lines = data.split(b"\n")
        last_is_torn = lines[-1] != b""
        if not last_is_torn:
            lines.pop()
        if last_is_torn and index == len(files) - 1:
            torn_end = True
        for number, raw in enumerate(lines, start=1):
            try:
                body, digest = decode_line(raw)
                entries.append(_Entry(path.name, number, b"", _slim(body), digest, True))
            except LineHashError as e:
                entries.append(_Entry(path.name, number, b"", _slim(e.body), e.claimed, False))
            except LineError as e:
                entries.append(_Entry(path.name, number, raw, None, None, False, e.message))
        ends.append((path.name, len(lines)))
    return entries, ends, torn_end


def verify(
    path: Path,
    *,
    audit_public_key_hex: str | None,
    witness: Path | None = None,
    include_segments: bool = True,
) -> VerifyReport:
    """Verify the log at ``path`` (and its rotated segments).

    Args:
        path: the current segment.
        audit_public_key_hex: aegisd's trusted audit public key; without it checkpoint
            signatures are not checked (reported as a warning) and no witness is trusted.
        witness: a file of signed checkpoints held off the log.
        include_segments: also read ``<path>.<n>`` rotated segments first.

    Raises:
        InputError: a file cannot be read.
    """
    files = [*segment_paths(path), path] if include_segments else [path]
    files = [f for f in files if f.exists() or f == path]
    report = VerifyReport(path=str(path), segments=[f.name for f in files])
    # Holding every parsed line keeps the heap growing; pausing the cyclic GC (nothing
    # here makes cycles) keeps verification linear instead of rescanning the heap.
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        entries, ends, torn_end = _read_entries(files)
        report.lines = len(entries)
        _walk(entries, torn_end, report, audit_public_key_hex)
    finally:
        if gc_was_enabled:
            gc.enable()
    if witness is not None:
        _check_witness(entries, ends, witness, report, audit_public_key_hex)
    if audit_public_key_hex is not None and report.head_seq > report.covered_seq:
        # The checkpoint event that ends an apply is not itself "uncovered": it carries
        # the signature over everything before it.
        report.warnings.append(
            f"events after seq {report.covered_seq} are not covered by a checkpoint"
        )
    return report


def _add(report: VerifyReport, entry: _Entry, kind: str, message: str) -> None:
    report.problems.append(Problem(entry.file, entry.line, kind, message))


class _Head(NamedTuple):
    """The chain's head so far: the last event that extended it."""

    seq: int
    hash: str
    at: int
    """Its index in the entries; -1 before the first event."""


def _walk(entries: list[_Entry], torn_end: bool, report: VerifyReport, key: str | None) -> None:
    first_at = _first_positions(entries)
    head = _anchor(entries, report)
    if key is None:
        report.warnings.append("no audit public key: checkpoint signatures were not checked")
    for i, e in enumerate(entries):
        if e.body is None or e.digest is None:
            _check_unparsed(entries, i, torn_end, report)
            continue
        if _is_duplicate(entries, i, first_at, report):
            continue
        advance = _check_link(entries, i, first_at, head, report)
        _check_kind(e, report, key)
        seq = e.body["seq"]
        if advance:
            head = _Head(seq, e.digest, i)
        report.events += 1
        if e.body["request_id"] is not None:
            report.request_last_seq[str(e.body["request_id"])] = seq
    report.head_seq, report.head_hash = head.seq, head.hash


def _first_positions(entries: list[_Entry]) -> dict[str, int]:
    """Map each event hash to the index of its first line (later ones are duplicates)."""
    first_at: dict[str, int] = {}
    for i, e in enumerate(entries):
        if e.digest is not None and e.digest not in first_at:
            first_at[e.digest] = i
    return first_at


def _anchor(entries: list[_Entry], report: VerifyReport) -> _Head:
    """Where the chain starts: genesis, or the segment-start event of a pruned log."""
    first = next((x.body for x in entries if x.body is not None), None)
    if first is None or first["kind"] != KIND_SEGMENT_START:
        return _Head(0, GENESIS_HASH, -1)
    # Older segments were pruned: the chain is anchored by the segment-start event.
    if first["prev_hash"] != GENESIS_HASH:
        report.warnings.append(f"chain starts at seq {first['seq']} (older segments not present)")
    return _Head(first["seq"] - 1, first["prev_hash"], -1)


def _is_duplicate(
    entries: list[_Entry], i: int, first_at: dict[str, int], report: VerifyReport
) -> bool:
    """Report a line whose content changed, or a repeat of an earlier line (True: skip it)."""
    e = entries[i]
    assert e.digest is not None
    if not e.hash_ok:
        _add(report, e, "modified", "line does not match its event_hash (content changed)")
        return False
    j = first_at[e.digest]
    if j == i:
        return False
    other = entries[j]
    _add(report, e, "duplicated", f"duplicate of line {other.line} ({other.file})")
    return True


def _check_link(
    entries: list[_Entry], i: int, first_at: dict[str, int], head: _Head, report: VerifyReport
) -> bool:
    """Check that line ``i`` extends the head; return whether it becomes the new head."""
    e = entries[i]
    assert e.body is not None
    seq, prev = e.body["seq"], e.body["prev_hash"]
    if prev == head.hash:
        if seq != head.seq + 1:
            _add(report, e, "sequence", f"seq {seq} follows seq {head.seq}")
        return True
    j = first_at.get(prev)
    if j is not None and j > i:
        message = f"comes before its predecessor at line {entries[j].line}"
        _add(report, e, "reordered", message)
        return bool(seq > head.seq)
    if j is not None and j < i:
        return _check_earlier_predecessor(entries, i, j, head, report)
    return _check_missing_predecessor(entries, i, head, report)


def _check_earlier_predecessor(
    entries: list[_Entry], i: int, j: int, head: _Head, report: VerifyReport
) -> bool:
    """Line ``i`` links back to line ``j``: it was moved down, or lines were slipped in."""
    e = entries[i]
    assert e.body is not None
    later = [k for k in range(j + 1, i) if _prev_of(entries[k]) == e.digest]
    if later:
        message = f"comes after its successor at line {entries[later[0]].line}"
        _add(report, e, "reordered", message)
        return bool(e.body["seq"] > head.seq)
    for k in range(j + 1, i):
        if not any(
            p.file == entries[k].file and p.line == entries[k].line for p in report.problems
        ):
            _add(
                report,
                entries[k],
                "inserted",
                f"not part of the chain (line {e.line} links to line {entries[j].line})",
            )
    return True


def _check_missing_predecessor(
    entries: list[_Entry], i: int, head: _Head, report: VerifyReport
) -> bool:
    """Line ``i`` links to no line before it: it is an intruder, or lines are missing."""
    e = entries[i]
    assert e.body is not None
    seq = e.body["seq"]
    if _links_later(entries, i, head.hash):
        # The chain resumes after this line from the head before it: an intruder.
        _add(report, e, "inserted", "not part of the chain (the next line skips it)")
        return False
    if seq == head.seq + 1 and head.at >= 0 and entries[head.at].hash_ok:
        message = f"line was rewritten: line {e.line} links to a different hash"
        _add(report, entries[head.at], "modified", message)
    elif seq > head.seq + 1:
        message = f"events seq {head.seq + 1}..{seq - 1} are missing before this line"
        _add(report, e, "deleted", message)
    else:
        _add(report, e, "deleted", "the event this line links to is missing")
    return True


def _check_kind(e: _Entry, report: VerifyReport, key: str | None) -> None:
    """Check what the chain's special events carry: checkpoints and segment starts."""
    assert e.body is not None
    kind = e.body["kind"]
    if kind == KIND_CHECKPOINT:
        _check_checkpoint(e, report, key)
    elif (
        kind == KIND_SEGMENT_START
        and e.body["details"].get("previous_head_hash") != e.body["prev_hash"]
    ):
        _add(report, e, "modified", "segment-start does not carry its previous head")


def _links_later(entries: list[_Entry], i: int, head_hash: str) -> bool:
    # Look a short way ahead: insertions are found next to where they were made.
    return any(_prev_of(x) == head_hash for x in entries[i + 1 : i + 64])


def _prev_of(entry: _Entry) -> str | None:
    return None if entry.body is None else str(entry.body["prev_hash"])


def _check_unparsed(entries: list[_Entry], i: int, torn_end: bool, report: VerifyReport) -> None:
    e = entries[i]
    nxt = entries[i + 1] if i + 1 < len(entries) else None
    if nxt is not None and nxt.body is not None and nxt.body["kind"] == KIND_RECOVERED_TAIL:
        details = nxt.body["details"]
        if details.get("torn_sha256") == sha256_hex(e.raw) and details.get("torn_length") == len(
            e.raw
        ):
            return  # a crash artefact, recorded by the writer
    if torn_end and i == len(entries) - 1:
        _add(report, e, "torn-tail", "incomplete last line (not yet recorded by the writer)")
        return
    _add(report, e, "malformed", e.error or "not an audit event")


def _check_checkpoint(e: _Entry, report: VerifyReport, key: str | None) -> None:
    assert e.body is not None
    doc = e.body["details"]
    cp = doc.get("checkpoint") if isinstance(doc, dict) else None
    if not isinstance(cp, dict):
        _add(report, e, "checkpoint", "checkpoint event without a checkpoint")
        return
    if key is not None and not verify_checkpoint(doc, key):
        _add(report, e, "checkpoint", "checkpoint signature does not verify with the audit key")
        return
    if cp.get("seq") != e.body["seq"] - 1 or cp.get("head_hash") != e.body["prev_hash"]:
        _add(
            report,
            e,
            "checkpoint",
            f"checkpoint signs head seq {cp.get('seq')} {str(cp.get('head_hash'))[:16]}..., "
            "but the chain before it differs (earlier lines were rewritten)",
        )
        return
    report.checkpoints += 1
    if key is not None:
        report.last_checkpoint_seq = max(report.last_checkpoint_seq, int(cp["seq"]))
        report.covered_seq = max(report.covered_seq, int(e.body["seq"]))


def _check_witness(
    entries: list[_Entry],
    ends: list[tuple[str, int]],
    witness: Path,
    report: VerifyReport,
    key: str | None,
) -> None:
    doc, problems = read_witness(witness, key)
    for message in problems:
        report.problems.append(Problem(witness.name, 0, "witness", message))
    if doc is None:
        if not problems:
            report.problems.append(Problem(witness.name, 0, "witness", "no checkpoint in witness"))
        return
    cp = doc["checkpoint"]
    report.witness_seq = cp["seq"]
    last_file, last_line = ends[-1] if ends else (Path(report.path).name, 0)
    at_end = Problem(last_file, last_line + 1, "truncated", "")
    holders = [
        e for e in entries if e.body is not None and e.hash_ok and e.body["seq"] == cp["seq"]
    ]
    first_seq = min((e.body["seq"] for e in entries if e.body is not None), default=1)
    if cp["seq"] < first_seq:
        report.warnings.append(f"witness seq {cp['seq']} precedes the segments present")
        return
    if not holders:
        report.problems.append(
            Problem(
                at_end.file,
                at_end.line,
                "truncated",
                f"the witness checkpoint covers seq {cp['seq']}, but the log ends at seq "
                f"{report.head_seq} (line {last_line}): lines were removed from the end",
            )
        )
        return
    if not any(e.digest == cp["head_hash"] for e in holders):
        e = holders[0]
        _add(
            report,
            e,
            "witness-mismatch",
            f"seq {cp['seq']} has a different hash than the witness checkpoint",
        )
        return
    recorded = any(
        e.body is not None and e.body["kind"] == KIND_CHECKPOINT and e.body["details"] == doc
        for e in entries
    )
    if not recorded:
        report.problems.append(
            Problem(
                at_end.file,
                at_end.line,
                "truncated",
                f"the checkpoint of seq {cp['seq']} held by the witness is missing from the log",
            )
        )


def request_events_verify(
    path: Path,
    request_id: str,
    *,
    audit_public_key_hex: str,
    witness: Path | None = None,
) -> bool:
    """Return True when the log verifies and the request's events are all checkpointed.

    Used for the ``applied -> audited`` transition: the whole log must verify, the
    request must have at least one event, and a checkpoint signed by the trusted audit
    key must cover its last event (aegisd checkpoints at every apply).
    """
    try:
        report = verify(path, audit_public_key_hex=audit_public_key_hex, witness=witness)
    except InputError:
        return False
    last = report.request_last_seq.get(request_id)
    if not report.ok or last is None:
        return False
    return report.last_checkpoint_seq >= last


def default_public_key_path(etc_keys_dir: Path) -> Path:
    """Where the trusted audit public key lives (``<keys_dir>/audit.pub``, root-owned)."""
    return etc_keys_dir / "audit.pub"


def default_witness_path(aegisd_dir: Path) -> Path:
    """Where aegisd keeps its on-host witness file: its root-only directory, off the log.

    Members of ``aegis`` can read the log but cannot write here, so rolling back the
    log (and every copy they can write) still leaves this checkpoint behind. Fleets
    add a witness command that ships checkpoints off the host as well.
    """
    return aegisd_dir / "audit-witness.jsonl"


def read_public_key_hex(path: Path) -> str | None:
    """Return the hex key in a ``.pub`` file, or None when the file is absent or unreadable."""
    try:
        text = path.read_text(encoding="ascii").strip()
    except (OSError, UnicodeDecodeError):
        return None
    return text or None
