"""Strict readers for the policy file's TOML fields, shared by every section's parser.

Below :mod:`aegis.policy.config`, :mod:`aegis.policy.automation` and
:mod:`aegis.health.policy`: each parses its own section of ``policy.toml`` with these,
and ``config`` imports those sections' types, so the readers cannot live in ``config``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from aegis.errors import InputError

MAX_LIST = 10_000


class PolicyConfigError(InputError):
    """The policy file is absent, empty, unreadable or malformed (policy then denies)."""


def normalize_uri(uri: str) -> str:
    """Return ``uri`` without trailing slashes (``http://x/debian/`` == ``http://x/debian``)."""
    return uri.rstrip("/")


def normalize_fingerprint(fpr: str | None) -> str | None:
    """Upper-case hex without spaces, or None."""
    if fpr is None:
        return None
    return fpr.replace(" ", "").upper()


def _table(data: Mapping[str, Any], key: str, where: str) -> Mapping[str, Any]:
    value = data.get(key, {})
    if not isinstance(value, dict):
        raise PolicyConfigError(f"{where}{key}: expected a table")
    return value


def _check_keys(data: Mapping[str, Any], allowed: set[str], where: str) -> None:
    unknown = sorted(set(data) - allowed)
    if unknown:
        raise PolicyConfigError(f"{where or 'policy'}: unknown key(s) {', '.join(unknown)}")


def _str(data: Mapping[str, Any], key: str, where: str, default: str | None = None) -> str:
    value = data.get(key, default)
    if not isinstance(value, str) or not value:
        raise PolicyConfigError(f"{where}{key}: expected a non-empty string")
    return value


def _bool(data: Mapping[str, Any], key: str, where: str, default: bool) -> bool:
    value = data.get(key, default)
    if not isinstance(value, bool):
        raise PolicyConfigError(f"{where}{key}: expected true or false")
    return value


def _int(data: Mapping[str, Any], key: str, where: str, default: int, lo: int = 0) -> int:
    value = data.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or value < lo:
        raise PolicyConfigError(f"{where}{key}: expected an integer >= {lo}")
    return value


def _strs(
    data: Mapping[str, Any],
    key: str,
    where: str,
    default: tuple[str, ...],
    check: Callable[[str], bool] | None = None,
) -> tuple[str, ...]:
    value = data.get(key, list(default))
    if not isinstance(value, list) or len(value) > MAX_LIST:
        raise PolicyConfigError(f"{where}{key}: expected a list of strings")
    for item in value:
        if not isinstance(item, str) or not item or (check is not None and not check(item)):
            raise PolicyConfigError(f"{where}{key}: bad entry {item!r}")
    return tuple(value)
