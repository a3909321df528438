"""An OpenAI-compatible ``/v1/chat/completions`` client on the standard library.

The edge between aegis-reviewd and the model server. It sends one request with
``temperature`` 0, an output token cap and a ``response_format``: first the review's
closed JSON schema (``json_schema``, which vLLM, llama.cpp and Ollama enforce while
decoding), then ``json_object``, then none, stepping down only when the server rejects
the option (HTTP 400, 415, 422 or 501); :attr:`ChatResult.response_format` records
which one answered. With ``reasoning`` ``off`` or ``low`` it also asks a reasoning model
to think briefly or not at all (:func:`reasoning_controls`); a control the server refuses
is dropped and :attr:`ChatResult.reasoning` records those that answered. One deadline
(``timeout_s``) covers connecting, every attempt and
reading the body, so a server that trickles bytes cannot hold the reviewer longer; the
body is read in chunks up to a size cap and never past it.

Outcomes (:class:`ChatResult.status`): ``ok`` (body read), ``timeout``,
``failed`` (unreachable, HTTP error, broken HTTP) and ``oversized`` (the body
passed the cap: the review is invalid). The caller parses the body with
:mod:`aegis.review.parse`.

Example:
    >>> result = chat("http://127.0.0.1:8000/v1", "m", messages, timeout_s=30, max_tokens=512)
    >>> result.status
    'ok'
"""

from __future__ import annotations

import http.client
import json
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from aegis.review.parse import MAX_ENVELOPE_BYTES
from aegis.review.record import MAX_SUMMARY_CHARS, Flag, Recommendation, Risk

FALLBACK_STATUSES = frozenset({400, 415, 422, 501})
"""HTTP statuses after which the request is retried with the next ``response_format``."""
REVIEW_SCHEMA_NAME = "aegis_review"


def review_json_schema() -> dict[str, Any]:
    """The review answer's closed schema (parse.py enforces the same, whatever is sent)."""
    return {
        "type": "object",
        "properties": {
            "risk": {"type": "string", "enum": [r.value for r in Risk]},
            "flags": {
                "type": "array",
                "items": {"type": "string", "enum": [f.value for f in Flag]},
                "uniqueItems": True,
                "maxItems": len(Flag),
            },
            "recommendation": {"type": "string", "enum": [r.value for r in Recommendation]},
            "summary": {"type": "string", "maxLength": MAX_SUMMARY_CHARS},
        },
        "required": ["risk", "flags", "recommendation", "summary"],
        "additionalProperties": False,
    }


def _formats() -> tuple[tuple[str, dict[str, Any] | None], ...]:
    schema = {"name": REVIEW_SCHEMA_NAME, "strict": True, "schema": review_json_schema()}
    return (
        ("json_schema", {"type": "json_schema", "json_schema": schema}),
        ("json_object", {"type": "json_object"}),
        ("none", None),
    )


REASONING_MODES = ("off", "low", "model")
"""``ai_reasoning``: how much reasoning the request asks for (see :func:`reasoning_controls`)."""


def reasoning_controls(mode: str) -> dict[str, Any]:
    """The request fields that keep a reasoning model's thinking off or short.

    ``off``: the chat-template switches vLLM and llama.cpp pass to the model's template
    (``enable_thinking`` for Qwen3-style templates, ``thinking`` for DeepSeek's; a template
    ignores a switch it does not use) and ``reasoning_effort: low`` (OpenAI's field, which
    vLLM and Ollama also take). ``low``: ``reasoning_effort`` only. ``model``: nothing; the
    model reasons as it was served. Each field is dropped when the server refuses it.
    """
    if mode == "model":
        return {}
    if mode == "low":
        return {"reasoning_effort": "low"}
    return {
        "chat_template_kwargs": {"enable_thinking": False, "thinking": False},
        "reasoning_effort": "low",
    }


_CONTROL_WORDS = {
    "chat_template_kwargs": ("chat_template_kwargs", "enable_thinking", "thinking"),
    "reasoning_effort": ("reasoning_effort", "reasoning effort"),
}
"""Words in a refusal's body that name each control (which one the server refused)."""
_FORMAT_WORDS = ("response_format", "json_schema", "json_object")

_CHUNK = 16 * 1024


