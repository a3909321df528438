"""Attacks on aegisd stopped before anything runs: each refused by name and audited."""

from __future__ import annotations

import json
import os
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from aegis.devtools.sample_plans import sample_plan
from aegis.execute.ledger import Ledger
from aegis.execute.protocol import Request, call
from aegis.sign.approvals import build_approval

from .conftest import REPO, sign_plan

pytestmark = pytest.mark.root


def _refused(daemon, answer, code: str) -> None:  # type: ignore[no-untyped-def]
    assert answer.ok is False, answer
    assert answer.refusal == code, answer
    last = daemon.audit_events()[-1]
    assert last["kind"] == "apply-refused"
    assert last["decision"]["rule_ids"] == [code]
    assert Ledger(daemon.cfg.ledger_path).entries() == [] or code in (
        "refused:replayed",
        "refused:revoked",
    )


def test_no_keys_starts_and_refuses_saying_why(make_daemon, key_set) -> None:  # type: ignore[no-untyped-def]
    d = make_daemon(trusted=False)
    ping = call(str(d.socket), Request(op="ping"))
    assert "no trusted execution-plan signer key" in ping.message
    data = sign_plan(d.cfg, sample_plan("p1"), key_set.signer)
    _refused(d, d.submit(data), "refused:no-trusted-keys")


def _flip(data: bytes, old: bytes, new: bytes) -> bytes:
    assert old in data
    return data.replace(old, new, 1)


@pytest.mark.parametrize(
    ("attack", "code"),
    [
        ("changed-byte", "refused:signature"),
        ("whitespace", "refused:malformed"),
        ("duplicate-key", "refused:malformed"),
        ("untrusted-key", "refused:signature"),
        ("other-host", "refused:host"),
        ("expired", "refused:expired"),
        ("future", "refused:not-yet-valid"),
        ("approval-by-signer", "refused:approvals"),
        ("approval-other-plan", "refused:approvals"),
        # Edited after signing; the same attacks by a trusted signer: test_attack_table.
        ("decision-edited-to-allow", "refused:signature"),
        ("o-option-inserted", "refused:signature"),
    ],
    ids=lambda v: v,
)
def test_attack_refused_before_running(make_daemon, key_set, attack: str, code: str) -> None:  # type: ignore[no-untyped-def]
    from dataclasses import replace

    from aegis.model import Host

    d = make_daemon()
    cfg = d.cfg
    plan = sample_plan("p1")
    now = datetime.now(UTC)
    if attack == "changed-byte":
        data = _flip(sign_plan(cfg, plan, key_set.signer), b"aegis-base_1.0_", b"aegis-base_1.2_")
    elif attack == "whitespace":
        data = b" " + sign_plan(cfg, plan, key_set.signer)
    elif attack == "duplicate-key":
        data = _flip(
            sign_plan(cfg, plan, key_set.signer),
            b'{"approvals":[],',
            b'{"approvals":[],"approvals":[],',
        )
    elif attack == "untrusted-key":
        data = sign_plan(cfg, plan, key_set.other)
    elif attack == "other-host":
        from aegis.ecosystems.apt.argv import derive_argv
        from aegis.sign.execution_plan import (
            PolicyBinding,
            build_execution_plan,
            execution_plan_bytes,
        )

        other = replace(plan, host=Host("f" * 32, "elsewhere"))
        ep = build_execution_plan(
            execution_id="a" * 32,
            request_id=None,
            plan=other,
            policy=PolicyBinding("1" * 64, "allow", "t", (), 0, (), ()),
            review_hash=None,
            approvals=(),
            argv=derive_argv(other),
            now=now,
            expires_in=timedelta(hours=1),
            signer_id="alice",
            key=key_set.signer,
        )
        data = execution_plan_bytes(ep)
    elif attack == "expired":
        data = sign_plan(cfg, plan, key_set.signer, now=now - timedelta(hours=2))
    elif attack == "future":
        data = sign_plan(cfg, plan, key_set.signer, now=now + timedelta(hours=2))
    elif attack in ("approval-by-signer", "approval-other-plan"):
        from aegis.execute.apply import this_host
        from aegis.model import plan_hash
        from aegis.sign.execution_plan import PolicyBinding

        bound = replace(plan, host=this_host(cfg))
        approver = key_set.signer if attack == "approval-by-signer" else key_set.approver
        approval = build_approval(
            plan_id="p1",
            plan_hash=plan_hash(bound) if attack == "approval-by-signer" else "2" * 64,
            policy_hash="1" * 64,
            approver_id="bob",
            role="approver",
            reason="ok",
            now=now,
            expires_in=timedelta(hours=1),
            key=approver,
        )
        policy = PolicyBinding("1" * 64, "require-approval", "t", ("approval",), 1, (), ())
        data = sign_plan(cfg, plan, key_set.signer, approvals=(approval,), policy=policy)
    elif attack == "decision-edited-to-allow":
        from aegis.sign.execution_plan import PolicyBinding

        policy = PolicyBinding("1" * 64, "require-approval", "t", (), 0, (), ("x.deny",))
        data = _flip(
            sign_plan(cfg, plan, key_set.signer, policy=policy),
            b'"decision":"require-approval"',
            b'"decision":"allow"',
        )
    else:  # o-option-inserted: an extra -o option inserted after signing
        data = _flip(
            sign_plan(cfg, plan, key_set.signer),
            b'"install",',
            b'"install","-o","APT::Get::AllowUnauthenticated=1",',
        )
    _refused(d, d.submit(data), code)


