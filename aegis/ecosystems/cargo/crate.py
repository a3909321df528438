"""Read a ``.crate`` (a tar.gz) in memory, strictly and bounded, and what it will run. Pure.

Our own strict reader rather than ``tarfile``'s extraction filters (nor the .deb reader,
:mod:`aegis.ecosystems.apt.evidence.tarread`, which refuses pax headers as dpkg does, while cargo's
extractor honours them): a crate is bytes anyone
could have published, we never extract it to disk, and the bounds are the point. The gzip
stream is inflated in bounded steps with a hard cap on the total (a small file cannot expand
into gigabytes, and nothing but the few kept files is held in memory), every header is read
and checked (checksum, type, name), members are counted, only regular files and directories
are accepted (no links, devices or FIFOs: a symlinked ``build.rs`` or ``Cargo.lock`` would
make the evidence lie), and every name must sit under ``NAME-VERSION/`` without ``..``,
``.`` or empty elements, absolute paths or control characters; a file named twice is
refused. GNU long names and the ``path``/``size`` records of pax headers are honoured (cargo
and Python write them); other pax records, sparse files and base-256 sizes are refused.
After the end-of-archive block only zeros may follow. Only the few files the evidence needs
are kept; the manifest is parsed as soon as it is read, so a ``build = "..."`` script later
in the archive is kept in the same pass.

Evidence: the manifest (``Cargo.toml``: ``links``, ``[lib] proc-macro``, ``build``, the
binaries), the packaged ``Cargo.lock`` (what ``--locked`` installs), and the build script's
source: the commands it spawns (``Command::new("...")`` with its literal ``.arg``s) become
command lines scored with the maintainer-script rules.
"""

from __future__ import annotations

import re
import shlex
import zlib
from collections.abc import Callable, Iterator
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


_BLOCK = 512
_STEP = 256 * 1024
_PAX_IGNORED = frozenset({"mtime", "atime", "ctime", "uid", "gid", "uname", "gname", "comment"})


class _Inflater:
    """The tar stream of a gzip, inflated ``_STEP`` bytes at a time, capped in total.

    What is inflated is kept as one ``bytes`` and a position in it: skipping a member moves
    the position and copies nothing (a bytearray trimmed at the front is copied whenever
    it shrinks below half of its allocation).
    """

    def __init__(self, data: bytes) -> None:
        if len(data) > MAX_CRATE:
            raise CrateError(f"larger than {MAX_CRATE} bytes")
        self.d = zlib.decompressobj(wbits=31)  # gzip only
        self.src = data
        self.buf = b""
        self.pos = 0
        self.total = 0

    def _more(self) -> bool:
        try:
            if self.d.unconsumed_tail:
                out = self.d.decompress(self.d.unconsumed_tail, _STEP)
            elif self.src and not self.d.eof:
                out = self.d.decompress(self.src, _STEP)
                self.src = b""
            else:
                return False
        except zlib.error as e:
            raise CrateError(f"not gzip: {e}") from e
        self.total += len(out)
        if self.total > MAX_INFLATED:
            raise CrateError(f"expands past {MAX_INFLATED} bytes")
        self.buf = self.buf[self.pos :] + out if self.pos < len(self.buf) else out
        self.pos = 0
        return True

    def read(self, n: int) -> bytes:
        """Exactly ``n`` bytes."""
        while len(self.buf) - self.pos < n:
            if not self._more():
                raise CrateError("not a tar archive: truncated")
        out = self.buf[self.pos : self.pos + n]
        self.pos += n
        return out

    def skip(self, n: int) -> None:
        """Drop ``n`` bytes without keeping them."""
        while n > 0:
            avail = len(self.buf) - self.pos
            if not avail:
                if not self._more():
                    raise CrateError("not a tar archive: truncated")
                continue
            step = min(n, avail)
            self.pos += step
            n -= step

    def rest_is_zeros(self) -> bool:
        """Inflate what is left (still capped); True when it is all zeros."""
        while True:
            if self.buf.count(0, self.pos) != len(self.buf) - self.pos:
                return False
            self.buf, self.pos = b"", 0
            if not self._more():
                return True


_OCTAL = re.compile(rb" *([0-7]*)[ \0]*")


def _octal(field: bytes, what: str) -> int:
    m = _OCTAL.fullmatch(field)  # base-256 (a high first byte) and other digits refused
    if m is None:
        raise CrateError(f"not a tar archive: bad {what}")
    return int(m[1], 8) if m[1] else 0