@dataclass(frozen=True)
class ChatResult:
    """What one chat-completions exchange produced."""

    status: str
    """ok, timeout, failed or oversized."""
    body: bytes = b""
    reason: str = ""
    latency_ms: int = 0
    http_status: int | None = None
    response_format: str = "json_schema"
    """Which ``response_format`` the answering request carried: json_schema, json_object
    or none."""
    reasoning: tuple[str, ...] = ()
    """The reasoning controls the answering request carried (``chat_template_kwargs``,
    ``reasoning_effort``); those the server refused were dropped."""

    @property
    def used_response_format(self) -> bool:
        """True unless the last fallback, without ``response_format``, answered."""
        return self.response_format != "none"


class _DeadlineError(Exception):
    pass


class _OversizedError(Exception):
    pass


def endpoint_label(base_url: str) -> str:
    """The base URL without credentials, query or fragment (recorded in the review)."""
    try:
        parts = urlsplit(base_url)
        host = parts.hostname or ""
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        # "Invalid IPv6 URL", a port out of range: chat() records the endpoint as unusable;
        # the label must not raise first, nor carry text that may hold credentials.
        return "(malformed URL)"
    return f"{parts.scheme}://{host}{port}{parts.path}".rstrip("/")


def _connection(
    base_url: str, timeout: float, suffix: str = "/chat/completions"
) -> tuple[http.client.HTTPConnection, str]:
    parts = urlsplit(base_url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"AEGIS_AI_BASE_URL must be an http(s) URL, got {base_url[:80]!r}")
    path = parts.path.rstrip("/") + suffix
    cls = http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
    return cls(parts.hostname, parts.port, timeout=max(timeout, 0.001)), path


def _read_capped(
    resp: http.client.HTTPResponse,
    sock: socket.socket | None,
    deadline: float,
    clock: Callable[[], float],
    cap: int,
) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while True:
        remaining = deadline - clock()
        if remaining <= 0:
            raise _DeadlineError
        if sock is not None:
            sock.settimeout(remaining)
        chunk = resp.read1(_CHUNK) if hasattr(resp, "read1") else resp.read(_CHUNK)
        if not chunk:
            if resp.length:
                # http.client's read1 ends quietly when the server closes before its
                # Content-Length: a cut-off body is a broken exchange, not an answer.
                raise http.client.IncompleteRead(b"".join(chunks), resp.length)
            return b"".join(chunks)
        size += len(chunk)
        if size > cap:
            raise _OversizedError
        chunks.append(chunk)


def _attempt(
    base_url: str,
    payload: dict[str, Any],
    headers: dict[str, str],
    *,
    deadline: float,
    clock: Callable[[], float],
    cap: int,
) -> tuple[int, bytes]:
    conn, path = _connection(base_url, deadline - clock())
    try:
        conn.request("POST", path, body=json.dumps(payload).encode("utf-8"), headers=headers)
        if clock() >= deadline:
            raise _DeadlineError
        if conn.sock is not None:
            conn.sock.settimeout(max(deadline - clock(), 0.001))
        resp = conn.getresponse()
        body = _read_capped(resp, conn.sock, deadline, clock, cap)
        return resp.status, body
    finally:
        conn.close()