def test_revoked_and_replayed_ids_refused_also_after_restart(make_daemon, key_set) -> None:  # type: ignore[no-untyped-def]
    d = make_daemon()
    revoked = sign_plan(d.cfg, sample_plan("p1"), key_set.signer, execution_id="b" * 32)
    answer = call(str(d.socket), Request(op="revoke", execution_id="b" * 32, reason="window"))
    assert answer.ok
    assert answer.state == "revoked"
    _refused(d, d.submit(revoked), "refused:revoked")
    # A used id (as aegisd records it before running) stays used across restarts...
    Ledger(d.cfg.ledger_path).record_started(
        "c" * 32, request_id=None, plan_hash=None, peer_uid=0, peer_pid=1, now="t"
    )
    used = sign_plan(d.cfg, sample_plan("p1"), key_set.signer, execution_id="c" * 32)
    d.stop()
    # ...and editing the neighbouring (group-writable) store cannot unburn it.
    store = d.cfg.store_path
    store.parent.mkdir(parents=True, exist_ok=True)
    import sqlite3

    with sqlite3.connect(store) as db:
        db.execute("CREATE TABLE IF NOT EXISTS executions (execution_id TEXT, state TEXT)")
        db.execute("DELETE FROM executions")
    db.close()
    d.start()
    _refused(d, d.submit(used), "refused:replayed")
    _refused(d, d.submit(revoked), "refused:revoked")


