"""The writer against real files and processes: torn tails, rotation, locking, witnesses."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from aegis.audit.chain import AuditLog, AuditTailError
from aegis.audit.event import decode_line
from aegis.audit.verify import request_events_verify, verify
from aegis.canonical import sha256_hex
from aegis.errors import InputError

REPO = Path(__file__).resolve().parents[3]


def _events(path: Path) -> list[dict[str, Any]]:
    out = []
    for raw in path.read_bytes().splitlines():
        try:
            out.append(decode_line(raw)[0])
        except InputError:
            out.append({"kind": "<unparsed>"})
    return out


def test_event_fields_and_file_mode(make_log: Callable[..., AuditLog]) -> None:
    log = make_log()
    event = log.append(
        "apply-finished",
        {
            "actor": {"uid": 0, "pid": 42, "signer": "alice", "approvers": ["bob"]},
            "request_id": "req-1",
            "execution_id": "exe-1",
            "decision": {"outcome": "allow", "rule_ids": ["R1"], "reasons": ["ok"]},
            "argv": ["/usr/bin/apt-get", "install", "--trivial-only", "--", "aegis-base=1.2"],
            "exit_status": 0,
            "output_hashes": {"stdout_sha256": "a" * 64},
            "snapshot": "snap-1",
        },
    )
    assert event["seq"] == 1
    assert event["details"] == {"snapshot": "snap-1"}
    assert event["time"] == "2026-01-01T00:00:00.001000Z"
    assert _events(log.path)[0] == {k: v for k, v in event.items() if k != "event_hash"}
    assert stat.S_IMODE(log.path.stat().st_mode) == 0o640


@pytest.mark.parametrize("kind", ["checkpoint", "recovered-tail", "segment-start", "Bad Kind"])
def test_reserved_and_invalid_kinds_are_refused(
    make_log: Callable[..., AuditLog], kind: str
) -> None:
    with pytest.raises(InputError):
        make_log().append(kind, {})


def test_float_fields_are_refused(make_log: Callable[..., AuditLog]) -> None:
    with pytest.raises(InputError, match="float"):
        make_log().append("note", {"exit_status": 1.5})


def test_torn_tail_is_recorded_not_dropped(
    make_log: Callable[..., AuditLog], audit_key: tuple[Any, str, Path]
) -> None:
    log = make_log()
    for i in range(3):
        log.append("note", {"request_id": f"r{i}"})
    log.close()
    torn = b'{"event":{"actor":{"approvers":[],"pi'
    offset = log.path.stat().st_size
    with log.path.open("ab") as f:  # a crash in the middle of a write
        f.write(torn)
    report = verify(log.path, audit_public_key_hex=audit_key[1])
    assert [(p.kind, p.line) for p in report.problems] == [("torn-tail", 4)]
    log2 = make_log()
    log2.append("note", {"request_id": "r3"})
    kinds = [e["kind"] for e in _events(log.path)]
    assert kinds == ["note", "note", "note", "<unparsed>", "recovered-tail", "note"]
    recovered = _events(log.path)[4]
    assert recovered["details"] == {
        "torn_sha256": sha256_hex(torn),
        "torn_length": len(torn),
        "torn_offset": offset,
    }
    assert recovered["seq"] == 4
    assert verify(log.path, audit_public_key_hex=audit_key[1]).ok


def test_complete_line_without_newline_is_adopted(make_log: Callable[..., AuditLog]) -> None:
    log = make_log()
    log.append("note", {})
    log.append("note", {})
    log.close()
    log.path.write_bytes(log.path.read_bytes()[:-1])
    make_log().append("note", {})
    assert [e["seq"] for e in _events(log.path)] == [1, 2, 3]


def test_writer_refuses_to_extend_a_tampered_tail(make_log: Callable[..., AuditLog]) -> None:
    log = make_log()
    log.append("note", {"request_id": "r1"})
    log.append("note", {"request_id": "r2"})
    log.path.write_bytes(log.path.read_bytes().replace(b'"r2"', b'"rX"'))
    with pytest.raises(AuditTailError):
        log.append("note", {})


def test_rotation_continues_the_chain(
    make_log: Callable[..., AuditLog], audit_key: tuple[Any, str, Path], tmp_path: Path
) -> None:
    witness = tmp_path / "w.jsonl"
    log = make_log(witness_file=witness, max_segment_bytes=4000)
    for i in range(20):
        log.append("note", {"request_id": f"r{i}"})
    segments = sorted(p.name for p in log.path.parent.glob("audit.jsonl.*"))
    assert len(segments) >= 2
    first_of_current = _events(log.path)[0]
    assert first_of_current["kind"] == "segment-start"
    report = verify(log.path, audit_public_key_hex=audit_key[1], witness=witness)
    assert report.ok, report.problems
    assert report.head_seq == _events(log.path)[-1]["seq"]
    # Deleting a middle segment breaks the chain at the first line of the next one.
    middle = log.path.parent / "audit.jsonl.2"
    middle.unlink()
    report = verify(log.path, audit_public_key_hex=audit_key[1], witness=witness)
    assert report.problems[0].kind == "deleted"
    assert report.problems[0].line == 1


def test_witness_command_receives_checkpoints(
    make_log: Callable[..., AuditLog], audit_key: tuple[Any, str, Path], tmp_path: Path
) -> None:
    sink = tmp_path / "sink.jsonl"
    cmd = [
        sys.executable,
        "-c",
        f"import sys; open({str(sink)!r}, 'ab').write(sys.stdin.buffer.read())",
    ]
    log = make_log(witness_cmd=cmd, checkpoint_every=2)
    for _ in range(4):
        log.append("note", {})
    docs = [json.loads(x) for x in sink.read_text().splitlines()]
    assert [d["checkpoint"]["seq"] for d in docs] == [2, 5]
    assert verify(log.path, audit_public_key_hex=audit_key[1], witness=sink).ok


def test_failing_witness_and_syslog_never_fail_the_append(
    make_log: Callable[..., AuditLog], tmp_path: Path
) -> None:
    log = make_log(witness_cmd=["/nonexistent/witness"], use_syslog=True, checkpoint_every=1)
    event = log.append("note", {})
    assert event["seq"] == 1
    assert _events(log.path)[-1]["kind"] == "checkpoint"


def test_request_events_verify(
    make_log: Callable[..., AuditLog], audit_key: tuple[Any, str, Path]
) -> None:
    log = make_log()
    log.append("apply-finished", {"request_id": "req-1"})
    pub = audit_key[1]
    assert not request_events_verify(log.path, "req-1", audit_public_key_hex=pub)  # unsigned yet
    log.checkpoint()
    assert request_events_verify(log.path, "req-1", audit_public_key_hex=pub)
    assert not request_events_verify(log.path, "req-2", audit_public_key_hex=pub)
    assert not request_events_verify(log.path, "req-1", audit_public_key_hex="ab" * 32)
    log.path.write_bytes(log.path.read_bytes().replace(b'"req-1"', b'"req-9"'))
    assert not request_events_verify(log.path, "req-9", audit_public_key_hex=pub)


_WORKER = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from aegis.audit.chain import AuditLog
    from aegis.sign.keys import load_signing_key
    log = AuditLog(Path(sys.argv[1]), load_signing_key(Path(sys.argv[2])), "h",
                   checkpoint_every=7, use_syslog=False, max_segment_bytes=60000)
    for i in range(int(sys.argv[3])):
        log.append("note", {"request_id": sys.argv[4] + str(i)})
    """
)


def test_concurrent_processes_are_serialised_by_the_lock(
    tmp_path: Path, audit_key: tuple[Any, str, Path]
) -> None:
    path = tmp_path / "log" / "audit.jsonl"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _WORKER, str(path), str(audit_key[2]), "60", f"p{n}-"],
            env=env,
        )
        for n in range(4)
    ]
    assert [p.wait(timeout=120) for p in procs] == [0, 0, 0, 0]
    report = verify(path, audit_public_key_hex=audit_key[1])
    assert report.ok, report.problems[:5]
    assert len(report.request_last_seq) == 240
    assert len(list(path.parent.glob("audit.jsonl.*"))) >= 1
