"""Read a ``.crate`` (a tar.gz) in memory, strictly and bounded, and what it will run. Pure.

Our own strict reader rather than ``tarfile``'s extraction filters: a crate is bytes anyone
could have published, we never extract it to disk, and the bounds are the point. The gzip
stream is inflated with a hard cap (a small file cannot expand into gigabytes), members are
counted, only regular files and directories are accepted (no links, devices or FIFOs: a
symlinked ``build.rs`` or ``Cargo.lock`` would make the evidence lie), and every name must
sit under ``NAME-VERSION/`` without ``..``, absolute paths or control characters. Only the
few files the evidence needs are kept.

Evidence: the manifest (``Cargo.toml``: ``links``, ``[lib] proc-macro``, ``build``, the
binaries), the packaged ``Cargo.lock`` (what ``--locked`` installs), and the build script's
source: the commands it spawns (``Command::new("...")`` with its literal ``.arg``s) become
command lines scored with the maintainer-script rules.
"""

from __future__ import annotations

import io
import re
import shlex
import tarfile
import zlib
from dataclasses import dataclass
from typing import Any

from aegis.toml_doc import load_toml

MAX_CRATE = 32 * 1024 * 1024
"""Compressed size cap of one .crate."""
MAX_INFLATED = 128 * 1024 * 1024
MAX_MEMBERS = 20_000
MAX_COMMANDS = 64
MAX_KEPT_FILE = 1024 * 1024
"""Cap of each file kept in memory (manifest, lockfile, build script)."""
SHELLS = frozenset({"sh", "bash", "dash", "zsh", "/bin/sh", "/bin/bash", "/usr/bin/env"})
CRATES_IO = (
    "registry+https://github.com/rust-lang/crates.io-index",
    "sparse+https://index.crates.io/",
)


class CrateError(ValueError):
    """The .crate is not one we read (too big, a link, a path outside its folder...)."""


def _inflate(data: bytes) -> bytes:
    if len(data) > MAX_CRATE:
        raise CrateError(f"larger than {MAX_CRATE} bytes")
    d = zlib.decompressobj(wbits=31)  # gzip only
    try:
        out = d.decompress(data, MAX_INFLATED + 1)
    except zlib.error as e:
        raise CrateError(f"not gzip: {e}") from e
    if len(out) > MAX_INFLATED or d.unconsumed_tail:
        raise CrateError(f"expands past {MAX_INFLATED} bytes")
    return out


def read_members(data: bytes, prefix: str, wanted: frozenset[str]) -> dict[str, bytes]:
    """The ``wanted`` files (relative to ``prefix/``) of a .crate; checks every member.

    Raises:
        CrateError: a bound or a member type or name outside the rules above.
    """
    raw = _inflate(data)
    kept: dict[str, bytes] = {}
    seen = 0
    try:
        with tarfile.open(fileobj=io.BytesIO(raw), mode="r:") as tf:
            for m in tf:
                seen += 1
                if seen > MAX_MEMBERS:
                    raise CrateError(f"more than {MAX_MEMBERS} members")
                name = m.name
                if not (m.isreg() or m.isdir()):
                    raise CrateError(f"member {name[:80]!r} is not a file or directory")
                parts = name.split("/")
                if (name.startswith("/") or ".." in parts or parts[0] != prefix
                        or not name.isprintable()):  # fmt: skip
                    raise CrateError(f"member {name[:80]!r} is outside {prefix}/")
                rel = "/".join(parts[1:])
                if m.isreg() and rel in wanted:
                    if m.size > MAX_KEPT_FILE:
                        raise CrateError(f"{rel} is larger than {MAX_KEPT_FILE} bytes")
                    f = tf.extractfile(m)
                    kept[rel] = f.read(MAX_KEPT_FILE) if f else b""
    except tarfile.TarError as e:
        raise CrateError(f"not a tar archive: {e}") from e
    return kept


@dataclass(frozen=True)
class CrateFacts:
    """What one crate brings: binaries, build script, proc-macro, native links, lockfile."""

    bins: tuple[str, ...] = ()
    build_script: str = ""
    """Path of the build script inside the crate; "" when none."""
    build_commands: tuple[str, ...] = ()
    """Command lines the build script spawns (literal parts; ``<expr>`` where computed)."""
    proc_macro: bool = False
    links: str = ""
    lock: tuple[tuple[str, str, str, str], ...] | None = None
    """The packaged ``Cargo.lock``: (name, version, source, checksum) of every package; None
    when the crate ships none."""


