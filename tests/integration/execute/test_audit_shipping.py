"""Issue 15: what leaves the host after a real apply, and what the monitor reports on it.

A real aegisd applies a signed request in a throwaway root. Every audit event it writes
also arrives at a journal socket the test binds (``AEGIS_JOURNAL_SOCKET``), with the
structured fields a fleet's journal forwarding searches on; ``aegis audit checkpoint
--json`` prints the signed head a fleet keeps off the host; and ``aegis monitor``
writes what an on-call alerts on: the last apply per ecosystem, the audit log's verify,
the evidence ages, and the journal copies that were lost.
"""

from __future__ import annotations

import json
import re
import socket
import time
from datetime import UTC
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any

from aegis.audit.checkpoints import verify_checkpoint
from aegis.audit.journal import parse_entry
from aegis.config import Config

from .chain_helpers import AEGIS, apply_argv, run_cli, signed_request
from .conftest import Daemon


def _metrics(env: dict[str, str]) -> str:
    doc = json.loads(run_cli([*AEGIS, "monitor", "--json"], env).stdout)
    assert doc["ok"] is True
    return Path(doc["metrics_path"]).read_text()


def _value(text: str, series: str) -> float:
    match = re.search(rf"^{re.escape(series)} (\S+)$", text, re.M)
    assert match, f"{series} missing from\n{text}"
    return float(match.group(1))


def _drain(sock: socket.socket) -> list[dict[str, bytes]]:
    out = []
    sock.setblocking(False)
    while True:
        try:
            out.append(parse_entry(sock.recv(1 << 20)))
        except BlockingIOError:
            return out


def _tracker(tmp_path: Path) -> Path:
    path = tmp_path / "tracker.json"
    path.write_text(json.dumps({"openssl": {"CVE-2026-0001": {"releases": {}}}}))
    return path


def _check_checkpoint(env: dict[str, str], cfg: Config, lines: list[dict[str, Any]]) -> None:
    """The signed head a fleet fetches is the newest checkpoint, as the witness holds it."""
    doc = json.loads(run_cli([*AEGIS, "audit", "checkpoint", "--json"], env).stdout)
    pub = (cfg.keys_dir / "audit.pub").read_text().strip()
    assert verify_checkpoint(doc, pub)
    witness = cfg.log_dir / "audit-witness.jsonl"
    assert json.loads(witness.read_text().splitlines()[-1]) == doc
    checkpoints = [x["event"] for x in lines if x["event"]["kind"] == "checkpoint"]
    assert doc == checkpoints[-1]["details"]


def _release_date(dist: Path) -> float:
    """The repository's own Release Date (the lists copy is what the monitor reads)."""
    date = re.search(r"^Date: (.+)$", (dist / "Release").read_text(), re.M)
    assert date
    return parsedate_to_datetime(date.group(1)).astimezone(UTC).timestamp()


def _repository_release(text: str) -> float:
    (line,) = re.findall(r"^aegis_repository_release_timestamp_seconds\{.*$", text, re.M)
    return float(line.rsplit(" ", 1)[1])


def test_apply_ships_its_events_and_the_monitor_reports_on_it(
    tmp_path: Path, sock_dir: Path
) -> None:
    sr = signed_request(tmp_path)
    journal_path = sock_dir / "journal.sock"
    journal = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    journal.bind(str(journal_path))
    env = {**sr.env, "AEGIS_JOURNAL_SOCKET": str(journal_path)}
    d = Daemon(
        sr.home, sock_dir / "a.sock", env, ["--public-key-hex", sr.signer_pub], tmp_path / "log"
    ).start()
    apply = apply_argv(sr.execution_plan, sr.signer_pub, d.socket)
    run_cli(apply, env)
    cfg = d.cfg

    # Every event of the log arrived, in order, with its sequence and hash.
    lines = [json.loads(x) for x in cfg.audit_path.read_text().splitlines()]
    shipped = _drain(journal)
    assert [(f["AEGIS_SEQ"], f["AEGIS_HASH"]) for f in shipped] == [
        (str(x["event"]["seq"]).encode(), x["event_hash"].encode()) for x in lines
    ]
    finished = [f for f in shipped if f["AEGIS_EVENT"] == b"apply-finished"]
    assert [f["AEGIS_REQUEST"] for f in finished] == [sr.request_id.encode()]

    _check_checkpoint(env, cfg, lines)

    run_cli([*AEGIS, "vulndb", "import", str(_tracker(tmp_path))], env)
    before = time.time()
    text = _metrics(env)
    assert _value(text, 'aegis_apply_last_success{ecosystem="apt"}') == 1
    assert _value(text, 'aegis_apply_last_outcome{ecosystem="apt",outcome="applied"}') == 1
    assert before - 600 < _value(text, 'aegis_apply_last_timestamp_seconds{ecosystem="apt"}')
    assert _value(text, "aegis_audit_verify_ok") == 1
    assert _value(text, "aegis_audit_verify_problems") == 0
    assert _value(text, "aegis_audit_verify_timestamp_seconds") >= before - 1
    assert _value(text, "aegis_audit_journal_failures_total") == 0
    assert before - 600 < _value(text, "aegis_vulndb_import_timestamp_seconds") <= time.time()
    assert _repository_release(text) == _release_date(tmp_path / "repo/dists/aegis-test")

    # journald goes away: the next event (a replay, straight to the socket, refused) is
    # still written, and its lost copy is counted.
    journal.close()
    journal_path.unlink()
    again = d.submit(sr.execution_plan.read_text(), request_id=sr.request_id)
    assert (again.ok, again.refusal) == (False, "refused:replayed")
    # (a refusal naming a request is followed by a checkpoint)
    assert [e["kind"] for e in d.audit_events()][-2:] == ["apply-refused", "checkpoint"]
    assert _value(_metrics(env), "aegis_audit_journal_failures_total") >= 1

    # A log edited behind aegisd's back: the next pass reports it, the pass itself passes.
    d.stop()
    first, *rest = cfg.audit_path.read_text().splitlines(keepends=True)
    cfg.audit_path.write_text(first.replace("apply-started", "apply-stArted") + "".join(rest))
    text = _metrics(env)
    assert _value(text, "aegis_audit_verify_ok") == 0
    assert _value(text, "aegis_audit_verify_problems") >= 1