def chat(
    base_url: str,
    model: str,
    messages: list[dict[str, str]],
    *,
    timeout_s: float,
    max_tokens: int,
    api_key: str | None = None,
    max_response_bytes: int = MAX_ENVELOPE_BYTES,
    clock: Callable[[], float] = time.monotonic,
    reasoning: str = "model",
) -> ChatResult:
    """POST one chat completion; never raises for network or protocol trouble.

    Args:
        base_url: e.g. ``http://localhost:8000/v1`` (``/chat/completions`` is appended).
        model: the model id.
        messages: chat messages.
        timeout_s: one deadline for the whole exchange, fallback included.
        max_tokens: output token cap.
        api_key: sent as a bearer token when given (from the environment, never argv).
        max_response_bytes: body size cap.
        clock: monotonic clock (tests).
        reasoning: one of :data:`REASONING_MODES` (fields from
            :func:`reasoning_controls`, each sent only while the server accepts it).

    A refusal (HTTP 400, 415, 422 or 501) that names a reasoning control drops that
    control; one that names ``response_format`` steps it down; one that names neither
    drops the controls first (an answer in the review's schema matters more than a short
    one), then steps ``response_format`` down.
    """
    start = clock()
    deadline = start + timeout_s
    headers = {"Content-Type": "application/json", "Accept": "application/json"}
    if api_key:
        headers["Authorization"] = f"Bearer {api_key}"
    base: dict[str, Any] = {
        "model": model,
        "messages": messages,
        "temperature": 0,
        "max_tokens": max_tokens,
    }
    formats = _formats()
    controls = reasoning_controls(reasoning)
    index = 0

    def done(
        status: str, reason: str = "", body: bytes = b"", code: int | None = None
    ) -> ChatResult:
        latency = int((clock() - start) * 1000)
        return ChatResult(status, body, reason, latency, code, formats[index][0], tuple(controls))

    # Every refusal removes a control or steps the format down: at most this many tries.
    for _ in range(len(formats) + len(controls)):
        response_format = formats[index][1]
        payload = {**base, **controls}
        if response_format is not None:
            payload["response_format"] = response_format
        try:
            code, body = _attempt(
                base_url, payload, headers, deadline=deadline, clock=clock, cap=max_response_bytes
            )
        except ValueError as e:
            return done("failed", str(e))
        except (_DeadlineError, TimeoutError):
            return done("timeout", f"no complete answer within {timeout_s:g} s")
        except _OversizedError:
            return done("oversized", f"response is larger than {max_response_bytes} bytes")
        except ConnectionError as e:
            return done("failed", f"endpoint unreachable: {e.strerror or type(e).__name__}")
        except (http.client.HTTPException, OSError) as e:
            return done("failed", f"endpoint error: {type(e).__name__}")
        if code == http.HTTPStatus.OK:
            return done("ok", body=body, code=code)
        if code not in FALLBACK_STATUSES:
            return done("failed", f"endpoint answered HTTP {code}", code=code)
        step = _step_down(body, controls, index, len(formats))
        if step is None:
            break
        index = step
    return done("failed", f"endpoint answered HTTP {code}", code=code)


def _step_down(body: bytes, controls: dict[str, Any], index: int, count: int) -> int | None:
    """After a refusal: the format index to try next (``controls`` may shrink), or None.

    None: nothing is left to drop.
    """
    text = body[:4096].decode("utf-8", "replace").lower()
    named = [c for c in controls if any(w in text for w in _CONTROL_WORDS[c])]
    if named:  # the server said which field it does not take: drop just that one
        for name in named:
            del controls[name]
        return index
    if index + 1 < count and any(w in text for w in _FORMAT_WORDS):
        return index + 1  # it named the response_format: keep the controls
    if controls:
        controls.clear()
        return index
    if index + 1 < count:
        return index + 1  # the server does not take this response_format: the next one
    return None


MAX_MODELS_BYTES = 256 * 1024


def list_models(
    base_url: str, *, timeout_s: float, api_key: str | None = None
) -> tuple[str, tuple[str, ...]]:
    """``GET /v1/models``: (``ok`` or why not, the model ids served). Never raises.

    The same bounds as :func:`chat`: one deadline, a size cap, strict JSON.
    """
    clock = time.monotonic
    deadline = clock() + timeout_s
    headers = {"Accept": "application/json"}
    if api_key:
        headers["Authorization"] = f"Bearer {api_key}"
    try:
        conn, path = _connection(base_url, timeout_s, "/models")
        try:
            conn.request("GET", path, headers=headers)
            resp = conn.getresponse()
            body = _read_capped(resp, conn.sock, deadline, clock, MAX_MODELS_BYTES)
        finally:
            conn.close()
    except ValueError as e:
        return str(e), ()
    except (_DeadlineError, TimeoutError):
        return f"no answer within {timeout_s:g} s", ()
    except _OversizedError:
        return f"the model list is larger than {MAX_MODELS_BYTES} bytes", ()
    except ConnectionError as e:
        return f"endpoint unreachable: {e.strerror or type(e).__name__}", ()
    except (http.client.HTTPException, OSError) as e:
        return f"endpoint error: {type(e).__name__}", ()
    if resp.status != http.HTTPStatus.OK:
        return f"endpoint answered HTTP {resp.status}", ()
    try:
        doc = json.loads(body.decode("utf-8"))
        ids = tuple(str(m["id"])[:200] for m in doc["data"] if isinstance(m, dict) and "id" in m)
    except (UnicodeDecodeError, ValueError, KeyError, TypeError, RecursionError):
        return "the model list is not OpenAI-compatible JSON", ()
    return "ok", ids
