"""Go targets, proxies and locations: strict grammars, checked before anything runs. Pure.

A target is a module (``go get``) or package (``go install``) path with an optional version
query: ``example.com/mod``, ``example.com/mod@v1.2.3``, ``golang.org/x/tools/cmd/stringer@latest``.
Hand-written on purpose, narrower than Go's own grammar, because it is a security bound:
option-shaped words (``-modfile=..``), URLs and schemes, ``..`` and dot elements, absolute or
relative paths, non-ASCII (lookalikes), upper case in the domain, whitespace and
metacharacters, ``@none`` (a removal) and comparison queries (``@<v1.2``) are refused (exit 3).

Version queries: an exact semantic version (``v1.2.3``, ``v1.2.3-rc.1``, ``+incompatible``)
or a pseudo-version is pinned; anything else (``latest``, ``upgrade``, ``patch``, a branch,
a commit, a prefix like ``v1``) is mutable: the plan resolves it to an exact version and
records it, and only that exact version is ever applied.
"""

from __future__ import annotations

import os
import re
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from aegis.errors import InputError

if TYPE_CHECKING:
    from aegis.config import Config

MAX_TARGET = 300
MAX_TARGETS = 32
MAX_URL = 512
DEFAULT_PROXY = "https://proxy.golang.org/"
GOMOD_KIND = "gomod:"
_URL_ODD = ",|\\\"'`$;<>"
"""A GOPROXY list separator (``,`` ``|``) would add ``direct``; the rest are shell material."""
GOBIN_KIND = "gobin:"

_FIRST = r"[a-z0-9](?:[a-z0-9-]*[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]*[a-z0-9])?)+"
_ELEM = r"[A-Za-z0-9_~-](?:[A-Za-z0-9._~-]*[A-Za-z0-9_~-])?"
PATH_RE = re.compile(rf"\A{_FIRST}(?:/{_ELEM}){{0,30}}\Z")
_SEMVER = (
    r"v(?:0|[1-9][0-9]*)\.(?:0|[1-9][0-9]*)\.(?:0|[1-9][0-9]*)"
    r"(?:-[0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*)?(?:\+incompatible)?"
)
EXACT_RE = re.compile(rf"\A{_SEMVER}\Z")
PSEUDO_RE = re.compile(
    r"\Av[0-9]+\.[0-9]+\.[0-9]+-(?:[0-9A-Za-z.-]*\.)?[0-9]{14}-[0-9a-f]{12}(?:\+incompatible)?\Z"
)
_QUERY_RE = re.compile(r"\A[A-Za-z0-9][A-Za-z0-9._+-]{0,99}\Z")


def is_exact(version: str) -> bool:
    """An exact semantic version (a pseudo-version is one too): immutable in a proxy."""
    return EXACT_RE.match(version) is not None


def is_pseudo(version: str) -> bool:
    """A pseudo-version (``v0.0.0-20240101000000-0123456789ab``): a commit, not a release."""
    return is_exact(version) and PSEUDO_RE.match(version) is not None


def split_target(target: str) -> tuple[str, str]:
    """``(path, query)`` of a target; query ``""`` when none was given.

    Raises:
        InputError: outside the grammar above (exit 3), with why.
    """
    shown = target[:80].encode("ascii", "backslashreplace").decode("ascii")
    if not target or len(target) > MAX_TARGET:
        raise InputError(f"bad go target {shown!r}: empty or too long")
    if target.startswith("-"):
        raise InputError(f"bad go target {shown!r}: options are not targets")
    if not target.isascii():
        raise InputError(f"bad go target {shown!r}: paths are ASCII (a lookalike?)")
    if "://" in target or target.startswith(("/", ".", "~")) or "\\" in target:
        raise InputError(f"bad go target {shown!r}: URLs and file paths are never planned")
    path, sep, query = target.partition("@")
    if sep and not query:
        raise InputError(f"bad go target {shown!r}: an empty version")
    if "/../" in f"/{path}/" or "/./" in f"/{path}/" or "//" in path:
        raise InputError(f"bad go target {shown!r}: '..' and '.' elements are never planned")
    if PATH_RE.match(path) is None:
        raise InputError(
            f"bad go target {shown!r}: expected a module path like example.com/mod "
            "(lower-case domain with a dot, then plain path elements)"
        )
    if query in ("none",):
        raise InputError(f"bad go target {shown!r}: removing a requirement (@none) is not planned")
    if query and not (is_exact(query) or _QUERY_RE.match(query)):
        raise InputError(
            f"bad go target {shown!r}: the version is an exact version, latest, upgrade, "
            "patch, a branch or a commit (no comparisons)"
        )
    return path, query


