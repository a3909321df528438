"""pip targets, places and indexes: strict grammars, checked before anything runs. Pure.

A target is a bare PEP 508 requirement without markers or URLs: a name, optional extras
and optional version clauses (``requests``, ``requests==2.32.3``, ``uvicorn[standard]>=0.30``).
Everything pip would also accept but that widens what a plan means is refused here (exit 3)
rather than parsed: direct URLs (``name @ https://...``), VCS and local paths, ``-r`` files,
option-shaped words (``--index-url=...`` smuggled into a target), environment markers (``;``
can hide a different set per interpreter) and any non-ASCII character (lookalikes). The
grammar is written by hand on purpose: it is a security bound, narrower than PEP 508, and a
general parser would accept exactly the forms it exists to refuse.
"""

from __future__ import annotations

import os
import re
from urllib.parse import urlsplit

from aegis.errors import InputError

MAX_TARGET = 200
MAX_TARGETS = 64
MAX_URL = 500
DEFAULT_INDEX = "https://pypi.org/simple/"

_NAME = r"[A-Za-z0-9](?:[A-Za-z0-9._-]{0,98}[A-Za-z0-9])?"
_VERSION = r"[A-Za-z0-9.*+!_-]{1,64}"
_CLAUSE = rf"(?:===|==|>=|<=|~=|!=|<|>){_VERSION}"
_TARGET_RE = re.compile(
    rf"\A(?P<name>{_NAME})(?:\[(?P<extras>{_NAME}(?:,{_NAME}){{0,15}})\])?"
    rf"(?P<spec>{_CLAUSE}(?:,{_CLAUSE}){{0,7}})?\Z"
)
_NORMALIZE_RE = re.compile(r"[-_.]+")


def normalize(name: str) -> str:
    """PEP 503 normalisation: lower case, runs of ``-_.`` become one ``-``."""
    return _NORMALIZE_RE.sub("-", name).lower()


def check_target(target: str) -> str:
    """Return the normalised name of ``target``.

    Raises:
        InputError: anything outside the grammar above (exit 3), with why.
    """
    shown = target[:80].encode("ascii", "backslashreplace").decode("ascii")
    if not target or len(target) > MAX_TARGET:
        raise InputError(f"bad pip target {shown!r}: empty or longer than {MAX_TARGET}")
    if target.startswith("-"):
        raise InputError(f"bad pip target {shown!r}: options are not targets")
    if not target.isascii():
        raise InputError(f"bad pip target {shown!r}: names are ASCII (a lookalike?)")
    if "://" in target or "@" in target or target.startswith(("/", ".", "~")):
        raise InputError(
            f"bad pip target {shown!r}: direct URLs, VCS and local paths are never planned"
        )
    if ";" in target:
        raise InputError(f"bad pip target {shown!r}: environment markers are not planned")
    m = _TARGET_RE.match(target)
    if m is None:
        raise InputError(f"bad pip target {shown!r}: expected NAME[EXTRAS][==VERSION]")
    return normalize(m.group("name"))


def check_targets(targets: tuple[str, ...] | list[str]) -> tuple[str, ...]:
    """Check every target; return the normalised names, refusing duplicates by name."""
    if not targets:
        raise InputError("pip install needs at least one requirement")
    if len(targets) > MAX_TARGETS:
        raise InputError(f"at most {MAX_TARGETS} pip targets per plan")
    names = tuple(check_target(t) for t in targets)
    if len(set(names)) != len(names):
        raise InputError("a package is named twice (after PEP 503 normalisation)")
    return names


def check_index_url(url: str) -> str:
    """The index URL as the plan records it (``/`` appended). Pure.

    Raises:
        InputError: not http(s), credentials in it, a query, fragment or odd characters.
    """
    shown = url[:120].encode("ascii", "backslashreplace").decode("ascii")
    if (
        not url.isascii()
        or any(c.isspace() or ord(c) <= ord(" ") for c in url)
        or len(url) > MAX_URL
    ):
        raise InputError(f"bad index URL {shown!r}")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InputError(f"bad index URL {shown!r}: http or https only")
    if parts.username is not None or parts.password is not None or "@" in parts.netloc:
        raise InputError(f"bad index URL {shown!r}: no credentials in URLs (they land in plans)")
    if parts.query or parts.fragment:
        raise InputError(f"bad index URL {shown!r}: no query or fragment")
    return url if url.endswith("/") else url + "/"


def venv_location(path: str) -> str:
    """``venv:/abs/path`` for an existing virtual environment (never the system interpreter).

    Raises:
        InputError: not an absolute path to a directory with ``pyvenv.cfg`` and ``bin/python``.
    """
    if not path or "\x00" in path or not path.isascii():
        raise InputError("bad --venv path")
    real = os.path.realpath(path)
    if not os.path.isfile(os.path.join(real, "pyvenv.cfg")):
        raise InputError(
            f"{real} is not a virtual environment (no pyvenv.cfg): Aegis never installs into "
            "the system interpreter's site-packages",
            hint="create one with 'python3 -m venv DIR' and plan with --venv DIR",
        )
    if not os.access(os.path.join(real, "bin", "python"), os.X_OK):
        raise InputError(f"{real} has no bin/python")
    return "venv:" + real