def _pax(data: bytes) -> dict[str, str]:
    out: dict[str, str] = {}
    pos = 0
    while pos < len(data):
        length, sep, _ = data[pos : pos + 24].partition(b" ")
        if not sep or not length.isdigit() or int(length) < 5:  # noqa: PLR2004
            raise CrateError("not a tar archive: bad pax header")
        record = data[pos : pos + int(length)]
        pos += int(length)
        key, eq, value = record[len(length) + 1 : -1].partition(b"=")
        if not eq or not record.endswith(b"\n"):
            raise CrateError("not a tar archive: bad pax record")
        name = key.decode("utf-8", "replace")
        if name in ("path", "size"):
            try:
                out[name] = value.decode("utf-8")
            except UnicodeDecodeError as e:
                raise CrateError("not a tar archive: a pax path is not UTF-8") from e
        elif name not in _PAX_IGNORED:
            raise CrateError(f"pax record {name[:40]!r} is not read here")
    return out


def _header(block: bytes) -> tuple[str, int, int]:
    """(name, type, size) of a 512-byte header; its checksum checked."""
    stored = _octal(block[148:156], "checksum")
    unsigned = sum(block) - sum(block[148:156]) + 256  # the field counts as spaces
    if stored != unsigned:  # old tars summed signed bytes
        high = sum(1 for c in block[:148] + block[156:] if c >= 0x80)  # noqa: PLR2004
        if stored != unsigned - 256 * high:
            raise CrateError("not a tar archive: bad header checksum")
    name = block[:100].split(b"\0", 1)[0]
    if block[257:263] == b"ustar\0":  # POSIX ustar: a prefix field (GNU's is other data)
        prefix = block[345:500].split(b"\0", 1)[0]
        name = prefix + b"/" + name if prefix else name
    try:
        text = name.decode("utf-8")
    except UnicodeDecodeError as e:
        raise CrateError("a member name is not UTF-8") from e
    return text, block[156], _octal(block[124:136], "size")


def _checked(name: str, prefix: str) -> str:
    """``name`` relative to ``prefix/`` when it is a plain path there."""
    parts = name.split("/")
    if (name.startswith("/") or not name.isprintable() or parts[0] != prefix
            or any(p in ("", ".", "..") for p in parts[1:])):  # fmt: skip
        raise CrateError(f"member {name[:80]!r} is outside {prefix}/")
    return "/".join(parts[1:])


Keep = Callable[[str, bytes], None]


def _members(z: _Inflater) -> Iterator[tuple[str, int, int]]:
    """(name, type, size) of each member, GNU long names and pax records applied."""
    long_name: str | None = None
    pax: dict[str, str] = {}
    for _ in range(MAX_MEMBERS * 3):  # a member may come with a long-name and a pax header
        block = z.read(_BLOCK)
        if block.count(0) == _BLOCK:
            if not z.rest_is_zeros():
                raise CrateError("data after the end of the archive")
            return
        name, kind, size = _header(block)
        if kind in (ord("L"), ord("x")):
            if size > MAX_KEPT_FILE:
                raise CrateError("a long name or pax header is too large")
            body = z.read(size + (-size % _BLOCK))[:size]
            if kind == ord("L"):
                long_name = body.split(b"\0", 1)[0].decode("utf-8", "surrogateescape")
            else:
                pax = _pax(body)
            continue
        name = pax.get("path", long_name if long_name is not None else name)
        if "size" in pax:
            if not pax["size"].isdigit():
                raise CrateError("not a tar archive: bad pax size")
            size = int(pax["size"])
        long_name, pax = None, {}
        if kind == ord("\0") and name.endswith("/"):
            kind = ord("5")
        yield name, kind, size
    raise CrateError(f"more than {MAX_MEMBERS} members")


