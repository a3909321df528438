"""Walk an audit log's hash chain line by line and say what broke it, and where.

Every event names the hash of the one before it (``prev_hash``), starting from
genesis or, when older segments were pruned, from the segment-start event that
carries the old head. :func:`walk_chain` follows that chain through the lines in
file order and keeps a head: the last event that extended it. For each line it
decides why the line does or does not extend the head, because "the chain is
broken" alone does not tell a reviewer which line to look at:

- a line whose body does not hash to its ``event_hash`` was ``modified``; one whose
  successor links to a hash no line has was rewritten with a fresh hash;
- a line with the same hash as an earlier one is ``duplicated`` and skipped;
- a line linking to a predecessor further down, or sitting after its successor,
  was ``reordered``;
- lines the chain steps over (the next line links past them) were ``inserted``;
- a jump over missing sequence numbers means lines were ``deleted``; a link that
  is right but a sequence number that is not is a ``sequence`` problem;
- a line that is not an event is ``malformed``, unless the writer recorded it as a
  torn tail (``recovered-tail``), or it is an unrecorded ``torn-tail`` at the end;
- a checkpoint must verify with the trusted audit key and sign the head right
  before it; a segment start must carry the previous head it links to.

The walk also counts events and checkpoints and records, per request, the last
sequence number (``applied -> audited`` needs it covered by a checkpoint). Reading
the files and checking the witness stay in :mod:`aegis.audit.verify`.

Example:
    >>> report = VerifyReport(path=str(path))
    >>> walk_chain(entries, torn_end=False, report=report, key=pub)
    >>> report.head_seq, [p.kind for p in report.problems]
"""

from __future__ import annotations

from typing import NamedTuple

from aegis.audit.checkpoints import verify_checkpoint
from aegis.audit.event import GENESIS_HASH, KIND_CHECKPOINT, KIND_RECOVERED_TAIL, KIND_SEGMENT_START
from aegis.audit.report import Entry, VerifyReport, add_problem
from aegis.canonical import sha256_hex


class _Head(NamedTuple):
    """The chain's head so far: the last event that extended it."""

    seq: int
    hash: str
    at: int
    """Its index in the entries; -1 before the first event."""


def walk_chain(entries: list[Entry], torn_end: bool, report: VerifyReport, key: str | None) -> None:
    """Check the chain over ``entries`` (every segment, in order) and fill ``report``.

    Args:
        entries: the lines of every segment, oldest first.
        torn_end: the last segment's last line has no newline.
        report: gets the problems, warnings, counts, head and per-request last seq.
        key: the trusted audit public key (hex); None leaves signatures unchecked.
    """
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


def _first_positions(entries: list[Entry]) -> dict[str, int]:
    """Map each event hash to the index of its first line (later ones are duplicates)."""
    first_at: dict[str, int] = {}
    for i, e in enumerate(entries):
        if e.digest is not None and e.digest not in first_at:
            first_at[e.digest] = i
    return first_at


def _anchor(entries: list[Entry], report: VerifyReport) -> _Head:
    """Where the chain starts: genesis, or the segment-start event of a pruned log."""
    first = next((x.body for x in entries if x.body is not None), None)
    if first is None or first["kind"] != KIND_SEGMENT_START:
        return _Head(0, GENESIS_HASH, -1)
    # Older segments were pruned: the chain is anchored by the segment-start event.
    if first["prev_hash"] != GENESIS_HASH:
        report.warnings.append(f"chain starts at seq {first['seq']} (older segments not present)")
    return _Head(first["seq"] - 1, first["prev_hash"], -1)


def _is_duplicate(
    entries: list[Entry], i: int, first_at: dict[str, int], report: VerifyReport
) -> bool:
    """Report a line whose content changed, or a repeat of an earlier line (True: skip it)."""
    e = entries[i]
    assert e.digest is not None
    if not e.hash_ok:
        add_problem(report, e, "modified", "line does not match its event_hash (content changed)")
        return False
    j = first_at[e.digest]
    if j == i:
        return False
    other = entries[j]
    add_problem(report, e, "duplicated", f"duplicate of line {other.line} ({other.file})")
    return True