def test_caller_not_in_aegis_apply_refused(make_daemon, key_set, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    d = make_daemon(config='socket_mode = "0666"\n')
    data = sign_plan(d.cfg, sample_plan("p1"), key_set.signer)
    plan_file = d.socket.parent / f"ep-{os.getpid()}.json"
    plan_file.write_bytes(data)
    plan_file.chmod(0o644)
    script = (
        "import sys; sys.path.insert(0, sys.argv[3])\n"
        "from aegis.execute.protocol import call, Request\n"
        "a = call(sys.argv[1], Request(op='apply', execution_plan=open(sys.argv[2]).read()))\n"
        "print(a.refusal)\n"
    )
    # uid 65534 may not read the checkout or its .venv (a clone under /root is 0700): it runs
    # the system Python on a copy of the package (the protocol client is stdlib-only).
    public = Path(tempfile.mkdtemp(prefix="aegis-client-"))
    public.chmod(0o755)
    shutil.copytree(REPO / "aegis", public / "aegis", ignore=shutil.ignore_patterns("__pycache__"))
    proc = subprocess.run(
        [
            "setpriv",
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            os.path.realpath(sys.executable),
            "-I",
            "-c",
            script,
            str(d.socket),
            str(plan_file),
            str(public),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        cwd="/",
        check=False,
    )
    plan_file.unlink()
    shutil.rmtree(public)
    assert proc.stdout.strip() == "refused:peer", proc.stderr
    last = d.audit_events()[-1]
    assert last["kind"] == "apply-refused"
    assert last["decision"]["rule_ids"] == ["refused:peer"]
    # The kernel's view of the peer (SO_PEERCRED), not anything the client claimed.
    assert last["actor"]["uid"] == 65534
    assert last["actor"]["pid"] > 0
    assert Ledger(d.cfg.ledger_path).entries() == []


def _raw(path: Path, payload: bytes) -> dict:  # type: ignore[type-arg]
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(str(path))
    s.sendall(payload)
    s.settimeout(20)
    head = s.recv(4)
    (n,) = struct.unpack(">I", head)
    body = b""
    while len(body) < n:
        body += s.recv(n - len(body))
    s.close()
    return json.loads(body)


@pytest.mark.parametrize(
    ("payload", "code"),
    [
        (struct.pack(">I", 64 * 1024 * 1024), "refused:oversized"),
        (struct.pack(">I", 5) + b"{nope", "refused:malformed"),
        (struct.pack(">I", 15) + b'{"a":1,"a":2}  ', "refused:malformed"),
    ],
    ids=["oversized", "not-json", "duplicate-keys"],
)
def test_bad_frames_refused(make_daemon, payload: bytes, code: str) -> None:  # type: ignore[no-untyped-def]
    d = make_daemon()
    answer = _raw(d.socket, payload)
    assert answer["ok"] is False
    assert answer["refusal"] == code
    assert d.audit_events()[-1]["decision"]["rule_ids"] == [code]


def test_slow_client_never_blocks_others(make_daemon) -> None:  # type: ignore[no-untyped-def]
    d = make_daemon(config="read_timeout_s = 2\n")
    slow = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    slow.connect(str(d.socket))
    slow.sendall(b"\x00\x00")  # half a header, then silence
    results: list[float] = []

    def ping() -> None:
        t0 = time.monotonic()
        assert call(str(d.socket), Request(op="ping")).ok
        results.append(time.monotonic() - t0)

    threads = [threading.Thread(target=ping) for _ in range(5)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 5
    assert max(results) < 1.0
    slow.settimeout(10)
    head = slow.recv(4)
    (n,) = struct.unpack(">I", head)
    answer = json.loads(slow.recv(n))
    slow.close()
    assert answer["ok"] is False
    assert answer["refusal"] == "refused:slow-client"
    last = d.audit_events()[-1]
    assert (last["kind"], last["decision"]["rule_ids"]) == (
        "apply-refused",
        ["refused:slow-client"],
    )
    assert last["actor"]["uid"] == 0
    assert Ledger(d.cfg.ledger_path).entries() == []


def test_aegisd_serves_a_socket_passed_by_systemd(tmp_path: Path, sock_dir: Path, key_set) -> None:  # type: ignore[no-untyped-def]
    from .conftest import base_env

    home = tmp_path / "home"
    home.mkdir()
    path = sock_dir / "passed.sock"
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(path))
    listener.listen(8)
    fd = listener.fileno()
    env = {k: v for k, v in base_env(home).items() if not k.startswith("LISTEN_")}
    # The sd_listen_fds protocol: the socket at fd 3, LISTEN_PID = the daemon's own pid.
    script = (
        f'exec 3<&{fd}; export LISTEN_FDS=1 LISTEN_PID=$$; exec "$0" -m aegis.execute.aegisd '
        f"--public-key-hex {key_set.signer_pub}"
    )
    own = sock_dir / "own.sock"
    proc = subprocess.Popen(
        ["/bin/bash", "-c", script + f" --socket {own}", sys.executable],
        env=env,
        pass_fds=(fd,),
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 15
        while True:
            try:
                answer = call(str(path), Request(op="ping"), timeout_s=5)
                break
            except Exception:
                assert time.monotonic() < deadline, "aegisd never answered on the passed socket"
                time.sleep(0.05)
        assert answer.ok
        assert answer.result["trusted_signer_keys"] == 1
        assert not own.exists()  # it used the passed socket, not its own
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        listener.close()
