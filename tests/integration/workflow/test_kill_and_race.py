"""Real SIGKILLs between guard and commit, and two processes racing on one request."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from aegis import api
from aegis.config import Config, load_config
from aegis.devtools.sample_plans import sample_plan
from aegis.devtools.unsafe_fake_stages import ALL
from aegis.workflow.store import PAUSE_ENV, PAUSE_STEPS


@pytest.fixture
def cfg(aegis_home: Path) -> Config:
    return load_config()


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != PAUSE_ENV}
    env.update(extra)
    return env


def _run_until_paused(argv: list[str], step: str) -> None:
    """Start ``argv`` with the pause hook at ``step``, wait for it to stop there, SIGKILL it."""
    proc = subprocess.Popen(
        argv,
        env=_env(**{PAUSE_ENV: step, "AEGIS_UNSAFE_STAGES": ALL}),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stderr is not None
    seen = []
    with proc, proc.stderr:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            line = proc.stderr.readline()
            if not line:
                break
            seen.append(line)
            if line.strip() == f"AEGIS_TEST_PAUSED {step}":
                os.kill(proc.pid, signal.SIGKILL)
                proc.wait(10)
                assert proc.returncode == -signal.SIGKILL
                return
        proc.kill()
        proc.wait(10)
    pytest.fail(f"process never paused at {step}: {''.join(seen)}")


def _store_rows(cfg: Config) -> tuple[list[object], list[object], list[object]]:
    conn = sqlite3.connect(cfg.store_path)
    try:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        return (
            conn.execute("SELECT * FROM requests ORDER BY id").fetchall(),
            conn.execute("SELECT * FROM history ORDER BY request_id, seq").fetchall(),
            # Both the links and the content-addressed bodies: no orphan artifact either.
            conn.execute("SELECT * FROM request_artifacts ORDER BY request_id, seq").fetchall()
            + conn.execute("SELECT sha256 FROM artifacts ORDER BY sha256").fetchall(),
        )
    finally:
        conn.close()


def _aegis(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "aegis", *args],
        env=_env(**env),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize("step", PAUSE_STEPS)
def test_sigkill_mid_transition_leaves_no_trace_and_resume_completes(
    cfg: Config, step: str
) -> None:
    planned = api.submit_plan(cfg, sample_plan("p-kill"), "tester")
    before = _store_rows(cfg)
    _run_until_paused([sys.executable, "-m", "aegis", "resume", "--json"], step)

    # A fresh process opens the store: consistent, no half transition.
    shown = _aegis("show", planned.request_id, "--json")
    assert shown.returncode == 0, shown.stderr
    request = json.loads(shown.stdout)["request"]
    assert request["state"] == "analyzed"
    requests_after, history_after, artifacts_after = _store_rows(cfg)
    assert history_after == before[1]
    assert artifacts_after == before[2]
    # Only the advisory lease may differ (taken before the step ran).
    assert [r[:8] for r in requests_after] == [r[:8] for r in before[0]]

    resumed = _aegis("resume", "--json", AEGIS_UNSAFE_STAGES=ALL)
    assert resumed.returncode == 0, resumed.stderr
    items = json.loads(resumed.stdout)["items"]
    assert [(i["request_id"], i["action"], i["state_after"]) for i in items] == [
        (planned.request_id, "advanced", "reviewed")
    ]
    detail = api.get_request_detail(cfg, planned.request_id)
    assert [h.trigger for h in detail.history] == ["create", "analyze", "review"]


@pytest.mark.parametrize("step", ["begun", "history"])
def test_sigkill_while_creating_a_request_creates_nothing(cfg: Config, step: str) -> None:
    code = (
        "from aegis import api; from aegis.config import load_config; "
        "from aegis.devtools.sample_plans import sample_plan; "
        "api.submit_plan(load_config(), sample_plan('p-new'), 'tester')"
    )
    api.list_requests(cfg)  # create the store first, so only the request is in flight
    _run_until_paused([sys.executable, "-c", code], step)
    assert _store_rows(cfg) == ([], [], [])
    assert api.find_request_by_plan(cfg, "p-new") is None
    planned = api.submit_plan(cfg, sample_plan("p-new"), "tester")  # and it can be redone
    assert api.get_request(cfg, planned.request_id).state == "analyzed"


RACER = """
import json, os, sys, time
from aegis import api
from aegis.config import load_config
from aegis.errors import StateError
cfg = load_config()
ids, start, slot = json.loads(sys.argv[1]), float(sys.argv[2]), float(sys.argv[3])
out = {}
for i, rid in enumerate(ids):
    while time.time() < start + i * slot:
        pass
    try:
        api.advance(cfg, rid, "review", f"racer-{os.getpid()}", artifact_kind="review",
                    artifact=f"review by {os.getpid()}".encode())
        out[rid] = "won"
    except StateError as e:
        out[rid] = f"lost:{e.exit_code}:{type(e).__name__}:{e.message}"
print(json.dumps({"pid": os.getpid(), "out": out}))
"""


def test_two_processes_racing_exactly_one_transition_per_race(cfg: Config) -> None:
    n = 25
    ids = [api.submit_plan(cfg, sample_plan(f"p-race-{i}"), "t").request_id for i in range(n)]
    start = time.time() + 2.0
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", RACER, json.dumps(ids), str(start), "0.06"],
            env=_env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    finished = []
    for proc in procs:
        with proc:
            finished.append((proc.communicate(timeout=120), proc.returncode))
    results = []
    for (out, err), code in finished:
        assert code == 0, err
        results.append(json.loads(out))
    for rid in ids:
        outcomes = sorted((r["out"][rid], r["pid"]) for r in results)
        (lost, _), (won, winner) = outcomes
        assert won == "won", outcomes
        # The loser gets exit 6 and a message saying why nothing of its attempt was kept.
        assert lost.startswith("lost:6:"), outcomes
        assert (
            f"request {rid!r} changed while this step ran" in lost and "nothing was written" in lost
        ) or "trigger 'review' is not allowed in state 'reviewed'" in lost, lost
        history = api.get_request_detail(cfg, rid).history
        assert [h.trigger for h in history].count("review") == 1
        assert [h.actor for h in history if h.trigger == "review"] == [f"racer-{winner}"]
        assert api.get_request(cfg, rid).state == "reviewed"
        (art,) = [a for a in api.request_artifacts(cfg, rid) if a.kind == "review"]
        assert api.load_artifact(cfg, art.sha256) == f"review by {winner}".encode()
