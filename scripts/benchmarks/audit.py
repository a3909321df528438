"""Audit log figures (issue 5): append with fsync vs a raw loop, verify vs a naive loop.

- ``append_vs_raw``: events/s of ``AuditLog.append`` (lock, tail check, hash, one write,
  fsync; checkpoints every 64 events) over events/s of a raw ``write`` + ``fsync`` loop of
  the same lines into another file on the same file system. Goal >= 0.5.
- ``verify_vs_naive``: events/s of ``verify`` (links, hashes, sequence, checkpoint
  signatures) over a naive loop that parses each line, canonicalises the body and hashes
  it. Goal >= 0.8; ``verify_events_per_s`` goal >= 100,000.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

APPENDS = 400
VERIFY_EVENTS = 100_000


def _fields(i: int) -> dict[str, Any]:
    return {
        "actor": {"uid": 0, "pid": 4242, "signer": "alice", "approvers": ["bob"]},
        "request_id": f"req-{i:08d}",
        "execution_id": f"exe-{i:08d}",
        "decision": {"outcome": "allow", "rule_ids": ["AEG-R001"], "reasons": ["in policy"]},
        "argv": ["/usr/bin/apt-get", "install", "--trivial-only", "--", "aegis-base=1.2"],
        "exit_status": 0,
        "output_hashes": {"stdout_sha256": "a" * 64, "stderr_sha256": "b" * 64},
    }


def _append(tmp: Path, key: Any) -> dict[str, float]:
    from aegis.audit.chain import AuditLog
    from aegis.audit.event import GENESIS_HASH, encode_event, make_body

    # The same lines for the raw loop, built up front (the raw loop only writes).
    head, lines = GENESIS_HASH, []
    for i in range(APPENDS):
        body = make_body(
            seq=i + 1,
            time="2026-01-01T00:00:00.000000Z",
            host="bench-host",
            kind="apply-finished",
            prev_hash=head,
            fields=_fields(i),
        )
        line, head = encode_event(body)
        lines.append(line)
    log = AuditLog(tmp / "a" / "audit.jsonl", key, "bench-host", use_syslog=False)
    fd = os.open(tmp / "raw.jsonl", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o640)
    aegis_s = raw_s = 0.0
    # Interleave blocks so drift in fsync latency hits both loops alike.
    for block in range(0, APPENDS, 50):
        start = time.perf_counter()
        for i in range(block, block + 50):
            log.append("apply-finished", _fields(i))
        aegis_s += time.perf_counter() - start
        start = time.perf_counter()
        for line in lines[block : block + 50]:
            os.write(fd, line)
            os.fsync(fd)
        raw_s += time.perf_counter() - start
    os.close(fd)
    log.close()
    return {
        "append_events_per_s": round(APPENDS / aegis_s),
        "raw_append_fsync_per_s": round(APPENDS / raw_s),
        "append_vs_raw": round(raw_s / aegis_s, 3),
    }


def _write_big_log(path: Path, key: Any, pub: str) -> None:
    from aegis.audit.checkpoints import checkpoint_body, sign_checkpoint
    from aegis.audit.event import GENESIS_HASH, encode_event, make_body

    head, out = GENESIS_HASH, []
    for seq in range(1, VERIFY_EVENTS + 1):
        t = "2026-01-01T00:00:00.000000Z"
        if seq % 64 == 0:
            body = checkpoint_body(
                host="bench-host", seq=seq - 1, head_hash=head, time=t, public_key_hex=pub
            )
            fields: dict[str, Any] = {"details": sign_checkpoint(body, key)}
            kind = "checkpoint"
        else:
            fields, kind = _fields(seq), "apply-finished"
        event = make_body(
            seq=seq, time=t, host="bench-host", kind=kind, prev_hash=head, fields=fields
        )
        line, head = encode_event(event)
        out.append(line)
    path.write_bytes(b"".join(out))


def _verify(tmp: Path, key: Any, pub: str) -> dict[str, float]:
    from aegis.audit.verify import verify
    from aegis.canonical import canonical_bytes

    path = tmp / "big" / "audit.jsonl"
    path.parent.mkdir()
    _write_big_log(path, key, pub)
    start = time.perf_counter()
    report = verify(path, audit_public_key_hex=pub)
    verify_s = time.perf_counter() - start
    if not report.ok or report.events != VERIFY_EVENTS:
        raise RuntimeError(f"bench log did not verify: {report.problems[:3]}")
    start = time.perf_counter()
    for raw in path.read_bytes().splitlines():
        doc = json.loads(raw)
        hashlib.sha256(canonical_bytes(doc["event"])).hexdigest()
    naive_s = time.perf_counter() - start
    return {
        "verify_events_per_s": round(VERIFY_EVENTS / verify_s),
        "naive_verify_events_per_s": round(VERIFY_EVENTS / naive_s),
        "verify_vs_naive": round(naive_s / verify_s, 3),
    }


def run() -> dict[str, float]:
    """Measure the audit figures in one run."""
    from aegis.sign.keys import load_signing_key, write_keypair

    with tempfile.TemporaryDirectory(prefix="aegis-bench-audit-") as d:
        tmp = Path(d)
        key_path, pub = write_keypair(tmp / "keys", "audit")
        key = load_signing_key(key_path)
        return {**_append(tmp, key), **_verify(tmp, key, pub)}


if __name__ == "__main__":
    print(json.dumps(run(), indent=2))
