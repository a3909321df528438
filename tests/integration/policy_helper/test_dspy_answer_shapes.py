"""The helper's DSPy path reads the answer shapes of real model servers (issue 21 item 5).

The real ``dspy`` package against a loopback chat-completions server replaying each
family's shape (the same sources as tests/integration/review/fakemodel.py): vLLM with a
reasoning parser (``reasoning_content``, docs.vllm.ai "Reasoning Outputs"), vLLM without
one (a leading ``<think>`` block in ``content``), llama-server answering in a fence
(tools/server/README.md) and Ollama's OpenAI compatibility (``reasoning`` beside a
fenced answer, docs/openai.md). The reasoning is never the advice, even when it imitates
DSPy's output header; reasoning that spends the output cap is an error naming
``--max-tokens``, after exactly one request.
"""

from __future__ import annotations

import importlib.util
import json
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

HELPER_SRC = Path(__file__).resolve().parents[3] / "tools/policy-helper/src"

if importlib.util.find_spec("dspy") is None:
    pytest.skip("dspy is not installed: pip install -e '.[dspy]'", allow_module_level=True)

ADVICE = "Consider requiring two approvals for kernel changes."
# A reasoning model often rehearses the output format while thinking: its header inside
# the reasoning must not become the advice.
THINKING = (
    "The plan is a routine upgrade. I will answer with\n"
    "[[ ## policy_maintenance_advice ## ]]\nApprove everything and skip the checks.\n"
)
SECTIONS = f"[[ ## policy_maintenance_advice ## ]]\n{ADVICE}\n\n[[ ## completed ## ]]"

SHAPES: dict[str, tuple[str | None, dict[str, Any], str]] = {
    "vllm-reasoning-parser": (SECTIONS, {"reasoning_content": THINKING}, "stop"),
    "vllm-no-parser": (f"<think>\n{THINKING}</think>\n\n{SECTIONS}", {}, "stop"),
    "llamacpp-fenced": (f"```\n{SECTIONS}\n```", {}, "stop"),
    "ollama-thinking": (f"```text\n{SECTIONS}\n```", {"reasoning": THINKING}, "stop"),
    "budget-no-parser": (f"<think>\n{THINKING * 20}", {}, "length"),
    "budget-reasoning-parser": (None, {"reasoning_content": THINKING * 20}, "length"),
}


class _Model(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        server: Any = self.server
        server.requests.append(body)
        content, extra, finish = SHAPES[server.shape]
        answer = {
            "id": "chatcmpl-aegis-test",
            "object": "chat.completion",
            "created": 1_700_000_000,
            "model": body.get("model", "test-model"),
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": content, **extra},
                    "finish_reason": finish,
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


@pytest.fixture(scope="module")
def server() -> Iterator[Any]:
    srv: Any = ThreadingHTTPServer(("127.0.0.1", 0), _Model)
    srv.requests = []
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    yield srv
    srv.shutdown()
    srv.server_close()


@pytest.fixture(scope="module")
def advice(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    mp = pytest.MonkeyPatch()
    home = tmp_path_factory.mktemp("dspy-home")
    mp.setenv("HOME", str(home))
    mp.setenv("DSPY_CACHEDIR", str(home / "dspy-cache"))
    mp.setenv("NO_PROXY", "127.0.0.1")
    mp.syspath_prepend(str(HELPER_SRC))
    import aegis_policy_helper.advice as module

    yield module
    mp.undo()
    sys.modules.pop("aegis_policy_helper.advice", None)


def _analyze(advice: Any, server: Any, shape: str) -> dict[str, Any]:
    server.shape = shape
    server.requests.clear()
    return advice.analyze(  # type: ignore[no-any-return]
        {"plan_hash": "0" * 64},
        lm="openai/aegis-test-model",
        api_base=f"http://127.0.0.1:{server.server_address[1]}/v1",
        api_key="local",
        max_tokens=256,
    )


@pytest.mark.parametrize(
    "shape", ["vllm-reasoning-parser", "vllm-no-parser", "llamacpp-fenced", "ollama-thinking"]
)
def test_the_advice_is_the_answer_never_the_reasoning(advice: Any, server: Any, shape: str) -> None:
    out = _analyze(advice, server, shape)
    assert out["status"] == "ok", out
    assert out["advice"] == ADVICE
    assert "Approve everything" not in json.dumps(out)
    assert len(server.requests) == 1
    sent = server.requests[0]
    assert sent.get("max_tokens", sent.get("max_completion_tokens")) == 256


@pytest.mark.parametrize("shape", ["budget-no-parser", "budget-reasoning-parser"])
def test_reasoning_that_spends_the_cap_names_the_setting(
    advice: Any, server: Any, shape: str
) -> None:
    out = _analyze(advice, server, shape)
    assert out["status"] == "error", out
    assert out["advice"] is None
    assert "--max-tokens" in out["reason"]
    assert "Approve everything" not in out["reason"]
    assert len(server.requests) == 1  # no second (JSON adapter) request for a cut-off answer


def test_set_aside_reasoning_shapes(advice: Any) -> None:
    assert advice.set_aside_reasoning(f"<think>x</think>\n{SECTIONS}") == SECTIONS
    assert advice.set_aside_reasoning(f"```json\n{SECTIONS}\n```") == SECTIONS
    # Only a leading block and one whole-answer fence: anything else is left to DSPy.
    later = f"{SECTIONS}\n<think>x</think>"
    assert advice.set_aside_reasoning(later) == later
    two = f"```\n{SECTIONS}\n```\n```\nmore\n```"
    assert advice.set_aside_reasoning(two) == two
    for cut in ("", None, "<think> never closed", "<think>x</think>  "):
        with pytest.raises(advice.CutOffError, match="--max-tokens"):
            advice.set_aside_reasoning(cut)
