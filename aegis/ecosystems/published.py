"""Publish times a registry states (npm ``time``, PEP 700 ``upload-time``), read strictly.

The registry's JSON is untrusted input: a time is kept only when it parses as an ISO-8601
instant with an offset, and is re-written as ``YYYY-MM-DDTHH:MM:SSZ`` so the plan records
one form. Anything else is "" (unknown), which the release-age rule treats as new.
"""

from __future__ import annotations

import json
import urllib.request
from datetime import UTC, datetime
from typing import Any

MAX_DOCUMENT = 32 * 1024 * 1024
TIMEOUT_S = 60
MAX_TIME_TEXT = 64


def normal_time(value: object) -> str:
    """``YYYY-MM-DDTHH:MM:SSZ`` of an ISO-8601 instant with an offset; "" for anything else.

    Example:
        >>> normal_time("2026-01-02T03:04:05.678Z")
        '2026-01-02T03:04:05Z'
        >>> normal_time("2026-01-02 03:04:05")
        ''
    """
    if not isinstance(value, str) or len(value) > MAX_TIME_TEXT or "T" not in value:
        return ""
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return ""
    if parsed.tzinfo is None:
        return ""
    return parsed.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def fetch_json(url: str, accept: str) -> tuple[str, Any]:
    """(Content-Type, parsed JSON) of ``url``, bounded; raises OSError or ValueError."""
    if not url.startswith(("http://", "https://")):
        raise OSError("not an http(s) URL")
    req = urllib.request.Request(url, headers={"Accept": accept})  # noqa: S310 - scheme checked
    with urllib.request.urlopen(req, timeout=TIMEOUT_S) as resp:  # noqa: S310 - scheme checked
        kind = str(resp.headers.get("Content-Type", "")).split(";")[0].strip()
        data: bytes = resp.read(MAX_DOCUMENT + 1)
    if len(data) > MAX_DOCUMENT:
        raise OSError("document larger than the cap")
    return kind, json.loads(data)
