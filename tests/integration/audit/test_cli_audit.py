"""``aegis audit verify`` and ``aegisctl audit-path`` through click and as processes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from click.testing import CliRunner

from aegis.audit.chain import AuditLog
from aegis.audit.verify import default_witness_path
from aegis.cli.aegis import cli
from aegis.cli.aegisctl import cli as ctl
from aegis.config import load_config
from aegis.sign.keys import load_signing_key, write_keypair


def _log(aegis_home: Path, n: int = 5) -> Path:
    cfg = load_config()
    key_path, _ = write_keypair(cfg.keys_dir, "audit")
    cfg.aegisd_dir.mkdir(parents=True)
    log = AuditLog(
        cfg.audit_path,
        load_signing_key(key_path),
        "test-host",
        use_syslog=False,
        witness_file=default_witness_path(cfg.log_dir),
    )
    for i in range(n):
        log.append("note", {"request_id": f"r{i}"})
    log.checkpoint()
    log.close()
    return cfg.audit_path


def test_audit_path_prints_config_path(aegis_home: Path) -> None:
    result = CliRunner().invoke(ctl, ["audit-path"])
    assert result.exit_code == 0
    assert result.output == f"{aegis_home}/var/log/aegis/audit.jsonl\n"


def test_verify_ok_then_tampered_exits_4_naming_the_line(aegis_home: Path) -> None:
    path = _log(aegis_home)
    ok = CliRunner().invoke(cli, ["audit", "verify", "--json"])
    assert ok.exit_code == 0, ok.output
    doc = json.loads(ok.output)
    assert doc["ok"] is True
    assert doc["witness_seq"] == 5
    lines = path.read_bytes().splitlines(keepends=True)
    path.write_bytes(b"".join(lines[:3]))  # truncate: only the witness can tell
    bad = CliRunner().invoke(cli, ["audit", "verify", "--json"])
    assert bad.exit_code == 4
    doc = json.loads(bad.stdout)
    assert [(p["kind"], p["line"]) for p in doc["problems"]] == [("truncated", 4)]


def test_verify_as_a_process_reports_modified_line(aegis_home: Path) -> None:
    path = _log(aegis_home)
    path.write_bytes(path.read_bytes().replace(b'"r1"', b'"rX"'))
    proc = subprocess.run(
        [sys.executable, "-m", "aegis", "audit", "verify"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 4, proc.stderr
    assert "line 2 (modified)" in proc.stderr
    assert "modified" in proc.stdout


def test_missing_log_is_input_error(aegis_home: Path) -> None:
    result = CliRunner().invoke(cli, ["audit", "verify"])
    assert result.exit_code == 3


def test_the_checkpoint_event_ending_an_apply_is_covered(aegis_home: Path) -> None:
    # Events, then the apply's checkpoint (which signs the head before it): no
    # "not covered" warning. An event after it is uncovered and said so.
    path = _log(aegis_home, n=2)
    ok = CliRunner().invoke(cli, ["audit", "verify", "--json", "--witness", "/dev/null"])
    doc = json.loads(ok.stdout)
    assert (doc["head_seq"], doc["last_checkpoint_seq"], doc["covered_seq"]) == (3, 2, 3)
    plain = CliRunner().invoke(cli, ["audit", "verify", "--path", str(path)])
    assert plain.exit_code == 0, plain.output
    assert "not covered" not in plain.output
    cfg = load_config()
    log = AuditLog(
        path, load_signing_key(cfg.keys_dir / "audit.key"), "test-host", use_syslog=False
    )
    log.append("note", {"request_id": "late"})
    log.close()
    late = CliRunner().invoke(cli, ["audit", "verify", "--path", str(path)])
    assert late.exit_code == 0
    assert "events after seq 3 are not covered by a checkpoint" in late.stderr
