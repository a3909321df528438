"""Each kind of tampering with a real, fsync'd audit log is caught at the right line."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from aegis.audit.chain import AuditLog
from aegis.audit.event import decode_line, encode_event
from aegis.audit.verify import verify

Lines = list[bytes]


def _build(make_log: Callable[..., AuditLog], witness: Path) -> Path:
    """Lines 1-4 events, 5 checkpoint, 6-9 events, 10 checkpoint, 11-12 events, 13 checkpoint."""
    log = make_log(checkpoint_every=4, witness_file=witness)
    for i in range(10):
        log.append("apply-finished", {"request_id": f"req-{i}", "argv": ["/usr/bin/apt-get"]})
    log.checkpoint()
    return log.path


def _forge(lines: Lines, index: int, **changes: Any) -> bytes:
    """A self-consistent event built from line ``index`` (0-based) with ``changes``."""
    body, _ = decode_line(lines[index])
    body.update(changes)
    return encode_event(body)[0]


def _modify_in_place(lines: Lines) -> Lines:
    lines[2] = lines[2].replace(b'"req-2"', b'"req-X"')
    return lines


def _modify_and_rehash(lines: Lines) -> Lines:
    lines[2] = _forge(lines, 2, request_id="req-X")
    return lines


def _insert_linked(lines: Lines) -> Lines:
    _, h3 = decode_line(lines[2])
    lines.insert(3, _forge(lines, 3, request_id="req-evil", prev_hash=h3))
    return lines


def _insert_copy_with_new_seq(lines: Lines) -> Lines:
    lines.insert(3, _forge(lines, 0, seq=4, request_id="req-evil"))
    return lines


def _delete(lines: Lines) -> Lines:
    del lines[2]
    return lines


def _reorder(lines: Lines) -> Lines:
    lines[2], lines[3] = lines[3], lines[2]
    return lines


def _duplicate(lines: Lines) -> Lines:
    lines.insert(3, lines[2])
    return lines


def _relinked(lines: Lines, index: int, **changes: Any) -> Lines:
    """Line ``index`` (0-based) changed and every later line re-linked to it, re-hashed."""
    _, prev = decode_line(lines[index - 1])
    for i in range(index, len(lines)):
        body, _ = decode_line(lines[i])
        body.update(changes if i == index else {})
        body["prev_hash"] = prev
        lines[i], prev = encode_event(body)
    return lines


def _renumber_and_relink(lines: Lines) -> Lines:
    # Every hash and link holds; only the sequence numbers give the rewrite away.
    return _relinked(lines, 2, seq=2)


def _garbage(lines: Lines) -> Lines:
    lines.insert(2, b'{"event": "not really"}\n')
    return lines


CASES = [
    (_modify_in_place, "modified", 3),
    (_modify_and_rehash, "modified", 3),
    (_insert_linked, "inserted", 4),
    (_insert_copy_with_new_seq, "inserted", 4),
    (_delete, "deleted", 3),
    (_reorder, "reordered", 3),
    (_duplicate, "duplicated", 4),
    (_renumber_and_relink, "sequence", 3),
    (_garbage, "malformed", 3),
]


@pytest.mark.parametrize(
    ("tamper", "kind", "line"), CASES, ids=[c[0].__name__.strip("_") for c in CASES]
)
def test_tamper_is_caught_at_its_line(
    make_log: Callable[..., AuditLog],
    audit_key: tuple[Any, str, Path],
    tmp_path: Path,
    tamper: Callable[[Lines], Lines],
    kind: str,
    line: int,
) -> None:
    witness = tmp_path / "witness.jsonl"
    path = _build(make_log, witness)
    assert verify(path, audit_public_key_hex=audit_key[1], witness=witness).ok
    lines = path.read_bytes().splitlines(keepends=True)
    path.write_bytes(b"".join(tamper(lines)))
    report = verify(path, audit_public_key_hex=audit_key[1], witness=witness)
    assert not report.ok
    found = [(p.kind, p.line) for p in report.problems]
    assert (kind, line) in found, found
    assert report.problems[0].line == line, found
    assert all(p.file == "audit.jsonl" for p in report.problems)


def test_rewriting_the_whole_chain_is_caught_by_the_signed_checkpoint(
    make_log: Callable[..., AuditLog], audit_key: tuple[Any, str, Path], tmp_path: Path
) -> None:
    path = _build(make_log, tmp_path / "w.jsonl")
    lines = path.read_bytes().splitlines(keepends=True)
    # Rewrite line 3 and re-link every later line: hashes and links all look fine.
    prev = None
    out: Lines = []
    for i, line in enumerate(lines):
        body, digest = decode_line(line)
        if i == 2:
            body["request_id"] = "req-X"
        if prev is not None:
            body["prev_hash"] = prev
        encoded, digest = encode_event(body)
        out.append(encoded)
        prev = digest
    path.write_bytes(b"".join(out))
    report = verify(path, audit_public_key_hex=audit_key[1])
    assert (report.problems[0].kind, report.problems[0].line) == ("checkpoint", 5)


def test_forged_checkpoint_signature_is_caught(
    make_log: Callable[..., AuditLog], audit_key: tuple[Any, str, Path], tmp_path: Path
) -> None:
    path = _build(make_log, tmp_path / "w.jsonl")
    lines = path.read_bytes().splitlines(keepends=True)
    body, _ = decode_line(lines[4])
    body["details"]["checkpoint"]["time"] = "2030-01-01T00:00:00.000000Z"
    lines[4] = encode_event(body)[0]
    path.write_bytes(b"".join(lines))
    report = verify(path, audit_public_key_hex=audit_key[1])
    assert ("checkpoint", 5) in [(p.kind, p.line) for p in report.problems]


def test_truncation_is_caught_against_the_witness_even_when_every_copy_is_rolled_back(
    make_log: Callable[..., AuditLog], audit_key: tuple[Any, str, Path], tmp_path: Path
) -> None:
    """An aegis-group user rolls the log and its on-host copies back to line 10.

    The log then ends at a valid signed checkpoint, so the log alone looks fine; the
    witness held off the log (root-only or remote) still has the checkpoint of seq 12.
    """
    off_host = tmp_path / "off-host" / "witness.jsonl"
    off_host.parent.mkdir()
    path = _build(make_log, off_host)
    on_host_copy = tmp_path / "backup.jsonl"
    on_host_copy.write_bytes(path.read_bytes())
    lines = path.read_bytes().splitlines(keepends=True)
    assert len(lines) == 13
    for copy in (path, on_host_copy):
        copy.write_bytes(b"".join(lines[:10]))
    alone = verify(path, audit_public_key_hex=audit_key[1])
    assert alone.ok, alone.problems
    report = verify(path, audit_public_key_hex=audit_key[1], witness=off_host)
    assert [(p.kind, p.line) for p in report.problems] == [("truncated", 11)]
    assert report.witness_seq == 12


def test_dropping_only_the_last_checkpoint_line_is_caught_against_the_witness(
    make_log: Callable[..., AuditLog], audit_key: tuple[Any, str, Path], tmp_path: Path
) -> None:
    witness = tmp_path / "w.jsonl"
    path = _build(make_log, witness)
    lines = path.read_bytes().splitlines(keepends=True)
    path.write_bytes(b"".join(lines[:-1]))
    report = verify(path, audit_public_key_hex=audit_key[1], witness=witness)
    assert [(p.kind, p.line) for p in report.problems] == [("truncated", 13)]


def test_witness_rewritten_by_attacker_is_not_trusted(
    make_log: Callable[..., AuditLog], audit_key: tuple[Any, str, Path], tmp_path: Path
) -> None:
    witness = tmp_path / "w.jsonl"
    path = _build(make_log, witness)
    docs = [json.loads(x) for x in witness.read_text().splitlines()]
    docs[-1]["checkpoint"]["seq"] = 2
    witness.write_text("\n".join(json.dumps(d) for d in docs) + "\n")
    report = verify(path, audit_public_key_hex=audit_key[1], witness=witness)
    assert [p.kind for p in report.problems] == ["witness"]
    assert report.witness_seq == 9


def test_segment_start_that_does_not_carry_its_previous_head_is_caught(
    make_log: Callable[..., AuditLog], audit_key: tuple[Any, str, Path], tmp_path: Path
) -> None:
    """A segment-start re-hashed to claim another previous head (its link left alone)."""
    witness = tmp_path / "w.jsonl"
    log = make_log(witness_file=witness)
    log.append("apply-finished", {"request_id": "req-0"})
    log.rotate()
    log.append("apply-finished", {"request_id": "req-1"})
    assert verify(log.path, audit_public_key_hex=audit_key[1], witness=witness).ok
    lines = log.path.read_bytes().splitlines(keepends=True)
    body, _ = decode_line(lines[0])
    assert body["kind"] == "segment-start"
    body["details"]["previous_head_hash"] = "0" * 64
    lines[0] = encode_event(body)[0]
    log.path.write_bytes(b"".join(_relinked(lines, 1)))
    report = verify(log.path, audit_public_key_hex=audit_key[1], witness=witness)
    assert [(p.file, p.kind, p.line) for p in report.problems] == [("audit.jsonl", "modified", 1)]
