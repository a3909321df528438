"""Every audit event also goes to journald: the native protocol over a real datagram socket.

A test binds its own Unix datagram socket where journald's would be and reads what
arrives; journald being absent, or not reading, never blocks or fails an append, and
each lost copy is counted in ``<log>.journal``.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from aegis.audit.chain import AuditLog
from aegis.audit.journal import parse_entry, read_status, status_path_for


@pytest.fixture
def journal(tmp_path: Path) -> Iterator[tuple[Path, socket.socket]]:
    path = tmp_path / "journal.sock"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    sock.settimeout(5)
    yield path, sock
    sock.close()


def _log_lines(path: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_each_event_arrives_with_its_structured_fields(
    make_log: Callable[..., AuditLog], journal: tuple[Path, socket.socket]
) -> None:
    sock_path, sock = journal
    log = make_log(journal_socket=sock_path, checkpoint_every=2)
    log.append("apply-started", {"request_id": "req-1", "details": {"note": "a\nb"}})
    log.append("apply-finished", {"request_id": "req-1", "exit_status": 0})  # + a checkpoint
    received = [parse_entry(sock.recv(1 << 20)) for _ in range(3)]
    on_disk = _log_lines(log.path)
    assert len(on_disk) == 3
    for fields, line in zip(received, on_disk, strict=True):
        body = line["event"]
        assert isinstance(body, dict)
        assert fields["AEGIS_EVENT"].decode() == body["kind"]
        assert fields["AEGIS_SEQ"].decode() == str(body["seq"])
        assert fields["AEGIS_HASH"].decode() == line["event_hash"]
        assert fields["SYSLOG_IDENTIFIER"] == b"aegis-audit"
        # The whole event travels too, byte for byte as in the log (newlines included).
        assert json.loads(fields["AEGIS_EVENT_JSON"]) == line
    assert [f["AEGIS_EVENT"] for f in received] == [
        b"apply-started",
        b"apply-finished",
        b"checkpoint",
    ]
    assert received[0]["AEGIS_REQUEST"] == b"req-1"
    assert "AEGIS_REQUEST" not in received[2]  # a checkpoint belongs to no request
    assert b"request=req-1" in received[0]["MESSAGE"]
    assert not status_path_for(log.path).exists()  # nothing failed: no count file


def test_absent_journald_is_counted_and_the_append_still_lands(
    make_log: Callable[..., AuditLog], tmp_path: Path
) -> None:
    log = make_log(journal_socket=tmp_path / "no-journald.sock")
    log.append("note", {"details": {}})
    log.append("note", {"details": {}})
    assert len(_log_lines(log.path)) == 2
    status = read_status(status_path_for(log.path))
    assert status["failures"] == 2
    assert "no-journald.sock" in status["last_error"]
    log.close()
    # A restarted writer continues the count instead of starting again at 1.
    again = make_log(journal_socket=tmp_path / "no-journald.sock")
    again.append("note", {"details": {}})
    assert read_status(status_path_for(log.path))["failures"] == 3


def test_a_journald_that_stops_reading_never_blocks_an_append(
    make_log: Callable[..., AuditLog], journal: tuple[Path, socket.socket]
) -> None:
    sock_path, sock = journal
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    log = make_log(journal_socket=sock_path, checkpoint_every=1000)
    big = {"details": {"blob": "x" * 20000}}
    for _ in range(40):  # far more than the receiver's queue holds; nobody reads it
        log.append("note", big)
    assert len(_log_lines(log.path)) == 40
    assert read_status(status_path_for(log.path))["failures"] > 0
