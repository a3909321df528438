"""The reviewer against a real HTTP server on loopback speaking chat completions.

Each scripted answer becomes a signed review; the real policy engine then decides
with it. None loosens the decision; every failure requires approval.
"""

from __future__ import annotations

import socket
import time
from datetime import datetime

import pytest
from fakemodel import SERVER_SHAPES, VALID, FakeModelServer

from aegis.devtools import policy_plans as pp
from aegis.ed25519 import public_hex
from aegis.model import plan_hash
from aegis.policy.config import parse_policy_config
from aegis.policy.engine import evaluate
from aegis.policy.result import STRICTNESS, Effect
from aegis.review.client import chat
from aegis.review.record import ReviewStatus, sign_review
from aegis.review.service import make_review

PLAN = pp.clean_plan(packages=3)
DIGEST = plan_hash(PLAN)
NOW = datetime.fromisoformat(pp.NOW.replace("Z", "+00:00"))


def _key():  # type: ignore[no-untyped-def]
    from nacl.signing import SigningKey

    return SigningKey(b"\x07" * 32)


CONFIG = parse_policy_config(
    pp.policy_toml(
        review_required=None,
        extra=f'[review]\npublic_keys = ["{public_hex(_key())}"]\nrequired = true\n',
    )
)


def _review(url: str, timeout: float = 2.0):  # type: ignore[no-untyped-def]
    unsigned = make_review(
        PLAN, DIGEST, base_url=url, model="fake-model", timeout_s=timeout, max_tokens=256
    )
    return sign_review(unsigned, _key())


CASES = [
    ("valid", ReviewStatus.VALID, "", Effect.ALLOW_WITH_SNAPSHOT),
    ("require-approval", ReviewStatus.VALID, "", Effect.REQUIRE_APPROVAL),
    ("deny", ReviewStatus.VALID, "", Effect.DENY),
    ("invalid-json", ReviewStatus.INVALID, "not strict JSON", Effect.REQUIRE_APPROVAL),
    ("schema-breaking", ReviewStatus.INVALID, "outside the schema", Effect.REQUIRE_APPROVAL),
    ("hostile", ReviewStatus.INVALID, "may not approve", Effect.REQUIRE_APPROVAL),
    ("allow", ReviewStatus.INVALID, "may not approve", Effect.REQUIRE_APPROVAL),
    ("argv", ReviewStatus.INVALID, "shell text", Effect.REQUIRE_APPROVAL),
    ("argv-array", ReviewStatus.INVALID, "shell text", Effect.REQUIRE_APPROVAL),
    ("huge", ReviewStatus.INVALID, "larger than", Effect.REQUIRE_APPROVAL),
    ("huge-answer", ReviewStatus.INVALID, "bytes, more than", Effect.REQUIRE_APPROVAL),
    ("truncated", ReviewStatus.INVALID, "token cap", Effect.REQUIRE_APPROVAL),
    ("error-500", ReviewStatus.FAILED, "HTTP 500", Effect.REQUIRE_APPROVAL),
    ("not-protocol", ReviewStatus.FAILED, "no choices", Effect.REQUIRE_APPROVAL),
    ("slow", ReviewStatus.TIMEOUT, "within 1 s", Effect.REQUIRE_APPROVAL),
    ("trickle", ReviewStatus.TIMEOUT, "within 1 s", Effect.REQUIRE_APPROVAL),
]


@pytest.mark.parametrize(
    ("script", "status", "reason", "decision"), CASES, ids=[c[0] for c in CASES]
)
def test_scripted_answers(
    model: FakeModelServer, script: str, status: ReviewStatus, reason: str, decision: Effect
) -> None:
    model.script = script
    model.delay = 3.0
    started = time.monotonic()
    review = _review(model.base_url, timeout=1.0 if script in ("slow", "trickle") else 5.0)
    assert time.monotonic() - started < 2.5  # the deadline covers slow and trickling servers
    assert review.status is status
    assert reason in review.reason
    assert review.model == "fake-model"
    assert review.endpoint == model.base_url
    assert review.prompt_hash is not None
    baseline = evaluate(PLAN, None, CONFIG, NOW)  # no review: approval (fail closed)
    clean = evaluate(
        PLAN, None, parse_policy_config(pp.policy_toml(review_required=False)), NOW
    ).decision
    assert clean is Effect.ALLOW_WITH_SNAPSHOT
    result = evaluate(PLAN, review, CONFIG, NOW)
    assert result.decision is decision
    assert STRICTNESS[result.decision] >= STRICTNESS[clean]  # none loosens
    assert baseline.decision is Effect.REQUIRE_APPROVAL
    # The request the server saw: temperature 0, token cap, JSON mode, our prompt.
    body = model.requests[0]["body"]
    assert body["temperature"] == 0
    assert body["max_tokens"] == 256
    assert body["response_format"]["type"] == "json_schema"
    schema = body["response_format"]["json_schema"]
    assert schema["strict"] is True
    assert schema["schema"]["additionalProperties"] is False
    assert schema["schema"]["required"] == ["risk", "flags", "recommendation", "summary"]
    assert body["messages"][0]["role"] == "system"


def test_response_format_rejected_then_fallback(model: FakeModelServer) -> None:
    model.script = "no-json-mode"
    review = _review(model.base_url)
    assert review.status is ReviewStatus.VALID
    formats = [r["body"].get("response_format", {}).get("type") for r in model.requests]
    assert formats == ["json_schema", "json_object", None]


def test_a_server_without_json_schema_gets_json_object(model: FakeModelServer) -> None:
    from aegis.review.client import chat

    model.script = "json-object-only"
    review = _review(model.base_url)
    assert review.status is ReviewStatus.VALID
    formats = [r["body"]["response_format"]["type"] for r in model.requests]
    assert formats == ["json_schema", "json_object"]
    result = chat(model.base_url, "m", [], timeout_s=2, max_tokens=16)
    assert result.response_format == "json_object"


@pytest.mark.parametrize("shape", sorted(SERVER_SHAPES))
def test_every_server_family_answer_counts(model: FakeModelServer, shape: str) -> None:
    model.script = shape
    review = _review(model.base_url)
    assert review.status is ReviewStatus.VALID, review.reason
    assert review.summary == VALID["summary"]
    assert "plan upgrades" not in review.summary  # the reasoning is never the summary


def test_reasoning_that_spends_the_budget_names_the_setting(model: FakeModelServer) -> None:
    model.script = "reasoning-budget"
    review = _review(model.base_url)
    assert review.status is ReviewStatus.INVALID
    assert "ai_max_tokens" in review.reason


def test_endpoint_down_is_failed() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    review = _review(f"http://127.0.0.1:{port}/v1")
    assert review.status is ReviewStatus.FAILED
    assert "unreachable" in review.reason
    assert evaluate(PLAN, review, CONFIG, NOW).decision is Effect.REQUIRE_APPROVAL


def test_no_model_configured_is_a_neutral_skip() -> None:
    unsigned = make_review(
        PLAN, DIGEST, base_url="http://127.0.0.1:9/v1", model=None, timeout_s=1, max_tokens=1
    )
    review = sign_review(unsigned, _key())
    assert review.status is ReviewStatus.SKIPPED
    assert "no model configured" in review.reason
    assert evaluate(PLAN, review, CONFIG, NOW).decision is Effect.ALLOW_WITH_SNAPSHOT


def test_bad_base_url_is_failed() -> None:
    result = chat("file:///etc/passwd", "m", [], timeout_s=1, max_tokens=1)
    assert result.status == "failed"
