"""The helper's DSPy path with the real ``dspy`` package against a loopback model server.

A scripted OpenAI-compatible server (``POST /v1/chat/completions``) on 127.0.0.1 answers
in DSPy's chat format and records what it was asked. Before the input field was renamed
(``instructions`` shadowed ``dspy.Signature.instructions``) DSPy failed with a TypeError
and the server never got a request.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from nacl.signing import SigningKey

from aegis.devtools import signing
from aegis.ed25519 import public_hex
from aegis.sign.execution_plan import execution_plan_bytes

REPO = Path(__file__).resolve().parents[3]
HELPER_SRC = REPO / "tools/policy-helper/src"
ADVICE = "Consider requiring two approvals for \x1b[31mkernel\x1b[0m changes."
SIGNER, APPROVER = SigningKey.generate(), SigningKey.generate()

if importlib.util.find_spec("dspy") is None:
    # DSPy is its own extra, not part of [test] (about 375 MB with LiteLLM and boto3).
    pytest.skip("dspy is not installed: pip install -e '.[dspy]'", allow_module_level=True)


class _Model(BaseHTTPRequestHandler):
    requests: list[dict[str, Any]]

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.server.requests.append({"path": self.path, "body": body})  # type: ignore[attr-defined]
        prompt = json.dumps(body.get("messages", []))
        # DSPy's chat format names the output field between [[ ## ... ## ]] markers.
        if "[[ ## policy_maintenance_advice ## ]]" in prompt:
            content = f"[[ ## policy_maintenance_advice ## ]]\n{ADVICE}\n\n[[ ## completed ## ]]\n"
        else:
            content = "unexpected prompt"
        answer = {
            "id": "chatcmpl-aegis-test",
            "object": "chat.completion",
            "created": 1_700_000_000,
            "model": body.get("model", "test-model"),
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": content},
                    "finish_reason": "stop",
                }
            ],
            "usage": {"prompt_tokens": 10, "completion_tokens": 10, "total_tokens": 20},
        }
        data = json.dumps(answer).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def model_server() -> Iterator[ThreadingHTTPServer]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Model)
    server.requests = []  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()
    thread.join(timeout=10)


def test_real_dspy_asks_the_model_server_and_the_advice_stays_inert(
    tmp_path: Path, model_server: ThreadingHTTPServer
) -> None:
    plan = signing.make_plan()
    ep = signing.make_execution_plan(
        plan, SIGNER, approvals=(signing.make_approval(plan, APPROVER),)
    )
    ep_file = tmp_path / "ep.json"
    ep_file.write_bytes(execution_plan_bytes(ep))
    out = tmp_path / "report.json"
    port = model_server.server_address[1]
    env = {
        **{k: v for k, v in os.environ.items() if not k.endswith("_PROXY")},
        "PYTHONPATH": str(HELPER_SRC),
        "HOME": str(tmp_path),
        "DSPY_CACHEDIR": str(tmp_path / "dspy-cache"),
        "NO_PROXY": "127.0.0.1",
    }
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "aegis_policy_helper",
            "report",
            "--execution-plan",
            str(ep_file),
            "--execution-public-key-hex",
            public_hex(SIGNER),
            "--approval-public-key-hex",
            public_hex(APPROVER),
            "--out",
            str(out),
            "--lm",
            "openai/aegis-test-model",
            "--api-base",
            f"http://127.0.0.1:{port}/v1",
            "--api-key",
            "local",
        ],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    requests = model_server.requests  # type: ignore[attr-defined]
    assert len(requests) == 1, requests  # one chat-format round trip, no adapter fallback
    first = requests[0]
    assert first["path"] == "/v1/chat/completions"
    assert first["body"]["model"] == "aegis-test-model"
    prompt = json.dumps(first["body"]["messages"])
    assert "plan_summary" in prompt
    assert "cannot approve" in prompt  # the task text reached the model
    report = json.loads(out.read_text())
    analysis = report["dspy_analysis"]
    assert analysis["status"] == "ok", analysis
    assert analysis["trust"] == "untrusted-advice"
    assert "two approvals" in analysis["advice"]
    assert "\x1b" not in analysis["advice"]
    assert report["verification"]["execution_signature_verified"] is True
