"""Timestamps and durations of signed documents (pure).

Signed documents carry UTC ISO-8601 timestamps with a ``Z`` suffix at second
precision (the format of :class:`aegis.model.Intent`), so the canonical bytes of a
document never depend on the signer's locale or clock resolution. Durations on the
command line are ``<n>s``, ``<n>m``, ``<n>h`` or ``<n>d``.

Nothing here reads the clock: callers pass ``now``.

Example:
    >>> format_time(parse_time("2026-01-02T03:04:05Z"))
    '2026-01-02T03:04:05Z'
    >>> parse_duration("90m")
    datetime.timedelta(seconds=5400)
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from aegis.errors import InputError

TIME_FORMAT = "%Y-%m-%dT%H:%M:%SZ"
_TIME_RE = re.compile(r"\A\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z\Z")
_DURATION_RE = re.compile(r"\A([1-9][0-9]{0,6})([smhd])\Z")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def format_time(moment: datetime) -> str:
    """Return ``moment`` as UTC ``YYYY-MM-DDTHH:MM:SSZ`` (sub-seconds dropped).

    Raises:
        RuntimeError: ``moment`` is naive (programmer error: always pass aware UTC).
    """
    if moment.tzinfo is None:
        raise RuntimeError("naive datetime passed where an aware UTC time is required")
    return moment.astimezone(UTC).strftime(TIME_FORMAT)


def parse_time(text: str, what: str = "timestamp") -> datetime:
    """Parse a ``YYYY-MM-DDTHH:MM:SSZ`` timestamp strictly.

    Raises:
        InputError: any other shape.
    """
    if not _TIME_RE.match(text):
        raise InputError(f"{what} must look like 2026-01-02T03:04:05Z, got {str(text)[:40]!r}")
    try:
        if text.isascii():  # the shape is fixed: read the fields (strptime is ~10x slower)
            return datetime(
                int(text[0:4]),
                int(text[5:7]),
                int(text[8:10]),
                int(text[11:13]),
                int(text[14:16]),
                int(text[17:19]),
                tzinfo=UTC,
            )
        return datetime.strptime(text, TIME_FORMAT).replace(tzinfo=UTC)
    except ValueError as e:
        raise InputError(f"{what} {text!r} is not a valid time") from e


def parse_duration(text: str) -> timedelta:
    """Parse ``30s``, ``15m``, ``1h`` or ``2d``.

    Raises:
        InputError: anything else (zero, negative, fractions, unknown units).
    """
    match = _DURATION_RE.match(text.strip())
    if not match:
        raise InputError(f"duration must look like 30s, 15m, 1h or 2d, got {str(text)[:40]!r}")
    return timedelta(seconds=int(match.group(1)) * _UNITS[match.group(2)])
