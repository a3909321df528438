"""The writer when the file system refuses: a failed append leaves the log as it was.

The faults are real: a child process with ``RLIMIT_FSIZE`` just above the log's size (the
kernel cuts the write short, then refuses it with ``EFBIG``, as on a full file system),
and a symlink put in the log's place (``ELOOP`` on open).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from aegis.audit.chain import AuditLog, AuditWriteError
from aegis.audit.verify import verify

REPO = Path(__file__).resolve().parents[3]

_LIMITED = textwrap.dedent(
    """
    import json, resource, sys
    from pathlib import Path
    from aegis.audit.chain import AuditLog
    from aegis.errors import AegisError
    from aegis.sign.keys import load_signing_key

    path, key, limit = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3])
    log = AuditLog(path, load_signing_key(Path(key)), "test-host", use_syslog=False,
                   checkpoint_every=1000)
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    out = {}
    try:
        log.append("apply-finished", {"details": {"pad": "x" * 3000}})
        out["appended"] = True
    except AegisError as e:
        out["error"] = (type(e).__name__, e.exit_code, e.message)
    try:  # a checkpoint (small) fits; the log is whole again after it
        log.checkpoint()
        out["checkpoint_seq"] = log.head[0]
    except AegisError as e:
        out["checkpoint_seq"] = e.message
    log.close()
    log.close()  # closing twice is harmless: the writer forgets its descriptors
    print(json.dumps(out))
    """
)


def _limited_append(path: Path, key: Path, limit: int) -> dict[str, Any]:
    proc = subprocess.run(
        [sys.executable, "-c", _LIMITED, str(path), str(key), str(limit)],
        capture_output=True,
        text=True,
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    out: dict[str, Any] = json.loads(proc.stdout)
    return out


def test_a_full_file_system_leaves_the_log_as_it_was(
    make_log: Any, audit_key: tuple[Any, str, Path]
) -> None:
    log = make_log()
    log.append("apply-started", {"details": {"n": 1}})
    log.checkpoint()
    log.close()
    before = log.path.read_bytes()
    # Room for part of the next event only: the kernel writes what fits, then refuses.
    out = _limited_append(log.path, audit_key[2], len(before) + 1000)
    assert out["error"][0] == "AuditWriteError"
    assert out["error"][1] == 7
    assert "left as it was" in out["error"][2]
    assert out["checkpoint_seq"] == 3  # the failed event took no sequence number
    lines = log.path.read_bytes().splitlines(keepends=True)
    assert b"".join(lines[:-1]) == before  # the torn part was cut back, nothing else lost
    assert json.loads(lines[-1])["event"]["kind"] == "checkpoint"
    report = verify(log.path, audit_public_key_hex=audit_key[1])
    assert report.ok, report
    # Space again: the next append continues the chain with no torn line to repair.
    again = make_log()
    event = again.append("apply-finished", {"details": {"n": 2}})
    assert event["seq"] == 4
    kinds = [json.loads(x)["event"]["kind"] for x in log.path.read_text().splitlines()]
    assert "recovered-tail" not in kinds
    assert verify(log.path, audit_public_key_hex=audit_key[1]).ok


def test_a_symlink_in_the_logs_place_fails_cleanly_and_nothing_is_kept(
    make_log: Any, audit_key: tuple[Any, str, Path], tmp_path: Path
) -> None:
    log: AuditLog = make_log()
    log.append("apply-started", {"details": {"n": 1}})
    saved = tmp_path / "saved.jsonl"
    os.rename(log.path, saved)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.write_text("not the log\n")
    os.symlink(elsewhere, log.path)
    for _ in range(3):
        with pytest.raises(AuditWriteError, match="Too many levels of symbolic links"):
            log.append("apply-started", {"details": {"n": 2}})
    assert elsewhere.read_text() == "not the log\n"
    # The failed opens kept no descriptor number: a new file gets one, and closing the
    # log later must not close it behind its owner's back.
    other = os.open(tmp_path / "other", os.O_RDWR | os.O_CREAT, 0o600)
    os.unlink(log.path)
    os.rename(saved, log.path)
    event = log.append("apply-started", {"details": {"n": 3}})
    assert event["seq"] == 2
    log.close()
    log.close()
    os.fstat(other)  # still open: nobody closed a number that was no longer ours
    os.close(other)
    assert verify(log.path, audit_public_key_hex=audit_key[1]).ok
