"""Pure and local parts of aegisd: frames, requests, the ledger, drift, peers."""

from __future__ import annotations

import os
import socket
import sqlite3
import threading
from pathlib import Path

import pytest

from aegis.ecosystems.apt.dpkg import parse_dpkg_query
from aegis.ecosystems.apt.drift import compare_with_delta
from aegis.errors import StateError
from aegis.execute import protocol
from aegis.execute.ledger import Ledger, ReplayError
from aegis.execute.peer import PeerCredentials, may_submit, peer_credentials
from aegis.execute.runner import check_argv
from aegis.model import Action
from aegis.sign.execution_plan import ExactTarget


def test_frame_round_trip_over_a_socketpair() -> None:
    a, b = socket.socketpair()
    with a, b:
        a.sendall(protocol.encode_frame({"b": 1, "a": "x"}))
        assert protocol.read_frame(b, timeout_s=2) == {"a": "x", "b": 1}


@pytest.mark.parametrize(
    ("payload", "match"),
    [
        (b"\x00\x00\x10\x00", "exceeds"),
        (b"\x00\x00\x00\x05{nope", "malformed"),
        (b"\x00\x00\x00\x0d" + b'{"a":1,"a":2}', "duplicate"),
        (b"\x00\x00\x00\x05{}", "too slow"),
    ],
    ids=["oversized", "not-json", "duplicate-key", "truncated-late"],
)
def test_bad_frames(payload: bytes, match: str) -> None:
    a, b = socket.socketpair()
    with a, b:
        a.sendall(payload)
        with pytest.raises(protocol.ProtocolError, match=match):
            protocol.read_frame(b, max_bytes=1024, timeout_s=0.3)


@pytest.mark.parametrize(
    "data",
    [
        {"schema_version": "x", "op": "ping"},
        {"schema_version": protocol.REQUEST_SCHEMA, "op": "rm"},
        {"schema_version": protocol.REQUEST_SCHEMA, "op": "apply"},
        {"schema_version": protocol.REQUEST_SCHEMA, "op": "revoke", "execution_id": "a"},
        {"schema_version": protocol.REQUEST_SCHEMA, "op": "ping", "key": "k"},
        {"schema_version": protocol.REQUEST_SCHEMA, "op": "status", "execution_id": 1},
        # An id no signer draws: a typo must not read "revoked", nor escapes reach the log.
        {
            "schema_version": protocol.REQUEST_SCHEMA,
            "op": "revoke",
            "execution_id": "../\x1b[2J",
            "reason": "r",
        },
        {"schema_version": protocol.REQUEST_SCHEMA, "op": "status", "execution_id": "A" * 32},
    ],
    ids=[
        "schema",
        "op",
        "apply-no-plan",
        "revoke-no-reason",
        "client-key",
        "wrong-type",
        "revoke-bad-id",
        "status-upper-id",
    ],
)
def test_requests_parse_strictly(data: dict) -> None:  # type: ignore[type-arg]
    with pytest.raises(protocol.ProtocolError):
        protocol.parse_request(data)


def test_ledger_burns_ids_durably(tmp_path: Path) -> None:
    led = Ledger(tmp_path / "aegisd" / "ledger.db")
    assert os.stat(led.path).st_mode & 0o777 == 0o600
    assert os.stat(led.path.parent).st_mode & 0o777 == 0o700
    led.record_started("x1", request_id="r", plan_hash="h", peer_uid=0, peer_pid=1, now="t0")
    with pytest.raises(ReplayError):
        led.record_started("x1", request_id="r", plan_hash="h", peer_uid=0, peer_pid=1, now="t1")
    led.record_finished("x1", exit_status=0, outcome="succeeded", now="t2")
    with pytest.raises(StateError):
        led.record_finished("x1", exit_status=0, outcome="succeeded", now="t3")
    with pytest.raises(StateError, match="cannot be revoked"):
        led.revoke("x1", reason="late", by_uid=0, now="t4")
    assert led.revoke("x2", reason="r", by_uid=0, now="t").state == "revoked"
    assert led.revoke("x2", reason="again", by_uid=0, now="t").reason == "r"
    with pytest.raises(ReplayError):
        led.record_started("x2", request_id=None, plan_hash=None, peer_uid=0, peer_pid=1, now="t")
    # A fresh handle (a restarted daemon) sees the same rows.
    again = Ledger(led.path)
    assert [(e.execution_id, e.state) for e in again.entries()] == [
        ("x1", "finished"),
        ("x2", "revoked"),
    ]
    with sqlite3.connect(led.path) as db:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "delete"
    db.close()


def test_concurrent_starts_of_one_id_only_one_wins(tmp_path: Path) -> None:
    led = Ledger(tmp_path / "ledger.db")
    wins: list[int] = []

    def start(i: int) -> None:
        try:
            led.record_started(
                "same", request_id=None, plan_hash=None, peer_uid=0, peer_pid=i, now="t"
            )
            wins.append(i)
        except ReplayError:
            pass

    threads = [threading.Thread(target=start, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(wins) == 1


def test_drift_compares_exactly_the_delta() -> None:
    targets = [
        ExactTarget("a", "all", Action.INSTALL, "1.0"),
        ExactTarget("b", "all", Action.REMOVE, "2.0"),
    ]
    before = {"b:all": ("2.0", "installed"), "c:all": ("1", "installed")}
    good = {"a:all": ("1.0", "installed"), "c:all": ("1", "installed")}
    assert compare_with_delta(before, good, targets) == []
    bad = {
        "a:all": ("1.1", "installed"),
        "b:all": ("2.0", "installed"),
        "d:all": ("9", "installed"),
    }
    drift = compare_with_delta(before, bad, targets)
    assert any(d.startswith("a: expected 1.0") for d in drift)
    assert any(d.startswith("b: expected removed") for d in drift)
    assert any(d.startswith("c:all: not in the signed delta") for d in drift)
    assert any(d.startswith("d:all: not in the signed delta") for d in drift)


def test_dpkg_query_parse_skips_not_installed() -> None:
    text = "a\tall\t1.0\tinstalled\nb\tamd64\t2\tnot-installed\nc\tall\t3\tconfig-files\nbad\n"
    assert parse_dpkg_query(text) == {"a:all": ("1.0", "installed"), "c:all": ("3", "config-files")}


@pytest.mark.parametrize(
    "argv", [(), ("apt-get", "install"), ("/usr/bin/x", "a\x00b")], ids=["empty", "relative", "nul"]
)
def test_argv_refused(argv: tuple[str, ...]) -> None:
    from aegis.errors import InputError

    with pytest.raises(InputError):
        check_argv(argv)


def test_peer_credentials_and_groups() -> None:
    a, b = socket.socketpair(socket.AF_UNIX)
    with a, b:
        creds = peer_credentials(a)
    assert creds.pid == os.getpid()
    assert creds.uid == os.getuid()
    assert creds.gid in creds.groups
    outsider = PeerCredentials(pid=1, uid=65534, gid=65534, groups=(65534,), user="nobody")
    member = PeerCredentials(pid=1, uid=1000, gid=1000, groups=(1000, 4242), user="ops")
    assert not may_submit(outsider, apply_gid=4242)
    assert not may_submit(outsider, apply_gid=None)
    assert may_submit(member, apply_gid=4242)  # supplementary membership counts
    assert may_submit(PeerCredentials(1, 0, 0, (0,), "root"), apply_gid=None)
