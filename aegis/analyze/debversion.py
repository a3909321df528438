"""Debian version order: the one comparator every stage uses. Pure.

Versions come from apt's output, the security tracker and OSV records: untrusted text.
:data:`VERSION` is the one grammar (Debian policy 5.6.12, ``[epoch:]upstream[-revision]``,
ASCII only; a leading letter is kept, as dpkg only warns about it), and anything outside
it raises :class:`~aegis.errors.InputError`, never ``ValueError``.

The order is dpkg's (``verrevcmp``) as a cached sort key, :func:`version_key`, rather
than python-debian's ``Version`` objects: vulnerability matching compares every changed
package against its tracker rows and an OSV import takes the newest fix over thousands of
records (``scripts/bench --only vulndb``), where one cached tuple per version is several
times faster than parsing and comparing objects pairwise. The key is tested equal to
``debian.debian_support.version_compare`` (tests/unit/evidence/test_vulnerabilities.py).
A version longer than :data:`MAX_VERSION_CHARS` is refused (InputError) before Python's
int-conversion limit (4,300 digits) could raise ``ValueError``; no real version comes near.

Example:
    >>> compare_versions("1:1.0", "2.0") > 0
    True
    >>> version_at_least("3.0.2-1~deb12u1", "3.0.2-1")
    False
"""

from __future__ import annotations

import re
from functools import lru_cache

from aegis.errors import InputError

VERSION_GRAMMAR = r"(?:[0-9]+:)?[A-Za-z0-9][A-Za-z0-9.+~:-]*"
"""The accepted versions, as a pattern to embed (callers add their own length bounds)."""
VERSION = re.compile(rf"\A{VERSION_GRAMMAR}\Z", re.ASCII)

# The same language as VERSION, split the way dpkg and python-debian split it: the epoch
# before the first colon when it is all digits, the revision after the last hyphen.
_PARTS = re.compile(
    r"\A(?:(?P<epoch>[0-9]+):)?(?P<upstream>[A-Za-z0-9][A-Za-z0-9.+:~-]*?)"
    r"(?:-(?P<revision>[A-Za-z0-9+.~]+))?\Z",
    re.ASCII,
)


def _order(ch: str) -> int:
    # dpkg's order(): '~' sorts before everything, even the end of the part;
    # letters before other characters.
    if ch == "~":
        return -1
    if ch.isalpha():
        return ord(ch)
    return ord(ch) + 256


# Each character becomes one code point that sorts like its dpkg order: '~' -> 1,
# end of run -> 2 (the terminator), everything else shifted above it. String
# comparison of the translated runs is then dpkg's character-by-character rule.
_END = "\x02"
_RUN_TABLE = {
    ord(c): "\x01" if c == "~" else chr(_order(c) + 3)
    for c in "~.+-:ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
}
_PAIRS = re.compile(r"([^0-9]*)([0-9]*)")
_SENTINEL = (_END, 0)
MAX_VERSION_CHARS = 1000
"""Longest version read (Python refuses ``int()`` of 4,300 digits with ValueError)."""


def _part_key(part: str) -> tuple[tuple[str, int], ...]:
    """Sortable key ordering like dpkg's verrevcmp: (non-digit run, number) pairs + sentinel.

    A non-digit run compares character by character with the end of the run as 0,
    so each run becomes its translated characters plus a terminator. A shorter part
    compares as if padded with ("", 0) pairs; pairs after the first always start
    with a non-terminator character, so one trailing (terminator, 0) sentinel
    reproduces that padding exactly. An empty part equals "0" in dpkg, hence
    ``part or "0"``.
    """
    pairs = [
        (run.translate(_RUN_TABLE) + _END, int(num) if num else 0)
        for run, num in _PAIRS.findall(part or "0")
        if run or num
    ]
    pairs.append(_SENTINEL)
    return tuple(pairs)


@lru_cache(maxsize=200_000)
def version_key(version: str) -> tuple[object, ...]:
    """A key whose order is Debian version order (dpkg / python-debian).

    Raises:
        InputError: ``version`` is not a Debian version (:data:`VERSION`), or is longer
            than :data:`MAX_VERSION_CHARS`.
    """
    m = _PARTS.match(version) if len(version) <= MAX_VERSION_CHARS else None
    if m is None:
        raise InputError(f"not a Debian version: {version[:80]!r}")
    return (
        int(m.group("epoch") or 0),
        _part_key(m.group("upstream")),
        _part_key(m.group("revision") or ""),
    )


def check_version(version: str) -> str:
    """``version`` when it is a Debian version.

    Raises:
        InputError: it is not.
    """
    version_key(version)
    return version


def compare_versions(a: str, b: str) -> int:
    """Debian version order: negative, zero or positive like ``cmp``.

    Raises:
        InputError: either is not a valid Debian version.
    """
    ka, kb = version_key(a), version_key(b)
    return -1 if ka < kb else (1 if ka > kb else 0)


def version_at_least(version: str, floor: str) -> bool:
    """``version >= floor`` in Debian order.

    Raises:
        InputError: either is not a valid Debian version.
    """
    return version_key(version) >= version_key(floor)
