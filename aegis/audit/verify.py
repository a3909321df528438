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

This module reads the segments and checks the witness; the line-by-line chain walk
is :mod:`aegis.audit.walk`, and :class:`VerifyReport` and :class:`Problem` live in
:mod:`aegis.audit.report` (importable from here as before).

Example:
    >>> report = verify(Path("/var/log/aegis/audit.jsonl"), audit_public_key_hex=pub)
    >>> report.ok, [p.line for p in report.problems]
"""

from __future__ import annotations

import gc
from pathlib import Path
from typing import Any

from aegis.audit.chain import segment_paths
from aegis.audit.checkpoints import read_witness
from aegis.audit.event import (
    KIND_CHECKPOINT,
    KIND_RECOVERED_TAIL,
    KIND_SEGMENT_START,
    LineError,
    LineHashError,
    decode_line,
)
from aegis.audit.report import Entry, Problem, VerifyReport, add_problem
from aegis.audit.walk import walk_chain
from aegis.errors import InputError

__all__ = [
    "Problem",
    "VerifyReport",
    "default_public_key_path",
    "default_witness_path",
    "legacy_witness_path",
    "read_public_key_hex",
    "request_events_verify",
    "verify",
]


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


def _read_entries(files: list[Path]) -> tuple[list[Entry], list[tuple[str, int]], bool]:
    entries: list[Entry] = []
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
        name = path.name
        for number, raw in enumerate(lines, start=1):
            try:
                body, digest = decode_line(raw)
                entries.append(Entry(name, number, b"", _slim(body), digest, True))
            except LineHashError as e:
                entries.append(Entry(name, number, b"", _slim(e.body), e.claimed, False))
            except LineError as e:
                entries.append(Entry(name, number, raw, None, None, False, e.message))
        ends.append((name, len(lines)))
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
        walk_chain(entries, torn_end, report, audit_public_key_hex)
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


def _check_witness(
    entries: list[Entry],
    ends: list[tuple[str, int]],
    witness: Path,
    report: VerifyReport,
    key: str | None,
) -> None:
    doc, problems = read_witness(witness, key)
    for message in problems:
        report.problems.append(Problem(witness.name, 0, "witness", message))
    if doc is None:
        if not problems and report.checkpoints:
            # Checkpoints in the log were each copied to the witness: an empty one lost them.
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
        add_problem(
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


def default_witness_path(log_dir: Path) -> Path:
    """Where aegisd copies each signed checkpoint by default: ``<log_dir>/audit-witness.jsonl``.

    Off the log (its own file, never rotated with it), in the directory only root
    writes and group ``aegis`` reads (0750 root:aegis), so every member's verify checks
    truncation (:mod:`aegis.audit.witness`). Fleets add a witness command that ships
    checkpoints off the host as well.
    """
    return log_dir / "audit-witness.jsonl"


def legacy_witness_path(aegisd_dir: Path) -> Path:
    """The default before the witness became group-readable (aegisd moves it on start)."""
    return aegisd_dir / "audit-witness.jsonl"


def read_public_key_hex(path: Path) -> str | None:
    """Return the hex key in a ``.pub`` file, or None when the file is absent or unreadable."""
    try:
        text = path.read_text(encoding="ascii").strip()
    except (OSError, UnicodeDecodeError):
        return None
    return text or None
