"""Publish times from a registry's JSON: one strict form, anything else unknown."""

from __future__ import annotations

import pytest

from aegis.ecosystems.published import normal_time


@pytest.mark.parametrize(
    ("raw", "want"),
    [
        ("2026-01-02T03:04:05.678Z", "2026-01-02T03:04:05Z"),  # npm
        ("2026-01-02T03:04:05.123456Z", "2026-01-02T03:04:05Z"),  # PEP 700
        ("2026-01-02T05:04:05+02:00", "2026-01-02T03:04:05Z"),  # an offset, made UTC
        ("2026-01-02T03:04:05", ""),  # no offset: which zone?
        ("2026-01-02", ""),
        ("yesterday", ""),
        ("", ""),
        (None, ""),
        (1767322245, ""),  # a number, not a time string
        (["2026-01-02T03:04:05Z"], ""),
        ("2026-01-02T03:04:05Z" + " " * 100, ""),  # oversized
        ("2026-13-02T03:04:05Z", ""),
        ("２０２６-01-02T03:04:05Z", ""),  # fullwidth digits
    ],
)
def test_only_an_instant_with_an_offset_is_a_time(raw: object, want: str) -> None:
    assert normal_time(raw) == want
