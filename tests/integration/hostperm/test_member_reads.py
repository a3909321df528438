"""Members of group aegis verify the log with the witness; outsiders get exit 7 and a hint.

The log and its witness are written as root by the real writer (the code aegisd uses),
then ``aegis audit verify`` and ``aegis doctor`` run as an agent in the group and as
a user outside it.
"""

from __future__ import annotations

import json
import os
import stat

from .conftest import MEMBER, Host

WRITE_LOG = (
    "import sys\n"
    "from aegis.audit.chain import AuditLog\n"
    "from aegis.audit.verify import default_witness_path\n"
    "from aegis.config import load_config\n"
    "from aegis.sign.keys import load_signing_key, write_keypair\n"
    "cfg = load_config()\n"
    "key = cfg.keys_dir / 'audit.key'\n"
    "if not key.exists():\n"
    "    write_keypair(cfg.keys_dir, 'audit')\n"
    "log = AuditLog(cfg.audit_path, load_signing_key(key), 'h', use_syslog=False,\n"
    "               witness_file=default_witness_path(cfg.log_dir))\n"
    "for i in range(int(sys.argv[1])):\n"
    "    log.append('note', {'request_id': f'r{i}'})\n"
    "if sys.argv[2] == 'checkpoint':\n"
    "    log.checkpoint()\n"
    "if sys.argv[2] == 'fresh':  # what aegisd does on its first start\n"
    "    from aegis.audit.checkpoints import append_witness_file\n"
    "    append_witness_file(default_witness_path(cfg.log_dir), b'')\n"
    "log.close()\n"
)


def _write_log(host: Host, n: int = 5, *, how: str = "checkpoint") -> None:
    proc = host.run_as(None, str(n), how, python=("-c", WRITE_LOG))
    assert proc.returncode == 0, proc.stderr
    (host.etc / "keys").chmod(0o755)
    (host.etc / "keys/audit.pub").chmod(0o644)


def _truncate(host: Host, keep: int) -> None:
    log = host.log / "audit.jsonl"
    log.write_bytes(b"".join(log.read_bytes().splitlines(keepends=True)[:keep]))


def test_witness_is_0640_group_aegis_and_a_member_verifies_truncation(host: Host) -> None:
    _write_log(host)
    witness = host.log / "audit-witness.jsonl"
    st = os.stat(witness)
    assert (stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid) == (0o640, 0, host.gid)
    ok = host.member("audit", "verify", "--json")
    assert ok.returncode == 0, ok.stderr
    doc = json.loads(ok.stdout)
    assert doc["witness_seq"] == 5
    assert doc["tail_checked"] is True
    _truncate(host, 3)  # lines removed from the end: only the witness can tell
    bad = host.member("audit", "verify", "--json")
    assert bad.returncode == 4, bad.stderr
    assert [p["kind"] for p in json.loads(bad.stdout)["problems"]] == ["truncated"]


def test_doctor_as_a_member_runs_every_check_without_crashing(host: Host) -> None:
    _write_log(host)
    assert host.run_as(None, "requests").returncode == 0  # the store exists
    proc = host.member("doctor", "--json")
    assert proc.returncode == 7, proc.stderr  # no sockets, no policy here: real failures
    assert "internal error" not in proc.stderr
    checks = {c["name"]: c for c in json.loads(proc.stdout)["checks"]}
    assert checks["group"]["status"] == "ok"
    assert checks["store"]["status"] == "ok", checks["store"]
    assert checks["audit log"]["status"] == "ok", checks["audit log"]
    assert checks["state dir"]["status"] == "ok", checks["state dir"]
    assert checks["log dir"]["status"] == "ok", checks["log dir"]


def test_unreadable_witness_means_the_tail_is_unchecked(host: Host) -> None:
    _write_log(host)
    (host.log / "audit-witness.jsonl").chmod(0o600)  # what an older aegisd left
    proc = host.member("audit", "verify")
    assert proc.returncode == 7, proc.stderr
    assert "TAIL UNCHECKED" in proc.stdout
    assert "the tail after seq 5 is unchecked" in proc.stderr
    named = host.member("audit", "verify", "--witness", str(host.log / "audit-witness.jsonl"))
    assert named.returncode == 7, named.stderr
    assert "TAIL UNCHECKED" in named.stdout
    typo = host.member("audit", "verify", "--witness", str(host.log / "nope.jsonl"))
    assert typo.returncode == 3
    doctor = json.loads(host.member("doctor", "--json").stdout)
    audit = next(c for c in doctor["checks"] if c["name"] == "audit log")
    assert audit["status"] == "fail"
    assert "tail is unchecked" in audit["detail"]
    # aegisd's next checkpoint opens the file up again.
    _write_log(host, 1)
    assert host.member("audit", "verify").returncode == 0


def test_missing_witness_with_checkpoints_and_a_truncated_log_is_not_verified(
    host: Host,
) -> None:
    _write_log(host)
    _truncate(host, 3)
    (host.log / "audit-witness.jsonl").unlink()
    proc = host.member("audit", "verify", "--json")
    assert proc.returncode == 4, proc.stdout
    kinds = [p["kind"] for p in json.loads(proc.stdout)["problems"]]
    assert "witness-missing" in kinds


def test_fresh_host_with_an_empty_witness_and_no_checkpoint_verifies(host: Host) -> None:
    _write_log(host, 3, how="fresh")
    assert (host.log / "audit-witness.jsonl").stat().st_size == 0
    proc = host.member("audit", "verify", "--json")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert json.loads(proc.stdout)["witness_status"] == "readable"


def test_missing_witness_beside_events_is_a_problem_even_without_checkpoints(
    host: Host,
) -> None:
    _write_log(host, 3, how="none")
    proc = host.member("audit", "verify", "--json")
    assert proc.returncode == 4, proc.stdout + proc.stderr
    assert [p["kind"] for p in json.loads(proc.stdout)["problems"]] == ["witness-missing"]


def test_outsider_gets_exit_7_and_the_join_hint_from_every_command(host: Host) -> None:
    _write_log(host)
    assert host.run_as(None, "requests").returncode == 0
    for argv in (
        ("doctor",),
        ("doctor", "--json"),
        ("audit", "verify"),
        ("requests",),
        ("resume",),
        ("monitor",),
        ("show", "r-0123456789abcdef"),
    ):
        proc = host.run_as(MEMBER, *argv)
        assert proc.returncode == 7, (argv, proc.stdout, proc.stderr)
        assert "internal error" not in proc.stderr, argv
        assert f"adduser <user> {host.gid}" in proc.stderr, (argv, proc.stderr)


def test_outsider_doctor_names_the_group_check(host: Host) -> None:
    proc = host.run_as(MEMBER, "doctor", "--json")
    checks = {c["name"]: c for c in json.loads(proc.stdout)["checks"]}
    assert checks["group"]["status"] == "fail"
    assert checks["store"]["status"] == "fail"
    assert "cannot inspect" in checks["store"]["detail"]
