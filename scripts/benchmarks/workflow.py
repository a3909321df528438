"""Workflow figures: transition commit rate vs raw SQLite, stuck listing, CLI start-up.

- ``transitions_per_s``: committed transitions (history read back from the head as far as
  the guards need, each row parsed, hash-checked and chained; guards run by the machine;
  state + history + artifact in one transaction) with ``synchronous=FULL``;
  ``raw_sqlite_per_s``: a plain sqlite3 loop doing the same writes (same schema,
  pragmas, rows and values: the request's own columns, real artifact hashes, the current
  time; prepared before its clock starts) in the same run, in blocks alternating with
  the transitions';
  ``transition_vs_raw_ratio``: the median over rounds of each round's ratio (goal >= 0.8).
- ``api_advance_per_s``: the full ``api.advance`` call (opens the store each time).
- ``stuck_json_100k_s``: wall time of ``aegis requests --stuck --json`` over 100,000 stored
  requests (goal <= 0.3 s).
- ``help_minus_python_ms``: ``aegis --help`` wall time minus ``python -c pass`` (goal <= 150).
- ``monitor_pass_100k_s``: wall time of ``aegis monitor`` (what the timer runs: resume,
  expiry, metrics) over the same 100,000 requests, all waiting for review while
  aegis-reviewd is unreachable (goal <= 2 s).
- ``doctor_100k_s``: wall time of ``aegis doctor --json`` on that home, its store of
  100,000 requests included (goal <= 1 s).
"""

from __future__ import annotations

import os
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

N_TRANSITIONS = 400
N_STORED = 100_000
ROUNDS = 5


def _cfg(home: Path) -> Any:
    from aegis.config import load_config

    return load_config({"AEGIS_HOME": str(home), "AEGIS_HOST_ID": "bench"})


def _requests(cfg: Any, n: int, prefix: str) -> list[str]:
    from aegis import api
    from aegis.devtools.sample_plans import sample_plan

    return [
        api.submit_plan(cfg, sample_plan(f"{prefix}-{i}"), "bench").request_id for i in range(n)
    ]


BLOCK = 50