TARGET_KIND = "target:"
"""``target:/dir``: ``pip install --target`` (the MCP plan tool's ``where`` says the same)."""
SYSTEM_PYTHON = "/usr/bin/python3"
"""The interpreter that plans and applies ``--target`` changes (Debian's python3-pip)."""
SYSTEM_DIRS = ("/usr", "/etc", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/boot",
               "/proc", "/sys", "/dev", "/run", "/var/lib/dpkg", "/var/lib/apt",
               "/var/lib/aegis")  # fmt: skip
"""Never a ``--target``: the system interpreter's site-packages and the OS's own places."""


MANAGED_KIND = "managed:"
"""``managed:NAME`` (the ``where``; ``--managed NAME`` on the CLI) and ``managed:/dir`` (the
recorded location): an Aegis-managed venv, ``/var/lib/aegis/managed/python/NAME``."""
MAX_VENV_NAME = 64
_VENV_NAME_RE = re.compile(r"\A[A-Za-z0-9][A-Za-z0-9_-]{0,63}\Z")


def check_venv_name(name: str) -> str:
    """A managed venv's name: one path component of ASCII letters, digits, ``-`` and ``_``.

    Written by hand as a security bound: the name becomes a directory root creates and,
    on rollback, removes, so no dot (no ``..``), no ``/``, no leading ``-`` (no option),
    nothing outside ASCII (no lookalike) and at most 64 characters.

    Raises:
        InputError: anything else (exit 3).
    """
    shown = name[:80].encode("ascii", "backslashreplace").decode("ascii")
    if _VENV_NAME_RE.match(name) is None:
        raise InputError(
            f"bad managed venv name {shown!r}",
            hint=f"1 to {MAX_VENV_NAME} ASCII letters, digits, '-' or '_', "
            "starting with a letter or digit",
        )
    return name


def is_managed(location: str | None) -> bool:
    """Whether a recorded location is an Aegis-managed venv (``managed:/...``)."""
    return (location or "").startswith(MANAGED_KIND + "/")


def is_target(location: str | None) -> bool:
    """Whether a recorded location is a ``--target`` directory."""
    return (location or "").startswith(TARGET_KIND + "/")


def target_location(path: str) -> str:
    """``target:/abs/path`` for an existing directory that is no system place and no venv.

    Raises:
        InputError: a bad path, a missing directory, a system directory (the system
            interpreter's site-packages among them), a virtual environment (use --venv).
    """
    if not path or "\x00" in path or not path.isascii() or not path.startswith("/"):
        raise InputError("bad --target path: an absolute ASCII path")
    real = os.path.realpath(path)
    if real == "/" or any(real == d or real.startswith(d + "/") for d in SYSTEM_DIRS):
        raise InputError(
            f"{real} is a system directory: Aegis never installs into the system "
            "interpreter's site-packages",
            hint="a directory of the application's own, e.g. /srv/app/lib",
        )
    if not os.path.isdir(real):
        raise InputError(f"{real} is not a directory", hint="create it first (mkdir)")
    if os.path.isfile(os.path.join(real, "pyvenv.cfg")):
        raise InputError(f"{real} is a virtual environment", hint="plan with --venv DIR")
    return TARGET_KIND + real


def location_dir(location: str | None) -> str:
    """The directory of a recorded ``venv:``, ``target:`` or ``managed:`` location.

    A ``managed:`` directory is only trusted once compared with the configured root
    (:func:`aegis.ecosystems.pip.managed_venv`).

    Raises:
        InputError: no location, or another kind (fail closed).
    """
    for kind in ("venv:", TARGET_KIND, MANAGED_KIND):
        if location and location.startswith(kind + "/") and "\x00" not in location:
            return location[len(kind) :]
    raise InputError(f"unsupported pip location {str(location)[:80]!r}")


def pip_head(location: str | None, *, exists: bool = True) -> tuple[str, ...]:
    """The interpreter and pip that change (or plan for) ``location``.

    A venv: its own ``bin/python``. A ``--target`` directory, or a managed venv that does not
    exist yet: the system interpreter. An existing managed venv: the system interpreter's
    pip with ``--python`` (the venv has no pip of its own).
    """
    directory = location_dir(location)
    if is_target(location) or (is_managed(location) and not exists):
        return (SYSTEM_PYTHON, "-m", "pip")
    if is_managed(location):
        return (SYSTEM_PYTHON, "-m", "pip", "--python", f"{directory}/bin/python")
    return (f"{directory}/bin/python", "-m", "pip")