def _check_link(
    entries: list[Entry], i: int, first_at: dict[str, int], head: _Head, report: VerifyReport
) -> bool:
    """Check that line ``i`` extends the head; return whether it becomes the new head."""
    e = entries[i]
    assert e.body is not None
    seq, prev = e.body["seq"], e.body["prev_hash"]
    if prev == head.hash:
        if seq != head.seq + 1:
            add_problem(report, e, "sequence", f"seq {seq} follows seq {head.seq}")
        return True
    j = first_at.get(prev)
    if j is not None and j > i:
        message = f"comes before its predecessor at line {entries[j].line}"
        add_problem(report, e, "reordered", message)
        return bool(seq > head.seq)
    if j is not None and j < i:
        return _check_earlier_predecessor(entries, i, j, head, report)
    return _check_missing_predecessor(entries, i, head, report)


def _check_earlier_predecessor(
    entries: list[Entry], i: int, j: int, head: _Head, report: VerifyReport
) -> bool:
    """Line ``i`` links back to line ``j``: it was moved down, or lines were slipped in."""
    e = entries[i]
    assert e.body is not None
    later = [k for k in range(j + 1, i) if _prev_of(entries[k]) == e.digest]
    if later:
        message = f"comes after its successor at line {entries[later[0]].line}"
        add_problem(report, e, "reordered", message)
        return bool(e.body["seq"] > head.seq)
    for k in range(j + 1, i):
        if not any(
            p.file == entries[k].file and p.line == entries[k].line for p in report.problems
        ):
            add_problem(
                report,
                entries[k],
                "inserted",
                f"not part of the chain (line {e.line} links to line {entries[j].line})",
            )
    return True


def _check_missing_predecessor(
    entries: list[Entry], i: int, head: _Head, report: VerifyReport
) -> bool:
    """Line ``i`` links to no line before it: it is an intruder, or lines are missing."""
    e = entries[i]
    assert e.body is not None
    seq = e.body["seq"]
    if _links_later(entries, i, head.hash):
        # The chain resumes after this line from the head before it: an intruder.
        add_problem(report, e, "inserted", "not part of the chain (the next line skips it)")
        return False
    if seq == head.seq + 1 and head.at >= 0 and entries[head.at].hash_ok:
        message = f"line was rewritten: line {e.line} links to a different hash"
        add_problem(report, entries[head.at], "modified", message)
    elif seq > head.seq + 1:
        message = f"events seq {head.seq + 1}..{seq - 1} are missing before this line"
        add_problem(report, e, "deleted", message)
    else:
        add_problem(report, e, "deleted", "the event this line links to is missing")
    return True


def _check_kind(e: Entry, report: VerifyReport, key: str | None) -> None:
    """Check what the chain's special events carry: checkpoints and segment starts."""
    assert e.body is not None
    kind = e.body["kind"]
    if kind == KIND_CHECKPOINT:
        _check_checkpoint(e, report, key)
    elif (
        kind == KIND_SEGMENT_START
        and e.body["details"].get("previous_head_hash") != e.body["prev_hash"]
    ):
        add_problem(report, e, "modified", "segment-start does not carry its previous head")


def _links_later(entries: list[Entry], i: int, head_hash: str) -> bool:
    # Look a short way ahead: insertions are found next to where they were made.
    return any(_prev_of(x) == head_hash for x in entries[i + 1 : i + 64])


def _prev_of(entry: Entry) -> str | None:
    return None if entry.body is None else str(entry.body["prev_hash"])


def _check_unparsed(entries: list[Entry], i: int, torn_end: bool, report: VerifyReport) -> None:
    e = entries[i]
    nxt = entries[i + 1] if i + 1 < len(entries) else None
    if nxt is not None and nxt.body is not None and nxt.body["kind"] == KIND_RECOVERED_TAIL:
        details = nxt.body["details"]
        if details.get("torn_sha256") == sha256_hex(e.raw) and details.get("torn_length") == len(
            e.raw
        ):
            return  # a crash artefact, recorded by the writer
    if torn_end and i == len(entries) - 1:
        add_problem(report, e, "torn-tail", "incomplete last line (not yet recorded by the writer)")
        return
    add_problem(report, e, "malformed", e.error or "not an audit event")


def _check_checkpoint(e: Entry, report: VerifyReport, key: str | None) -> None:
    assert e.body is not None
    doc = e.body["details"]
    cp = doc.get("checkpoint") if isinstance(doc, dict) else None
    if not isinstance(cp, dict):
        add_problem(report, e, "checkpoint", "checkpoint event without a checkpoint")
        return
    if key is not None and not verify_checkpoint(doc, key):
        add_problem(
            report, e, "checkpoint", "checkpoint signature does not verify with the audit key"
        )
        return
    if cp.get("seq") != e.body["seq"] - 1 or cp.get("head_hash") != e.body["prev_hash"]:
        add_problem(
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
