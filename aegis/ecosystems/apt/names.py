"""Target grammar: what ``aegis apt install TARGET...`` accepts, checked before anything runs.

A package target is ``name[:arch][=version]`` (apt's own order) where ``name`` is a
Debian package name (lowercase ASCII letters, digits, ``+ - .``, starting with a letter
or digit, at least two characters), ``arch`` a Debian architecture name and ``version``
a Debian version (optional ``epoch:``, starting with a digit, ``A-Za-z0-9.+~:-``).
Anything else is refused with :class:`InputError` (exit 3): a leading ``-`` (option
injection), whitespace or shell metacharacters, non-ASCII text (Unicode lookalikes
such as Cyrillic ``а`` or fullwidth letters), empty or oversized strings.

Direct paths (``./x.deb``, ``/tmp/x.deb``) and URLs (``http://host/x.deb``) are
recognised as such: they parse into a :class:`Target` of kind ``direct-path`` or
``url`` so the analyzer can produce a plan that policy denies; they are never run.

Pure: no I/O.

Example:
    >>> parse_target("aegis-base=1.2")
    Target(raw='aegis-base=1.2', kind='package', name='aegis-base', version='1.2', arch=None)
    >>> parse_target("./evil.deb").kind
    'direct-path'
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from aegis.errors import InputError

MAX_TARGET_CHARS = 256
MAX_TARGETS = 500

_NAME = r"[a-z0-9][a-z0-9+.-]+"
_ARCH = r"[a-z0-9][a-z0-9-]*"
_VERSION = r"(?:[0-9]+:)?[0-9][A-Za-z0-9.+~:-]*"
_PACKAGE_RE = re.compile(
    rf"^(?P<name>{_NAME})(?::(?P<arch>{_ARCH}))?(?:=(?P<version>{_VERSION}))?$"
)
_URL_RE = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://[A-Za-z0-9._~:/?#@%+=,-]+\Z")
_URL_SCHEME_RE = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")
_PATH_RE = re.compile(r"^[A-Za-z0-9._~/+@%=,:-]+\Z")


@dataclass(frozen=True)
class Target:
    """One parsed target."""

    raw: str
    kind: str
    """package, direct-path or url."""
    name: str | None = None
    version: str | None = None
    arch: str | None = None

    @property
    def apt_operand(self) -> str:
        """The operand handed to apt (``name[:arch][=version]``); packages only."""
        if self.kind != "package" or self.name is None:
            raise RuntimeError(f"{self.kind} target has no apt operand")
        text = self.name + (f":{self.arch}" if self.arch else "")
        return text + (f"={self.version}" if self.version else "")


def _describe(ch: str) -> str:
    return f"U+{ord(ch):04X}"


def parse_target(text: str) -> Target:
    """Parse one target or raise :class:`InputError` naming what is wrong.

    Raises:
        InputError: empty, too long, non-ASCII, leading ``-``, or outside the grammar.
    """
    if not text:
        raise InputError("empty package name")
    shown = text[:80].encode("unicode_escape").decode("ascii")
    if len(text) > MAX_TARGET_CHARS:
        raise InputError(f"target longer than {MAX_TARGET_CHARS} characters: {shown!r}")
    bad = [ch for ch in text if not (ch.isascii() and ch.isprintable())]
    if bad:
        raise InputError(
            f"target {shown!r} contains non-ASCII or control characters "
            f"({', '.join(_describe(c) for c in bad[:5])}); lookalike names are refused"
        )
    if text.startswith("-"):
        raise InputError(f"target {shown!r} starts with '-' (options are not accepted as names)")
    if _URL_SCHEME_RE.match(text):
        if not _URL_RE.match(text):
            raise InputError(f"URL target {shown!r} contains characters outside a plain URL")
        return Target(text, "url")
    if text.startswith(("/", "./", "../", "~")) or "/" in text or text.endswith(".deb"):
        if not _PATH_RE.match(text):
            raise InputError(f"path target {shown!r} contains shell metacharacters")
        return Target(text, "direct-path")
    m = _PACKAGE_RE.match(text)
    if m is None:
        raise InputError(
            f"{shown!r} is not a Debian package name (expected name[:arch][=version]: "
            "lowercase letters, digits, '+', '-', '.')"
        )
    return Target(text, "package", m["name"], m["version"], m["arch"])


def parse_targets(texts: Iterable[str]) -> tuple[Target, ...]:
    """Parse every target (all must pass); duplicates are refused.

    Raises:
        InputError: any target is invalid, none or too many are given, or one repeats.
    """
    items = list(texts)
    if len(items) > MAX_TARGETS:
        raise InputError(f"more than {MAX_TARGETS} targets")
    targets = tuple(parse_target(t) for t in items)
    seen: set[str] = set()
    for t in targets:
        key = t.name if t.kind == "package" and t.name else t.raw
        if key in seen:
            raise InputError(f"target {t.raw!r} given twice")
        seen.add(key)
    return targets


def closest_names(name: str, known: Sequence[str], limit: int = 5) -> tuple[str, ...]:
    """Known package names closest to ``name`` (typo help for ``target.unknown``)."""
    return tuple(difflib.get_close_matches(name, list(known), n=limit, cutoff=0.6))