_COMMAND_RE = re.compile(r"Command::new\s*\(\s*(?:\"((?:[^\"\\]|\\.)*)\"|([^)]*))\)")
_ARG_RE = re.compile(r"\.args?\s*\(\s*(\[[^\]]*\]|&?\[[^\]]*\]|\"(?:[^\"\\]|\\.)*\"|[^)]*)\)")
_LIT_RE = re.compile(r"\"((?:[^\"\\]|\\.)*)\"")


def _unescape(text: str) -> str:
    return text.replace('\\"', '"').replace("\\\\", "\\").replace("\\n", "\n")


def build_commands(source: str) -> tuple[str, ...]:
    """The command lines a build script spawns, as far as its literals tell.

    A heuristic signal, not a Rust parser: each ``Command::new(...)`` up to the end of its
    statement, with the literal ``.arg``/``.args`` parts; a computed part is ``<expr>``.
    """
    out: list[str] = []
    for m in _COMMAND_RE.finditer(source):
        program = _unescape(m.group(1)) if m.group(1) is not None else "<expr>"
        end = source.find(";", m.end())
        tail = source[m.end() : end if end != -1 else len(source)]
        words = [program]
        for a in _ARG_RE.finditer(tail):
            lits = _LIT_RE.findall(a.group(1))
            words.extend(_unescape(x) for x in lits) if lits else words.append("<expr>")
        out.append(shlex.join(words))
        if len(out) >= MAX_COMMANDS:
            break
    return tuple(out)


def shell_texts(command: str) -> list[str]:
    """Texts to score with the script rules: the line itself, and ``sh -c SCRIPT``'s script."""
    texts = [command]
    try:
        words = shlex.split(command)
    except ValueError:
        return texts
    if words and words[0] in SHELLS and "-c" in words[1:-1]:
        texts.append(words[words.index("-c") + 1])
    return texts


def _toml(data: bytes, what: str) -> dict[str, Any]:
    # The archive reader already bounds each member's size.
    return load_toml(data, what=what, max_bytes=len(data), error=CrateError)


def _lock_entries(doc: dict[str, Any]) -> tuple[tuple[str, str, str, str], ...]:
    out: list[tuple[str, str, str, str]] = []
    pkgs = doc.get("package")
    if not isinstance(pkgs, list):
        raise CrateError("Cargo.lock has no [[package]] list")
    for p in pkgs[:5000]:
        if not isinstance(p, dict):
            raise CrateError("Cargo.lock: a package is not a table")
        out.append((str(p.get("name", "")), str(p.get("version", "")),
                    str(p.get("source", "")), str(p.get("checksum", ""))))  # fmt: skip
    return tuple(out)


def inspect_crate(data: bytes, name: str, version: str) -> CrateFacts:
    """Read the crate's manifest, lockfile and build script (never extracted, never run).

    Raises:
        CrateError: an unreadable or hostile archive.
    """
    prefix = f"{name}-{version}"
    first = read_members(
        data, prefix, frozenset({"Cargo.toml", "Cargo.lock", "build.rs", "src/main.rs"})
    )
    if "Cargo.toml" not in first:
        raise CrateError(f"no {prefix}/Cargo.toml")
    manifest = _toml(first["Cargo.toml"], "Cargo.toml")
    package = manifest.get("package") if isinstance(manifest.get("package"), dict) else {}
    assert isinstance(package, dict)
    build = package.get("build")
    script = ""
    source = b""
    if isinstance(build, str) and build != "build.rs":
        if not re.fullmatch(r"[A-Za-z0-9_./-]{1,200}", build) or ".." in build.split("/"):
            raise CrateError(f"build = {build[:80]!r} is not a plain path")
        script = build
        source = read_members(data, prefix, frozenset({build})).get(build, b"")
    elif build is not False and "build.rs" in first:
        script, source = "build.rs", first["build.rs"]
    lib = manifest.get("lib") if isinstance(manifest.get("lib"), dict) else {}
    assert isinstance(lib, dict)
    bins_raw = manifest.get("bin")
    bins = [str(b.get("name")) for b in bins_raw if isinstance(b, dict) and b.get("name")] if \
        isinstance(bins_raw, list) else []  # fmt: skip
    if not bins and package.get("autobins", True) is not False and "src/main.rs" in first:
        bins = [str(package.get("name", name))]
    lock = _lock_entries(_toml(first["Cargo.lock"], "Cargo.lock")) if "Cargo.lock" in first \
        else None  # fmt: skip
    text = source.decode("utf-8", "replace")
    return CrateFacts(
        bins=tuple(sorted(set(bins))),
        build_script=script,
        build_commands=build_commands(text) if script else (),
        proc_macro=bool(lib.get("proc-macro") or lib.get("proc_macro")),
        links=str(package.get("links") or ""),
        lock=lock,
    )
