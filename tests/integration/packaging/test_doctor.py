"""``aegis doctor`` against a real AEGIS_HOME: sockets, store, keys, audit log, tools."""

from __future__ import annotations

import json
import shutil
import socket
import sqlite3
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from aegis.audit.chain import AuditLog
from aegis.audit.verify import default_witness_path
from aegis.cli.aegis import cli
from aegis.config import load_config
from aegis.sign.keys import load_signing_key, write_keypair


@pytest.fixture
def ready_home(aegis_home: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """An AEGIS_HOME with policy, keys, store, a verified audit log and listening sockets."""
    run_dir = Path(tempfile.mkdtemp(prefix="aegis-run-"))  # AF_UNIX paths are short
    monkeypatch.setenv("AEGIS_RUN_DIR", str(run_dir))
    cfg = load_config()
    for d in (cfg.state_dir, cfg.aegisd_dir, cfg.log_dir, cfg.run_dir, cfg.etc_dir):
        d.mkdir(parents=True, exist_ok=True)
    cfg.policy_path.write_text("# policy\n")
    key_path, _ = write_keypair(cfg.keys_dir, "audit")
    write_keypair(cfg.keys_dir, "review")
    sqlite3.connect(cfg.store_path).execute("CREATE TABLE t (x)").connection.close()
    log = AuditLog(
        cfg.audit_path,
        load_signing_key(key_path),
        "h",
        use_syslog=False,
        witness_file=default_witness_path(cfg.log_dir),
    )
    log.append("note", {})
    log.checkpoint()
    log.close()
    listeners = []
    for path in (cfg.aegisd_socket, cfg.reviewd_socket):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.bind(str(path))
        s.listen(4)
        listeners.append(s)
    yield aegis_home
    for s in listeners:
        s.close()
    shutil.rmtree(run_dir)


def _doctor() -> tuple[int, dict[str, str], str]:
    result = CliRunner().invoke(cli, ["doctor", "--json"])
    doc = json.loads(result.stdout)
    return result.exit_code, {c["name"]: c["status"] for c in doc["checks"]}, result.stderr


def test_ready_home_passes(ready_home: Path) -> None:
    code, statuses, _ = _doctor()
    assert code == 0, statuses
    assert statuses["aegisd socket"] == "ok"
    assert statuses["audit log"] == "ok"
    assert statuses["store"] == "ok"
    assert statuses["tool dpkg"] == "ok"


def test_tampered_audit_log_and_dead_socket_fail(ready_home: Path) -> None:
    cfg = load_config()
    cfg.audit_path.write_bytes(cfg.audit_path.read_bytes().replace(b'"note"', b'"nope"', 1))
    cfg.reviewd_socket.unlink()
    code, statuses, stderr = _doctor()
    assert code == 7
    assert statuses["audit log"] == "fail"
    assert statuses["aegis-reviewd socket"] == "fail"
    assert "check(s) failed" in stderr


def test_table_output_lists_every_check(ready_home: Path) -> None:
    result = CliRunner().invoke(cli, ["doctor"])
    assert result.exit_code == 0
    for name in ("config", "store", "audit key", "aegisd socket", "signature verifier"):
        assert name in result.stdout


def test_doctor_names_the_verifier_and_policy_apt_uses_here(ready_home: Path) -> None:
    """bookworm's apt verifies with gpgv (no policy); apt 3 with sqv under its policy file."""
    doc = json.loads(CliRunner().invoke(cli, ["doctor", "--json"]).stdout)
    check = next(c for c in doc["checks"] if c["name"] == "signature verifier")
    assert check["status"] == "ok"
    if Path("/usr/lib/apt/methods/sqv").exists():
        assert check["detail"].startswith("sqv (/usr/bin/sqv) policy ")
    else:
        assert check["detail"].startswith("gpgv (")
        assert "no algorithm policy" in check["detail"]


def test_missing_review_key_hint_is_a_command_that_fixes_it(ready_home: Path) -> None:
    """The hint is runnable as printed (keygen requires --out) and clears the warning."""
    from aegis.cli.aegisctl import cli as ctl

    cfg = load_config()
    for name in ("review.key", "review.pub"):
        (cfg.keys_dir / name).unlink()
    doc = json.loads(CliRunner().invoke(cli, ["doctor", "--json"]).stdout)
    detail = next(c["detail"] for c in doc["checks"] if c["name"] == "review key")
    hint = detail[detail.index("(aegisctl ") + 1 : detail.rindex(")")]
    argv = hint.split()
    assert argv[:2] == ["aegisctl", "keygen"]
    result = CliRunner().invoke(ctl, argv[1:])
    assert result.exit_code == 0, result.output
    assert _doctor()[1]["review key"] == "ok"
