"""npm targets and projects: strict grammars, checked before anything runs. Pure.

A target is a registry package name with an optional version or range: ``left-pad``,
``left-pad@1.3.0``, ``@scope/pkg@^2.1``. Refused here (exit 3) because each widens what a
plan means: git, tarball, ``file:`` and URL specs, GitHub shorthands (``user/repo``),
aliases to another name (``x@npm:y``), tags other than plain words, option-shaped words
(``--registry=...``), whitespace and metacharacters, and upper-case or non-ASCII names
(npm refuses new upper-case names; both are lookalike material). Hand-written on purpose:
the grammar is a security bound, narrower than what npm accepts.
"""

from __future__ import annotations

import os
import re

from aegis.errors import InputError

MAX_TARGET = 214
MAX_TARGETS = 64
DEFAULT_REGISTRY = "https://registry.npmjs.org/"
_NAME = r"(?:@[a-z0-9][a-z0-9._-]{0,100}/)?[a-z0-9][a-z0-9._-]{0,100}"
_SPEC = r"[0-9A-Za-z.^~*<>=+-]{1,64}"
_TARGET_RE = re.compile(rf"\A(?P<name>{_NAME})(?:@(?P<spec>{_SPEC}))?\Z")


def check_target(target: str) -> str:
    """Return the package name of ``target``.

    Raises:
        InputError: outside the grammar above (exit 3), with why.
    """
    shown = target[:80].encode("ascii", "backslashreplace").decode("ascii")
    if not target or len(target) > MAX_TARGET:
        raise InputError(f"bad npm target {shown!r}: empty or too long")
    if target.startswith("-"):
        raise InputError(f"bad npm target {shown!r}: options are not targets")
    if not target.isascii():
        raise InputError(f"bad npm target {shown!r}: names are ASCII (a lookalike?)")
    lowered = target.lower()
    if ":" in target or "#" in target or lowered.startswith(("git", "http", ".", "/", "~")):
        raise InputError(
            f"bad npm target {shown!r}: git, tarball, file:, URL specs and aliases are never "
            "planned"
        )
    m = _TARGET_RE.match(target)
    if m is None:
        if "/" in target and not target.startswith("@"):
            raise InputError(f"bad npm target {shown!r}: GitHub shorthands are never planned")
        raise InputError(f"bad npm target {shown!r}: expected NAME[@VERSION|@RANGE]")
    return m.group("name")


def check_targets(targets: tuple[str, ...] | list[str]) -> tuple[str, ...]:
    """Check every target; return the names, refusing duplicates."""
    if not targets:
        raise InputError("npm install needs at least one package")
    if len(targets) > MAX_TARGETS:
        raise InputError(f"at most {MAX_TARGETS} npm targets per plan")
    names = tuple(check_target(t) for t in targets)
    if len(set(names)) != len(names):
        raise InputError("a package is named twice")
    return names


def project_location(path: str) -> str:
    """``project:/abs/path`` for an existing project directory with a ``package.json``.

    Raises:
        InputError: not a directory holding ``package.json``.
    """
    if not path or "\x00" in path or not path.isascii():
        raise InputError("bad --project path")
    real = os.path.realpath(path)
    if not os.path.isfile(os.path.join(real, "package.json")):
        raise InputError(
            f"{real} has no package.json",
            hint="create the project first ('npm init -y' writes only package.json)",
        )
    return "project:" + real


GLOBAL_WHERE = "global"
"""The ``where`` of the managed prefix (``--global`` on the CLI, the MCP plan tool's word)."""
GLOBAL_KIND = "global:"
PROJECT_KIND = "project:"


def is_global(location: str | None) -> bool:
    """Whether a recorded location is the managed prefix (``global:/...``)."""
    return (location or "").startswith(GLOBAL_KIND + "/")


def project_dir(location: str | None) -> str:
    """The directory of a recorded ``project:`` or ``global:`` location.

    A ``global:`` directory is only trusted once compared with the configured prefix
    (:func:`aegis.ecosystems.npm.global_prefix`); every caller that writes or runs does.

    Raises:
        InputError: no location, or another kind (fail closed).
    """
    for kind in (PROJECT_KIND, GLOBAL_KIND):
        if location and location.startswith(kind + "/") and "\x00" not in location:
            return location[len(kind) :]
    raise InputError(f"unsupported npm location {str(location)[:80]!r}")


GLOBAL_SEED = '{\n  "name": "aegis-managed-npm",\n  "private": true\n}\n'
"""The managed prefix's ``package.json`` before its first change (and after rolling it back)."""
