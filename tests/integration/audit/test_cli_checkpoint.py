"""``aegis audit checkpoint``: the latest signed head, for keeping off the host."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from aegis.audit.chain import AuditLog
from aegis.audit.checkpoints import verify_checkpoint
from aegis.audit.event import encode_event, make_body
from aegis.audit.verify import default_witness_path
from aegis.cli.aegis import cli
from aegis.config import load_config
from aegis.sign.keys import load_signing_key, write_keypair


def _open_log(every: int = 64) -> AuditLog:
    cfg = load_config()
    key_path, _ = write_keypair(cfg.keys_dir, "audit")
    return AuditLog(
        cfg.audit_path,
        load_signing_key(key_path),
        "test-host",
        use_syslog=False,
        witness_file=default_witness_path(cfg.log_dir),
        checkpoint_every=every,
    )


def test_prints_the_newest_checkpoint_as_the_witness_holds_it(aegis_home: Path) -> None:
    cfg = load_config()
    log = _open_log(every=1000)
    log.append("note", {"request_id": "r1"})
    log.checkpoint()
    log.rotate()  # the newest checkpoint now sits in the rotated segment, far from the end
    for i in range(300):
        log.append("note", {"request_id": f"r{i}", "details": {"pad": "x" * 1000}})
    log.close()
    result = CliRunner().invoke(cli, ["audit", "checkpoint", "--json"])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert result.stdout.count("\n") == 1  # one line: appendable to an off-host witness
    witness = default_witness_path(cfg.log_dir).read_text().splitlines()
    assert json.loads(witness[-1]) == doc
    pub = (cfg.keys_dir / "audit.pub").read_text().strip()
    assert verify_checkpoint(doc, pub)
    assert doc["checkpoint"]["seq"] == 1
    human = CliRunner().invoke(cli, ["audit", "checkpoint"])
    assert human.exit_code == 0
    assert "verified" in human.stdout
    assert doc["checkpoint"]["head_hash"] in human.stdout


def test_a_forged_checkpoint_at_the_end_is_refused(aegis_home: Path) -> None:
    cfg = load_config()
    log = _open_log()
    log.append("note", {"request_id": "r1"})
    real = log.checkpoint()
    assert real is not None
    seq, head = log.head
    log.close()
    # Someone who can write the log (not the key) appends a well-chained checkpoint
    # claiming another head, reusing the real signature.
    forged = {**real, "checkpoint": {**real["checkpoint"], "head_hash": "ab" * 32}}
    body = make_body(
        seq=seq + 1,
        time="2026-01-01T00:00:00.000000Z",
        host="test-host",
        kind="checkpoint",
        prev_hash=head,
        fields={"details": forged},
    )
    line, _ = encode_event(body)
    with cfg.audit_path.open("ab") as f:
        f.write(line)
    result = CliRunner().invoke(cli, ["audit", "checkpoint", "--json"])
    assert result.exit_code == 4
    assert result.stdout == ""
    assert "does not verify" in result.stderr


def test_no_checkpoint_yet_exits_6(aegis_home: Path) -> None:
    log = _open_log()
    log.append("note", {"request_id": "r1"})
    log.close()
    result = CliRunner().invoke(cli, ["audit", "checkpoint", "--json"])
    assert result.exit_code == 6
    assert "no checkpoint yet" in result.stderr


def test_no_log_exits_3(aegis_home: Path) -> None:
    result = CliRunner().invoke(cli, ["audit", "checkpoint"])
    assert result.exit_code == 3
