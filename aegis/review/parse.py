"""Parsing the model's answer into the closed review schema. Pure.

Two layers, both untrusted:

1. :func:`parse_envelope`: the chat-completions HTTP body -> the assistant's
   content string. A body that is not the protocol is a *failed* review.
2. :func:`parse_answer`: the content -> :class:`Answer`. Anything else is an
   *invalid* review with a reason: oversized, not strict JSON, not one object,
   unknown or missing fields, values outside the enums, "approve"/"allow",
   control characters, or argv / shell text in the summary.

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
"""The answer content; a longer answer is invalid."""
MAX_ENVELOPE_BYTES = 256 * 1024
"""The whole HTTP body the client reads; larger is invalid (client.py stops reading)."""
FIELDS = frozenset({"risk", "flags", "recommendation", "summary"})
_TOKEN = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]{0,31}$")
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
    message = choice.get("message")
    content = message.get("content") if isinstance(message, dict) else None
    if not isinstance(content, str):
        return Rejected("the endpoint's response has no message content", failed=True)
    if choice.get("finish_reason") == "length":
        return Rejected("the answer was cut off at the output token cap")
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


def parse_answer(content: str | bytes) -> Answer | Rejected:
    """Parse the model's answer strictly into :class:`Answer`, or say why not."""
    raw = content.encode("utf-8", "surrogatepass") if isinstance(content, str) else content
    if len(raw) > MAX_ANSWER_BYTES:
        return Rejected(f"answer is {len(raw)} bytes, more than the {MAX_ANSWER_BYTES} allowed")
    try:
        doc = loads_strict(raw.strip(), max_bytes=MAX_ANSWER_BYTES)
    except InputError:
        return Rejected("answer is not strict JSON (one object, no duplicate keys or floats)")
    if not isinstance(doc, dict):
        return Rejected("answer is not a JSON object")
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
