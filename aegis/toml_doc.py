"""One strict reader for every TOML document Aegis loads.

Configs, policy, the workflow graph, fleet hosts files, a crate's manifest and lockfile:
each caller used to call ``tomllib`` with its own error handling, and two of them let a
bare ``ValueError`` through (an integer past Python's 4300-digit limit is not a
``TOMLDecodeError``), which a user saw as an internal error. Here the size cap, UTF-8 and
TOML are checked in one place and every failure is the caller's own error class with one
readable reason.

Example:
    >>> load_toml(b'a = 1', what="config x.toml", max_bytes=1024)
    {'a': 1}
    >>> load_toml(b'a = ', what="config x.toml", max_bytes=1024)
    Traceback (most recent call last):
    aegis.errors.InputError: config x.toml is not valid TOML: Invalid value (at end of document)
"""

from __future__ import annotations

import tomllib
from collections.abc import Callable
from typing import Any

from aegis.errors import InputError


def toml_error_reason(e: ValueError) -> str:
    """The reason a TOML document did not load, for an ``Error:`` line.

    ``tomllib`` raises ``TOMLDecodeError``; ``int()`` inside it raises a bare ValueError for
    an integer past Python's 4300-digit limit, whose text tells the reader to call
    ``sys.set_int_max_str_digits`` - advice for a programmer, not an operator.
    """
    if isinstance(e, UnicodeDecodeError):
        return "not UTF-8"
    if isinstance(e, tomllib.TOMLDecodeError):
        return str(e)
    return "an integer has too many digits"


def load_toml(
    data: bytes | str,
    *,
    what: str,
    max_bytes: int,
    error: Callable[[str], Exception] = InputError,
) -> dict[str, Any]:
    """Parse ``data`` as one TOML document, or raise ``error`` naming ``what``.

    Args:
        data: the raw bytes (or text already decoded) of the document.
        what: how the error names the document, e.g. ``"config /etc/aegis/config.toml"``.
        max_bytes: the largest document accepted.
        error: the caller's error class (constructed with the message alone).
    """
    raw = data.encode("utf-8", "surrogatepass") if isinstance(data, str) else data
    if len(raw) > max_bytes:
        raise error(f"{what} is larger than {max_bytes} bytes")
    try:
        text = data if isinstance(data, str) else data.decode("utf-8")
        return tomllib.loads(text)
    except ValueError as e:  # TOMLDecodeError, UnicodeDecodeError, an int past 4300 digits
        raise error(f"{what} is not valid TOML: {toml_error_reason(e)}") from e