def _transition_vs_raw(home: Path, raw_home: Path) -> tuple[float, float, float]:
    """Transitions/s, raw sqlite3 writes/s (interleaved in blocks), api.advance calls/s."""
    from aegis import api
    from aegis.workflow import access

    cfg = _cfg(home)
    ids = _requests(cfg, N_TRANSITIONS, "t")
    raw = _RawLoop(raw_home)
    aegis_s = raw_s = 0.0
    with api.open_store(cfg) as store:
        recs = [store.get(r) for r in ids]
        # Alternate blocks so drift in fsync latency (other processes' I/O) hits both
        # loops alike; each loop's total time is the sum of its blocks.
        for block in range(0, N_TRANSITIONS, BLOCK):
            start = time.perf_counter()
            for i in range(block, block + BLOCK):
                access._advance(
                    store,
                    recs[i],
                    "review",
                    actor="bench",
                    artifact_kind="review",
                    body=b"review %d" % i,
                    artifact_path=None,
                    facts={},
                )
            aegis_s += time.perf_counter() - start
            raw_s += raw.block(block, block + BLOCK)
    raw.close()
    ids2 = _requests(cfg, N_TRANSITIONS // 4, "a")
    start = time.perf_counter()
    for i, rid in enumerate(ids2):
        api.advance(cfg, rid, "review", "bench", artifact_kind="review", artifact=b"r %d" % i)
    api_elapsed = time.perf_counter() - start
    return N_TRANSITIONS / aegis_s, N_TRANSITIONS / raw_s, len(ids2) / api_elapsed


class _RawLoop:
    """The same writes as a transition (same schema, pragmas, rows, values), by a bare loop."""

    def __init__(self, home: Path) -> None:
        # The same store contents as the measured transitions: the same requests, submitted
        # alike.
        from aegis import api

        cfg = _cfg(home)
        ids = _requests(cfg, N_TRANSITIONS, "t")
        with api.open_store(cfg) as store:
            self.recs = [store.get(r) for r in ids]
        self.workflow = api.workflow().digest
        self.conn = sqlite3.connect(cfg.store_path, isolation_level=None)
        self.conn.execute("PRAGMA journal_mode=WAL")
        self.conn.execute("PRAGMA synchronous=FULL")
        self.conn.execute("PRAGMA foreign_keys=ON")  # the store's own pragmas, all three

    def close(self) -> None:
        self.conn.close()

    def block(self, first: int, end: int) -> float:
        """Seconds for the writes of transitions ``first`` to ``end``.

        The values a transition writes, prepared before the clock starts: the request's
        own columns, the current time, the artifact's real SHA-256 and distinct hashes
        for the new head (constant hashes and times would load the indexes unlike the
        store's own writes).
        """
        from aegis.canonical import sha256_hex
        from aegis.workflow.records import format_time

        conn = self.conn
        at = format_time(datetime.now(UTC))
        rows = []
        for i in range(first, end):
            rec = self.recs[i]
            body = b"review %d" % i
            sha = sha256_hex(body)
            new_head = sha256_hex(b"head %d" % i)
            evidence = (
                '{"artifacts":[{"kind":"review","path":null,"sha256":"' + sha + '"}],'
                '"facts":{},"workflow":"' + self.workflow + '"}'
            )
            update = [rec.kind, rec.summary, rec.created_at, at, rec.plan_id, rec.plan_hash,
                      new_head, sha256_hex(b"row %d" % i), rec.id]  # fmt: skip
            rows.append((update, [sha, len(body), body, at], [rec.id, sha, at],
                         [rec.id, at, evidence, rec.head, new_head]))  # fmt: skip
        start = time.perf_counter()
        for update, artifact, link, history in rows:
            conn.execute("BEGIN IMMEDIATE")
            conn.execute(
                "UPDATE requests SET kind = ?, summary = ?, state = 'reviewed', version = 2, "
                "created_at = ?, updated_at = ?, plan_id = ?, plan_hash = ?, lease_owner = NULL, "
                "lease_expires_at = NULL, head = ?, row_hash = ? "
                "WHERE id = ? AND version = 1 AND state = 'analyzed'",
                update,
            )
            conn.execute(
                "INSERT OR IGNORE INTO artifacts (sha256, size, body, created_at) "
                "VALUES (?, ?, ?, ?)",
                artifact,
            )
            conn.execute(
                "INSERT OR IGNORE INTO request_artifacts VALUES (?, 'review', ?, NULL, 2, ?)",
                link,
            )
            conn.execute(
                "INSERT INTO history VALUES (?, 2, 'analyzed', 'reviewed', 'review', 'bench', ?, "
                "?, ?, ?)",
                history,
            )
            conn.execute("COMMIT")
        return time.perf_counter() - start


def _fill(home: Path) -> None:
    """100,000 requests with valid row hashes and history; 100 of them stuck.

    Each request is written as :meth:`Store.commit` writes a submitted plan: a ``create``
    row (seq 0, no ``prev_hash``) and an ``analyze`` row carrying the plan artifact (seq 1,
    chained to the first), the request row's ``head`` being the last row's hash. Written
    with ``executemany`` in one transaction so filling stays a few seconds.
    """
    from aegis import api
    from aegis.canonical import sha256_hex
    from aegis.workflow.records import (
        HISTORY_COLUMNS,
        ArtifactRef,
        HistoryRecord,
        RequestRecord,
        format_time,
        history_hash,
        history_values,
        request_row,
    )
    from aegis.workflow.store import Store

    cfg = _cfg(home)
    wf = api.workflow()
    now = datetime.now(UTC)
    Store.open(cfg.store_path, states=frozenset(wf.states)).close()
    plan = b'{"bench": "plan"}'
    plan_sha = sha256_hex(plan)
    plan_ref = (ArtifactRef("plan", plan_sha, None),)
    rows, histories, attached = [], [], []
    for i in range(N_STORED):
        at = format_time(now - (timedelta(days=3) if i % 1000 == 0 else timedelta(minutes=i % 600)))
        rid = f"r-{i:08x}"
        created = HistoryRecord(rid, 0, None, wf.initial, "create", "bench", at, (), {}, wf.digest)
        created_hash = history_hash(created)
        analyzed = HistoryRecord(
            rid, 1, wf.initial, "analyzed", "analyze", "bench", at, plan_ref, {}, wf.digest,
            prev_hash=created_hash,
        )  # fmt: skip
        head = history_hash(analyzed)
        histories.append(history_values(created, created_hash))
        histories.append(history_values(analyzed, head))
        attached.append((rid, "plan", plan_sha, None, 1, at))
        rec = RequestRecord(
            id=rid,
            kind="apt install",
            summary=f"pkg-{i}",
            state="analyzed",
            version=1,
            created_at=at,
            updated_at=at,
            plan_id=f"p-{i}",
            plan_hash=plan_sha,
            lease_owner=None,
            lease_expires_at=None,
            head=head,
        )
        rows.append(request_row(rec))
    conn = sqlite3.connect(cfg.store_path, isolation_level=None)
    conn.execute("PRAGMA foreign_keys=ON")
    cols = list(rows[0])
    conn.execute("BEGIN")
    conn.executemany(
        f"INSERT INTO requests ({', '.join(cols)}) VALUES ({', '.join('?' for _ in cols)})",  # noqa: S608
        [[r[c] for c in cols] for r in rows],
    )
    conn.execute(
        "INSERT INTO artifacts (sha256, size, body, created_at) VALUES (?, ?, ?, ?)",
        [plan_sha, len(plan), plan, format_time(now)],
    )
    conn.executemany(
        "INSERT INTO request_artifacts (request_id, kind, sha256, path, seq, at) "
        "VALUES (?, ?, ?, ?, ?, ?)",
        attached,
    )
    conn.executemany(
        f"INSERT INTO history ({', '.join(HISTORY_COLUMNS)}) "  # noqa: S608
        f"VALUES ({', '.join('?' for _ in HISTORY_COLUMNS)})",
        histories,
    )
    conn.execute("COMMIT")
    conn.close()


def _wall(argv: list[str], env: dict[str, str], runs: int = 5, *, check: bool = True) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(argv, env=env, check=check, stdout=subprocess.DEVNULL)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def run() -> dict[str, object]:
    """Measure every figure in one run."""
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        # fsync timing is noisy: alternate the two loops and take each one's median.
        rates, raws, api_rates, ratios = [], [], [], []
        for i in range(ROUNDS):
            rate_i, raw_i, api_i = _transition_vs_raw(base / f"t{i}", base / f"raw{i}")
            rates.append(rate_i)
            raws.append(raw_i)
            ratios.append(rate_i / raw_i)
            api_rates.append(api_i)
        rate, raw = statistics.median(rates), statistics.median(raws)
        api_rate = statistics.median(api_rates)
        _fill(base / "big")
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("AEGIS_")},
            "AEGIS_HOME": str(base / "big"),
        }
        # An installed Aegis runs from compiled bytecode (pip and the Debian package
        # compile it at install), as unattended.py's pass does: without it, a tree run
        # with PYTHONDONTWRITEBYTECODE=1 compiles every module it imports on each start,
        # which no user's `aegis --help` pays. Compiled once here, outside the tree.
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        env["PYTHONPYCACHEPREFIX"] = str(base / "pycache")
        subprocess.run(
            [
                sys.executable,
                "-m",
                "compileall",
                "-q",
                str(Path(__file__).resolve().parents[2] / "aegis"),
            ],
            env=env,
            check=True,
            capture_output=True,
        )
        aegis = [sys.executable, "-m", "aegis"]
        out = subprocess.run(
            [*aegis, "requests", "--stuck", "--json"], env=env, check=True, capture_output=True
        )
        stuck_count = out.stdout.count(b'"id"')
        stuck_s = _wall([*aegis, "requests", "--stuck", "--json"], env)
        help_s = _wall([*aegis, "--help"], env)
        monitor_s = _wall([*aegis, "monitor"], env, runs=3)
        # Exits 7 here (no sockets, keys or policy in this home): the time is the figure.
        doctor_s = _wall([*aegis, "doctor", "--json"], env, runs=3, check=False)
        pass_s = _wall([sys.executable, "-c", "pass"], env)
    return {
        "transitions_per_s": round(rate),
        "raw_sqlite_per_s": round(raw),
        "transition_vs_raw_ratio": round(statistics.median(ratios), 3),
        "api_advance_per_s": round(api_rate),
        "stuck_json_100k_s": round(stuck_s, 3),
        "stuck_json_100k_found": stuck_count,
        "help_minus_python_ms": round((help_s - pass_s) * 1000, 1),
        "monitor_pass_100k_s": round(monitor_s, 3),
        "doctor_100k_s": round(doctor_s, 3),
    }


if __name__ == "__main__":
    import json

    print(json.dumps(run(), indent=2))