def scan(data: bytes, prefix: str, wanted: set[str], keep: Keep) -> set[str]:
    """Check every member of a .crate; hand each ``wanted`` file to ``keep`` as it is read.

    ``keep`` may add names to ``wanted`` (a file named by one read before it). Returns the
    regular files' names (relative to ``prefix/``).

    Raises:
        CrateError: a bound or a member type or name outside the rules above.
    """
    z = _Inflater(data)
    files: set[str] = set()
    for name, kind, size in _members(z):
        padded = size + (-size % _BLOCK)
        if kind == ord("5"):
            _checked(name.rstrip("/"), prefix)
            z.skip(padded)
            continue
        if kind not in (ord("0"), ord("\0"), ord("7")):
            raise CrateError(f"member {name[:80]!r} is not a file or directory")
        rel = _checked(name, prefix)
        if rel in files:
            raise CrateError(f"{rel[:80]!r} is in the archive twice")
        files.add(rel)
        if len(files) > MAX_MEMBERS:
            raise CrateError(f"more than {MAX_MEMBERS} members")
        if rel in wanted:
            if size > MAX_KEPT_FILE:
                raise CrateError(f"{rel} is larger than {MAX_KEPT_FILE} bytes")
            keep(rel, z.read(padded)[:size])
        else:
            z.skip(padded)
    return files


def read_members(data: bytes, prefix: str, wanted: frozenset[str]) -> dict[str, bytes]:
    """The ``wanted`` files (relative to ``prefix/``) of a .crate; checks every member.

    Raises:
        CrateError: a bound or a member type or name outside the rules above.
    """
    kept: dict[str, bytes] = {}
    scan(data, prefix, set(wanted), kept.__setitem__)
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
    # The archive reader already bounds each member's size. tomllib, although it is about
    # half of a small crate's plan: of the compiled parsers on PyPI, rtoml (0.14) accepts
    # TOML 1.1 documents tomllib refuses (a time without seconds, a trailing comma in an
    # inline table), and pytomlpp ships no aarch64 wheels.
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


def _build_path(manifest: dict[str, Any]) -> str:
    """A ``build = "path"`` other than ``build.rs`` ("" when none), checked to be plain."""
    package = manifest.get("package")
    build = package.get("build") if isinstance(package, dict) else None
    if not isinstance(build, str) or build == "build.rs":
        return ""
    if not re.fullmatch(r"[A-Za-z0-9_./-]{1,200}", build) or ".." in build.split("/"):
        raise CrateError(f"build = {build[:80]!r} is not a plain path")
    return build


def inspect_crate(data: bytes, name: str, version: str, *, top: bool = True) -> CrateFacts:
    """Read the crate's manifest, lockfile and build script (never extracted, never run).

    One pass over the archive: the manifest is parsed when it is read, so a custom build
    script after it is kept on the way (a second pass only when it came first). ``top``:
    the crate being installed; a dependency's own lockfile is not read (``--locked`` uses
    the installed crate's alone).

    Raises:
        CrateError: an unreadable or hostile archive.
    """
    prefix = f"{name}-{version}"
    wanted = {"Cargo.toml", "build.rs", *(("Cargo.lock",) if top else ())}
    kept: dict[str, bytes] = {}
    manifest: dict[str, Any] = {}

    def keep(rel: str, body: bytes) -> None:
        kept[rel] = body
        if rel == "Cargo.toml":
            manifest.update(_toml(body, "Cargo.toml"))
            custom = _build_path(manifest)
            if custom:
                wanted.add(custom)

    files = scan(data, prefix, wanted, keep)
    if "Cargo.toml" not in kept:
        raise CrateError(f"no {prefix}/Cargo.toml")
    package = manifest.get("package") if isinstance(manifest.get("package"), dict) else {}
    assert isinstance(package, dict)
    build = package.get("build")
    custom = _build_path(manifest)
    script = ""
    source = b""
    if custom:
        script = custom
        source = kept.get(custom, b"")
        if custom not in kept and custom in files:  # it came before the manifest
            source = read_members(data, prefix, frozenset({custom})).get(custom, b"")
    elif build is not False and "build.rs" in kept:
        script, source = "build.rs", kept["build.rs"]
    lib = manifest.get("lib") if isinstance(manifest.get("lib"), dict) else {}
    assert isinstance(lib, dict)
    bins_raw = manifest.get("bin")
    bins = [str(b.get("name")) for b in bins_raw if isinstance(b, dict) and b.get("name")] if \
        isinstance(bins_raw, list) else []  # fmt: skip
    if not bins and package.get("autobins", True) is not False and "src/main.rs" in files:
        bins = [str(package.get("name", name))]
    lock = _lock_entries(_toml(kept["Cargo.lock"], "Cargo.lock")) if "Cargo.lock" in kept \
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