def check_targets(
    targets: tuple[str, ...] | list[str], *, install: bool = False
) -> tuple[str, ...]:
    """Check every target; return the paths, refusing duplicates.

    ``install``: ``go install`` takes exactly one package with an explicit version.
    """
    if not targets:
        raise InputError("go needs at least one module")
    if len(targets) > (1 if install else MAX_TARGETS):
        raise InputError("go install takes one package per plan" if install else
                         f"at most {MAX_TARGETS} go targets per plan")  # fmt: skip
    split = [split_target(t) for t in targets]
    if install and not split[0][1]:
        raise InputError(
            "go install needs a version: PACKAGE@VERSION (or @latest, resolved by the plan)"
        )
    paths = tuple(p for p, _ in split)
    if len(set(paths)) != len(paths):
        raise InputError("a module is named twice")
    return paths


def check_proxy_url(url: str) -> str:
    """The GOPROXY URL as the plan records it (``/`` appended). Pure.

    One source only: ``https://``, ``http://`` (a mirror; the checksum database is then off,
    a signal) or ``file:///abs/dir``. Refused: lists (``,`` and ``|`` would add ``direct``,
    a VCS fetch), ``direct``/``off``, credentials, queries, fragments, ``..``.

    Raises:
        InputError: any of the above.
    """
    shown = url[:120].encode("ascii", "backslashreplace").decode("ascii")
    odd = any(c.isspace() or not c.isprintable() or c in _URL_ODD for c in url)
    if not url.isascii() or len(url) > MAX_URL or odd:
        raise InputError(f"bad proxy URL {shown!r}: one ASCII URL (no lists)")
    parts = urlsplit(url)
    if parts.scheme == "file":
        if parts.netloc or not parts.path.startswith("/") or "/../" in parts.path + "/":
            raise InputError(f"bad proxy URL {shown!r}: file:///absolute/dir only")
    elif parts.scheme not in ("http", "https") or not parts.hostname:
        raise InputError(f"bad proxy URL {shown!r}: https, http or file:// only")
    if parts.username is not None or parts.password is not None or "@" in parts.netloc:
        raise InputError(f"bad proxy URL {shown!r}: no credentials in URLs (they land in plans)")
    if parts.query or parts.fragment:
        raise InputError(f"bad proxy URL {shown!r}: no query or fragment")
    return url if url.endswith("/") else url + "/"


def module_location(path: str) -> str:
    """``gomod:/abs/dir`` for an existing module directory (a regular ``go.mod``).

    Raises:
        InputError: not a directory holding a regular ``go.mod``.
    """
    if not path or "\x00" in path or not path.isascii():
        raise InputError("bad --module path")
    real = os.path.realpath(path)
    gomod = os.path.join(real, "go.mod")
    if not os.path.isfile(gomod) or os.path.islink(gomod):
        raise InputError(f"{real} has no go.mod", hint="'go mod init' writes one")
    if any(c.isspace() or c in ",:=" for c in real):
        raise InputError(f"bad --module path {real!r}: whitespace, ',', ':' or '='")
    return GOMOD_KIND + real


def location_dir(location: str | None, kind: str) -> str:
    """The directory of a recorded location of ``kind`` (``gomod:`` or ``gobin:``).

    Raises:
        InputError: no location, or another kind (fail closed).
    """
    if not location or not location.startswith(kind + "/"):
        raise InputError(f"unsupported go location {str(location)[:80]!r}")
    return location[len(kind) :]


def binary_name(pkg: str) -> str:
    """The file ``go install`` writes for ``pkg`` (a ``/vN`` major suffix is skipped)."""
    parts = pkg.split("/")
    if len(parts) > 1 and re.fullmatch(r"v[2-9][0-9]*", parts[-1]):
        return parts[-2]
    return parts[-1]


def escape_path(path: str) -> str:
    """A module path as a proxy URL spells it (upper case -> ``!`` lower case)."""
    return "".join(f"!{c.lower()}" if c.isupper() else c for c in path)


def gobin_dir(cfg: Config) -> str:
    """The Aegis-managed GOBIN: ``/var/lib/aegis/go/bin`` (under AEGIS_HOME in tests).

    Root-owned, mode 0755; operators put it on PATH. Binaries land nowhere else.
    """
    return str(cfg.state_dir / "go" / "bin")
