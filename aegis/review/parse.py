"""Parsing the model's answer into the closed review schema. Pure.

Two layers, both untrusted:

1. :func:`parse_envelope`: the chat-completions HTTP body -> the assistant's
   content string. A body that is not the protocol is a *failed* review.
2. :func:`parse_answer`: the content -> :class:`Answer`. Anything else is an
   *invalid* review with a reason: oversized, not strict JSON, not one object,
   unknown or missing fields, values outside the enums, "approve"/"allow",
   control characters, or argv / shell text in the summary.

What real servers wrap around the answer (docs/operator-guide.md, "The review model"):

- One leading reasoning block, ``<think>...</think>``, as a reasoning model writes it
  when the server runs without a reasoning parser (vLLM's ``reasoning_content`` and
  Ollama's ``reasoning`` fields are separate and never read). It is set aside whole,
  before the strict parse: never the answer, never the summary, never searched for
  fields. A second block, or one never closed, leaves the content invalid.
- One Markdown-fenced JSON object (```` ```json ```` ... ```` ``` ````) that is the whole
  content, as llama.cpp and Ollama answer when no JSON mode is honoured. The fence
  carries no text of its own, so it is accepted; anything before or after it, or a
  second fence, stays invalid.
- ``finish_reason: length``: the answer was cut off (reasoning counts against the cap);
  the rejection names the setting to raise.

Reasons are our own words; model text is never quoted in a reason (field names
are quoted only when they are short plain tokens), so a reason is safe to sign,
store and show.

Example:
    >>> parse_answer('{"risk":"low","flags":[],"recommendation":"no-objection",'
    ...              '"summary":"Routine upgrade."}')
    Answer(risk=<Risk.LOW: 'low'>, flags=(), recommendation=..., summary='Routine upgrade.')
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from aegis.canonical import loads_strict
from aegis.errors import InputError
from aegis.review.record import MAX_SUMMARY_CHARS, Flag, Recommendation, Risk

MAX_ANSWER_BYTES = 4096
"""The answer content (after a leading reasoning block); a longer answer is invalid."""
MAX_REASONING_BYTES = 192 * 1024
"""A leading ``<think>`` block; bounded by the envelope cap anyway."""
CUT_OFF = (
    "the answer was cut off at the output token cap (reasoning counts against it): raise "
    "ai_max_tokens in aegis.toml (AEGIS_AI_MAX_TOKENS)"
)
_THINK_OPEN, _THINK_CLOSE = "<think>", "</think>"
_FENCE = re.compile(r"\A```(?:json|JSON)?[ \t]*\n(?P<body>[^`]*?)\n?```\Z")
MAX_ENVELOPE_BYTES = 256 * 1024
"""The whole HTTP body the client reads; larger is invalid (client.py stops reading)."""
FIELDS = frozenset({"risk", "flags", "recommendation", "summary"})
_TOKEN = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]{0,31}\Z")
_APPROVING = frozenset(
    {
        "approve",
        "approved",
        "approval",
        "allow",
        "allowed",
        "accept",
        "accepted",
        "ok",
        "pass",
        "yes",
        "safe",
        "go",
        "proceed",
        "no-objection-approve",
    }
)
# Text a model should never put in a summary: shell syntax, command lines, code.
_SHELL = re.compile(
    r"""
      `                                   # backticks, code fences
    | \$\( | \$\{                          # command / parameter substitution
    | && | \|\|                            # command lists
    | \|\s*(?:sudo\s+)?(?:ba|z|da)?sh\b    # pipe to a shell
    | (?:^|\s)(?:>>?|<)\s*/                # redirection to or from a path
    | \b(?:sudo|apt-get|apt|aptitude|dpkg|curl|wget|bash|sh|zsh|rm|chmod|chown|
          systemctl|aegisctl|aegis|pip3?|npm|python3?|perl|nc|base64)
      \s+(?:-{1,2}[A-Za-z]|\+[a-z]|install\b|remove\b|purge\b|upgrade\b|sign\b|apply\b|
          approve\b|https?://|/|~/)
    | \[\s*"[^"]*"\s*,\s*"                 # a JSON argv array
    | (?:^|\n)\s*[$#]\s                    # a prompt-prefixed command line
    """,
    re.VERBOSE | re.IGNORECASE,
)
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")


@dataclass(frozen=True)
class Answer:
    """A model answer inside the closed schema."""

    risk: Risk
    flags: tuple[Flag, ...]
    recommendation: Recommendation
    summary: str


@dataclass(frozen=True)
class Rejected:
    """An answer outside the schema (status ``invalid``) or a broken protocol (``failed``)."""

    reason: str
    failed: bool = False
    """True: the HTTP body was not the chat-completions protocol (status ``failed``)."""


@dataclass(frozen=True)
class Content:
    """The assistant's message from a chat-completions body."""

    text: str
    model: str | None


_NAMES_SHOWN = 5
"""Unknown field names quoted in a rejection; the rest are counted (model output is untrusted)."""


def _names(keys: set[str]) -> str:
    shown = sorted(k for k in keys if _TOKEN.match(k))
    hidden = len(keys) - len(shown)
    parts = [repr(k) for k in shown[:_NAMES_SHOWN]]
    if hidden or len(shown) > _NAMES_SHOWN:
        parts.append(f"{hidden + max(0, len(shown) - _NAMES_SHOWN)} other(s)")
    return ", ".join(parts)


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise ValueError("duplicate key")
        out[key] = value
    return out


def parse_envelope(body: bytes) -> Content | Rejected:
    """Extract the assistant's content from a chat-completions response body."""
    if len(body) > MAX_ENVELOPE_BYTES:
        return Rejected(f"response is larger than {MAX_ENVELOPE_BYTES} bytes")
    try:
        # Floats are legal in the envelope (usage, timings); duplicates are not.
        doc = json.loads(body.decode("utf-8"), object_pairs_hook=_no_duplicates)
    except (UnicodeDecodeError, ValueError, RecursionError):
        return Rejected("the endpoint's response is not chat-completions JSON", failed=True)
    choices = doc.get("choices") if isinstance(doc, dict) else None
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
        return Rejected("the endpoint's response has no choices", failed=True)
    choice = choices[0]
    if choice.get("finish_reason") == "length":
        # Checked first: a reasoning model that spent the cap thinking has no content.
        return Rejected(CUT_OFF)
    message = choice.get("message")
    content = message.get("content") if isinstance(message, dict) else None
    if not isinstance(content, str):
        return Rejected("the endpoint's response has no message content", failed=True)
    model = doc.get("model")
    return Content(content, model[:200] if isinstance(model, str) else None)


def _enum(value: Any, enum: type[Risk] | type[Recommendation], field: str) -> Any:
    if not isinstance(value, str):
        return Rejected(f"{field} must be a string")
    try:
        return enum(value)
    except ValueError:
        allowed = ", ".join(m.value for m in enum)
        return Rejected(f"{field} is not one of {allowed}")


def _flags(value: Any) -> tuple[Flag, ...] | Rejected:
    if not isinstance(value, list) or len(value) > len(Flag):
        return Rejected(f"flags must be a list of at most {len(Flag)} names")
    out: list[Flag] = []
    for item in value:
        if not isinstance(item, str) or item not in Flag._value2member_map_:
            return Rejected("flags holds a name outside the closed list")
        if Flag(item) in out:
            return Rejected("flags repeat")
        out.append(Flag(item))
    return tuple(out)


def _summary(value: Any) -> str | Rejected:
    if not isinstance(value, str):
        return Rejected("summary must be a string")
    if len(value) > MAX_SUMMARY_CHARS:
        return Rejected(f"summary is longer than {MAX_SUMMARY_CHARS} characters")
    if _CONTROL.search(value):
        return Rejected("summary holds control or bidi characters")
    if _SHELL.search(value):
        return Rejected("summary holds command, argv or shell text")
    return value.strip()


def unwrap_answer(content: str) -> str | Rejected:
    """The answer without one leading reasoning block and one enclosing JSON fence."""
    text = content.strip()
    if text.startswith(_THINK_OPEN):
        end = text.find(_THINK_CLOSE)
        if end < 0:
            return Rejected("the reasoning block is never closed (the answer may be cut off)")
        if len(text[:end].encode("utf-8", "surrogatepass")) > MAX_REASONING_BYTES:
            return Rejected(f"the reasoning block is longer than {MAX_REASONING_BYTES} bytes")
        text = text[end + len(_THINK_CLOSE) :].strip()
    fenced = _FENCE.match(text)
    if fenced is not None:
        text = fenced["body"].strip()
    return text


def parse_answer(content: str | bytes) -> Answer | Rejected:
    """Parse the model's answer strictly into :class:`Answer`, or say why not."""
    if isinstance(content, bytes):
        try:
            content = content.decode("utf-8")
        except UnicodeDecodeError:
            return Rejected("answer is not strict JSON (one object, no duplicate keys or floats)")
    unwrapped = unwrap_answer(content)
    if isinstance(unwrapped, Rejected):
        return unwrapped
    raw = unwrapped.encode("utf-8", "surrogatepass")
    if len(raw) > MAX_ANSWER_BYTES:
        return Rejected(f"answer is {len(raw)} bytes, more than the {MAX_ANSWER_BYTES} allowed")
    try:
        doc = loads_strict(raw.strip(), max_bytes=MAX_ANSWER_BYTES)
    except InputError:
        return Rejected("answer is not strict JSON (one object, no duplicate keys or floats)")
    if not isinstance(doc, dict):
        return Rejected("answer is not a JSON object")
    return _answer_from(doc)


def _answer_from(doc: dict[str, Any]) -> Answer | Rejected:
    unknown = set(doc) - FIELDS
    if unknown:
        return Rejected(f"answer has fields outside the schema: {_names(unknown)}")
    missing = FIELDS - set(doc)
    if missing:
        return Rejected(f"answer lacks field(s): {', '.join(sorted(missing))}")
    rec = doc["recommendation"]
    if isinstance(rec, str) and rec.strip().lower() in _APPROVING:
        return Rejected("the reviewer may not approve or allow; its recommendation is refused")
    recommendation = _enum(rec, Recommendation, "recommendation")
    if isinstance(recommendation, Rejected):
        return recommendation
    risk = _enum(doc["risk"], Risk, "risk")
    if isinstance(risk, Rejected):
        return risk
    flags = _flags(doc["flags"])
    if isinstance(flags, Rejected):
        return flags
    summary = _summary(doc["summary"])
    if isinstance(summary, Rejected):
        return summary
    return Answer(risk=risk, flags=flags, recommendation=recommendation, summary=summary)
