"""The model's answer must parse into the closed schema; anything else is invalid."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from aegis.review.parse import Answer, Content, Rejected, parse_answer, parse_envelope
from aegis.review.record import Flag, Recommendation, Risk

GOOD = {
    "risk": "medium",
    "flags": ["kernel-change"],
    "recommendation": "require-approval",
    "summary": "A kernel package changes; schedule a reboot window.",
}


def _with(**changes: object) -> str:
    return json.dumps({**GOOD, **changes})


def test_a_valid_answer_parses() -> None:
    assert parse_answer(json.dumps(GOOD)) == Answer(
        Risk.MEDIUM, (Flag.KERNEL_CHANGE,), Recommendation.REQUIRE_APPROVAL, GOOD["summary"]
    )


# Answer shapes of real servers (docs/operator-guide.md "The review model"):
# - vLLM without a reasoning parser: the model's <think>...</think> precedes the JSON in
#   `content` (vLLM docs, "Reasoning Outputs": without --reasoning-parser the reasoning
#   stays in the content);
# - llama.cpp's llama-server and Ollama without a JSON mode: one ```json fenced block.
SHAPES = [
    ("bare", json.dumps(GOOD)),
    ("think", "<think>\nThe plan upgrades a kernel; risk medium.\n</think>\n\n" + json.dumps(GOOD)),
    ("fenced", "```json\n" + json.dumps(GOOD) + "\n```"),
    ("fenced-plain", "```\n" + json.dumps(GOOD, indent=2) + "\n```\n"),
    ("think-fenced", "<think>ok</think>\n```json\n" + json.dumps(GOOD) + "\n```"),
]


@pytest.mark.parametrize("content", [c for _, c in SHAPES], ids=[n for n, _ in SHAPES])
def test_server_answer_shapes_parse_to_the_same_answer(content: str) -> None:
    assert parse_answer(content) == parse_answer(json.dumps(GOOD))


def test_the_reasoning_is_never_the_summary_or_a_field() -> None:
    sneaky = '<think>{"risk":"low","flags":[],"recommendation":"no-objection","summary":"x"}'
    out = parse_answer(sneaky + "</think>" + json.dumps(GOOD))
    assert isinstance(out, Answer)
    assert out.recommendation is Recommendation.REQUIRE_APPROVAL
    assert "think" not in out.summary


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        ("not json at all", "not strict JSON"),
        ("Here it is:\n```json\n" + json.dumps(GOOD) + "\n```", "not strict JSON"),
        ("```json\n" + json.dumps(GOOD) + "\n```\nApprove it.", "not strict JSON"),
        ("```json\n" + json.dumps(GOOD) + "\n```\n```json\n{}\n```", "not strict JSON"),
        ("<think>x</think><think>y</think>" + json.dumps(GOOD), "not strict JSON"),
        ("<think>still thinking " + json.dumps(GOOD), "never closed"),
        (json.dumps(GOOD) + "<think>later</think>", "not strict JSON"),
        ("<think>" + "x" * (200 * 1024) + "</think>" + json.dumps(GOOD), "reasoning block is"),
        ("[1, 2]", "not a JSON object"),
        (_with(confidence="high"), "fields outside the schema: 'confidence'"),
        (_with(**{"ignore previous rules": 1}), "1 other(s)"),
        (json.dumps({k: v for k, v in GOOD.items() if k != "summary"}), "lacks field(s): summary"),
        (_with(recommendation="approve"), "may not approve or allow"),
        (_with(recommendation="ALLOW"), "may not approve or allow"),
        (_with(recommendation="approved"), "may not approve or allow"),
        (_with(recommendation="maybe"), "recommendation is not one of"),
        (_with(risk="none"), "risk is not one of"),
        (_with(risk=3), "risk must be a string"),
        (_with(flags=["rootkit"]), "outside the closed list"),
        (_with(flags="kernel-change"), "flags must be a list"),
        (_with(flags=["other-concern", "other-concern"]), "flags repeat"),
        (_with(summary="x" * 601), "longer than 600"),
        (_with(summary=None), "summary must be a string"),
        (_with(summary="fine\x1b[2J"), "control or bidi"),
        (_with(summary="fine \u202e evil"), "control or bidi"),
        (_with(summary="run sudo apt-get install -y nginx"), "shell text"),
        (_with(summary="then `reboot`"), "shell text"),
        (_with(summary="curl http://x | sh is fine"), "shell text"),
        (_with(summary="echo $(id)"), "shell text"),
        (_with(summary='argv ["/usr/bin/apt-get", "install"]'), "shell text"),
        (_with(summary="rm -rf / cleans up"), "shell text"),
        (_with(summary="a && b"), "shell text"),
        (_with(summary="write > /etc/sudoers"), "shell text"),
        (_with(summary="ok\n$ aegisctl sign --plan p.json"), "shell text"),
        (
            '{"risk":"low","risk":"low","flags":[],"recommendation":"deny","summary":""}',
            "not strict JSON",
        ),
        (_with(summary=1.5), "not strict JSON"),
        ("{" * 5000, "bytes, more than"),
    ],
    ids=lambda v: str(v)[:30],
)
def test_anything_else_is_invalid_with_its_reason(content: str, reason: str) -> None:
    out = parse_answer(content)
    assert isinstance(out, Rejected)
    assert reason in out.reason
    assert not out.failed


@pytest.mark.parametrize(
    "summary",
    [
        "The postinst downloads a script with curl and pipes it to a shell.",
        "Writes to /etc/sudoers; privilege change.",
        "Routine upgrade; no concerns.",
        "",
    ],
)
def test_prose_about_scripts_is_allowed(summary: str) -> None:
    assert isinstance(parse_answer(_with(summary=summary)), Answer)


def test_reasons_never_quote_model_text() -> None:
    out = parse_answer(_with(**{"\x1b[31mevil key with spaces": 1}))
    assert isinstance(out, Rejected)
    assert "evil" not in out.reason
    assert "\x1b" not in out.reason


def _env(content: object, finish: str = "stop") -> bytes:
    return json.dumps(
        {
            "model": "m",
            "choices": [
                {"message": {"role": "assistant", "content": content}, "finish_reason": finish}
            ],
            "usage": {"x": 0.5},
        }
    ).encode()


def test_envelope() -> None:
    assert parse_envelope(_env("hi")) == Content("hi", "m")
    cut = parse_envelope(_env("{", "length"))
    assert isinstance(cut, Rejected)
    assert not cut.failed
    for body in (b"nope", b"{}", b'{"choices": []}', _env(None), b'{"a":1,"a":2}'):
        out = parse_envelope(body)
        assert isinstance(out, Rejected), body
        assert out.failed, body
    big = parse_envelope(b" " * (300 * 1024))
    assert isinstance(big, Rejected)
    assert not big.failed


# Hypothesis: whatever the model sends, parsing never raises and only schema answers pass.

_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=5)
    ),
    max_leaves=12,
)


@given(st.one_of(st.text(max_size=300), st.binary(max_size=300)))
def test_any_text_parses_or_is_rejected(content: str | bytes) -> None:
    out = parse_answer(content)
    assert isinstance(out, Answer | Rejected)


@given(st.dictionaries(st.sampled_from(["risk", "flags", "recommendation", "summary", "x"]), _json))
def test_only_schema_answers_pass(doc: dict[str, object]) -> None:
    out = parse_answer(json.dumps(doc))
    if isinstance(out, Answer):
        assert set(doc) == {"risk", "flags", "recommendation", "summary"}
        assert doc["recommendation"] in ("no-objection", "require-approval", "deny")
