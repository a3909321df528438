"""Cargo targets and sources: strict grammars, checked before anything runs. Pure.

A target is a crates.io-style crate name with an optional exact version: ``ripgrep``,
``ripgrep@14.1.0``. Refused here (exit 3) because each widens what a plan means: version
ranges (the plan pins one version; ``cargo install`` would resolve a range itself), git and
path installs (``--git``, ``--path``, URLs), option-shaped words (``--config``,
``--registry``, ``-Z``), whitespace and metacharacters, and non-ASCII names (lookalikes).
Hand-written on purpose: the grammar is a security bound, narrower than what cargo accepts.

The source of one plan is a cargo local registry (``--registry-dir DIR``: ``index/`` files
plus ``.crate`` files, recorded as ``file:///real/dir/``) or a sparse HTTP index
(``--index URL``, recorded as ``http(s)://host/path/``).
"""

from __future__ import annotations

import os
import re

from aegis.errors import InputError

MAX_TARGET = 128
MAX_NAME = 64
CRATE_RE = re.compile(r"\A[A-Za-z][A-Za-z0-9_-]{0,63}\Z")
VERSION_RE = re.compile(
    r"\A(0|[1-9][0-9]{0,8})\.(0|[1-9][0-9]{0,8})\.(0|[1-9][0-9]{0,8})"
    r"(?:-[0-9A-Za-z.-]{1,40})?(?:\+[0-9A-Za-z.-]{1,40})?\Z"
)
LOCATION_KIND = "cargo-root:"


def _shown(text: str) -> str:
    return text[:80].encode("ascii", "backslashreplace").decode("ascii")


def check_target(target: str) -> tuple[str, str | None]:
    """Return ``(name, exact version or None)`` of ``target``.

    Raises:
        InputError: outside the grammar above (exit 3), with why.
    """
    shown = _shown(target)
    if not target or len(target) > MAX_TARGET:
        raise InputError(f"bad cargo target {shown!r}: empty or too long")
    if target.startswith("-"):
        raise InputError(f"bad cargo target {shown!r}: options are not targets")
    if not target.isascii():
        raise InputError(f"bad cargo target {shown!r}: crate names are ASCII (a lookalike?)")
    if "/" in target or ":" in target or target.startswith((".", "~")):
        raise InputError(
            f"bad cargo target {shown!r}: git, path and URL installs are never planned"
        )
    name, sep, version = target.partition("@")
    if not CRATE_RE.match(name):
        raise InputError(f"bad cargo target {shown!r}: expected CRATE[@VERSION]")
    if not sep:
        return name, None
    if not VERSION_RE.match(version):
        raise InputError(
            f"bad cargo target {shown!r}: the version must be exact (X.Y.Z)",
            hint="ranges are resolved by the plan: name the crate alone for the newest",
        )
    return name, version


def check_targets(targets: tuple[str, ...] | list[str]) -> tuple[tuple[str, str | None], ...]:
    """Check the targets: exactly one crate per plan (one ``cargo install``)."""
    if len(targets) != 1:
        raise InputError("cargo install plans exactly one crate per request")
    return (check_target(targets[0]),)


def crate_key(name: str) -> str:
    """Cargo treats ``-`` and ``_`` alike, case-insensitively: the key two names share."""
    return name.lower().replace("_", "-")


def registry_dir_url(path: str) -> str:
    """``file:///real/dir/`` for a cargo local registry (``index/`` plus ``.crate`` files).

    Raises:
        InputError: not such a directory, or a path that cannot be recorded plainly.
    """
    if not path or "\x00" in path or not path.isascii():
        raise InputError("bad --registry-dir path")
    real = os.path.realpath(path)
    if not os.path.isdir(os.path.join(real, "index")):
        raise InputError(
            f"{real} is not a cargo local registry (no index/ directory)",
            hint="a local registry holds index/ files and NAME-VERSION.crate files",
        )
    if not re.fullmatch(r"/[A-Za-z0-9_@%+,./~-]*", real):
        raise InputError(f"--registry-dir {_shown(real)!r}: use a plain path")
    return "file://" + real.rstrip("/") + "/"


def index_url(url: str) -> str:
    """A sparse index URL as recorded: http(s), no credentials, query or fragment.

    Raises:
        InputError: anything else (git indexes, ``file:``, credentials...).
    """
    text = url.removeprefix("sparse+")
    if not re.fullmatch(r"https?://[A-Za-z0-9.-]+(:[0-9]{1,5})?(/[A-Za-z0-9_%+,./~-]*)?", text):
        raise InputError(
            f"bad --index {_shown(url)!r}: expected a sparse http(s) index URL without "
            "credentials, query or fragment",
            hint="a local registry directory is --registry-dir DIR",
        )
    return text.rstrip("/") + "/"


def source_dir(registry: str) -> str | None:
    """The directory of a ``file://`` local registry; None for an HTTP index."""
    return registry[len("file://") :].rstrip("/") if registry.startswith("file:///") else None


def root_location(root: str) -> str:
    """The plan's location: the Aegis-managed root, ``cargo-root:/path``."""
    return LOCATION_KIND + root


def root_dir(location: str | None) -> str:
    """The directory of a recorded ``cargo-root:`` location.

    Raises:
        InputError: no location, or another kind (fail closed).
    """
    if not location or not location.startswith(LOCATION_KIND + "/"):
        raise InputError(f"unsupported cargo location {str(location)[:80]!r}")
    return location[len(LOCATION_KIND) :]
