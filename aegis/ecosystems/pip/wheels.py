"""Evidence read from the artifacts themselves: hash, ``.pth`` files, native code, scripts.

The planner downloads each wheel the resolution names (bounded,
:func:`aegis.ecosystems.prefetch.get`), checks it against the SHA-256 the index published,
and lists it without extracting anything.
"""

from __future__ import annotations

import configparser
import hashlib
import io
import zipfile
from dataclasses import dataclass

MAX_MEMBERS = 50_000
NATIVE_SUFFIXES = (".so", ".pyd", ".dylib")


@dataclass(frozen=True)
class WheelFacts:
    """What the bytes of one artifact showed."""

    sha256: str
    size: int
    pth_files: tuple[str, ...] = ()
    native_modules: tuple[str, ...] = ()
    commands: tuple[str, ...] = ()
    problem: str = ""


def _commands(zf: zipfile.ZipFile, names: list[str]) -> tuple[str, ...]:
    out: set[str] = set()
    for n in names:
        parts = n.split("/")
        top, rest = parts[0], parts[1:]
        if top.endswith(".dist-info") and rest == ["entry_points.txt"]:
            cp = configparser.ConfigParser(interpolation=None, delimiters=("=",))
            try:
                cp.read_string(zf.read(n)[:65536].decode("utf-8", "replace"))
            except configparser.Error:
                continue
            for section in ("console_scripts", "gui_scripts"):
                if cp.has_section(section):
                    out.update(cp.options(section))
        elif (
            top.endswith(".data") and len(rest) == len(("scripts", "NAME")) and rest[0] == "scripts"
        ):
            out.add(rest[1])
    return tuple(sorted(out))


def inspect_wheel(data: bytes) -> WheelFacts:
    """Hash and list a wheel's bytes."""
    digest = hashlib.sha256(data).hexdigest()
    try:
        zf = zipfile.ZipFile(io.BytesIO(data))
        names = zf.namelist()[:MAX_MEMBERS]
    except (zipfile.BadZipFile, ValueError) as e:
        return WheelFacts(digest, len(data), problem=f"not a wheel: {e}")
    pth = tuple(sorted(n for n in names if "/" not in n and n.endswith(".pth")))
    native = tuple(sorted(n for n in names if n.endswith(NATIVE_SUFFIXES) or ".so." in n))
    return WheelFacts(digest, len(data), pth, native, _commands(zf, names))


def hash_only(data: bytes) -> WheelFacts:
    """An sdist is not listed: building it runs code, which approval covers."""
    return WheelFacts(hashlib.sha256(data).hexdigest(), len(data))
