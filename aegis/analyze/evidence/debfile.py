"""Reading a .deb as data, never extracting it onto the system.

A .deb is an ``ar`` archive holding ``debian-binary``, ``control.tar.*`` and
``data.tar.*``. This module walks the ar headers itself and reads both tar members
as *streams* with :mod:`tarfile` (gzip, xz, bzip2 or uncompressed in-process,
decompressed by us so the byte cap sees every byte;
zstd through ``zstd -dc`` on a pipe, argv list, explicit environment). Nothing is
ever written to disk: the control archive's small files are kept in memory and
the data archive yields only its member list (path, mode, type, link target),
plus the bytes of the few small files the content rules read
(:data:`WATCHED_CONTENT_PREFIXES`).

Public API:

- :func:`read_deb` (path) and :func:`read_deb_stream` (binary file object) ->
  :class:`DebContents`.
- :class:`Member`, :class:`DebLimits`, :class:`DebFormatError` (an InputError:
  the package is malformed or exceeds a bound; callers turn it into a hostile
  finding rather than trusting a partial read).

Invariants: every size is bounded by :class:`DebLimits` (member count, control
file size, total declared data size, path length, the decompressed bytes and the
wall time of each tar stream, the size of one long-name or pax header; GNU sparse
members are refused), because aegisd re-derives plans with this reader; member
paths are normalised to absolute POSIX paths (``./etc/x`` -> ``/etc/x``) and a
path that climbs out of the root (``..``) is kept verbatim in ``Member.raw_path``
so a rule can flag it.

Example:
    >>> deb = read_deb(Path("aegis-setuid_1.0_all.deb"))  # doctest: +SKIP
    >>> [m.path for m in deb.members if m.mode & 0o4000]  # doctest: +SKIP
    ['/usr/bin/aegis-suid']
"""

from __future__ import annotations

import bz2
import gzip
import io
import lzma
import os
import posixpath
import subprocess
import tarfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, cast

from aegis.errors import AegisError, EnvironmentFailure, InputError

MAINTAINER_SCRIPTS = ("preinst", "postinst", "prerm", "postrm", "config", "triggers")
"""Control-archive files that dpkg runs (or, for ``triggers``, interprets)."""

WATCHED_CONTENT_PREFIXES = (
    "/etc/apt/apt.conf.d/",
    "/etc/sudoers",
    "/etc/ld.so.preload",
)
"""Data files whose bytes (capped) are kept for the content rules; all else is metadata."""

_AR_MAGIC = b"!<arch>\n"
_AR_HEADER = 60
_MAX_AR_MEMBERS = 16
"""A .deb has three ar members (debian-binary, control, data); allow some slack."""
_MAX_CONTROL_ENTRIES = 1000
"""A control archive holds a handful of files; more is a malformed or hostile package."""


class DebFormatError(InputError):
    """The .deb is malformed, or exceeds a bound of :class:`DebLimits`."""


@dataclass(frozen=True)
class DebLimits:
    """Bounds on what a package may make us read (STYLE.md 4: bound sizes)."""

    max_members: int = 200_000
    """Entries in the data archive."""
    max_control_file: int = 1024 * 1024
    """One control-archive file (a maintainer script)."""
    max_control_total: int = 16 * 1024 * 1024
    """The whole uncompressed control archive."""
    max_watched_file: int = 64 * 1024
    """Bytes kept of one watched data file."""
    max_data_total: int = 16 * 1024 * 1024 * 1024
    """Sum of declared member sizes of the data archive."""
    max_path: int = 4096
    max_header: int = 64 * 1024
    """One GNU long-name or pax header: tarfile reads it whole into memory."""
    max_seconds: float = 300.0
    """Wall time to read one tar stream (a stream of zeros decompresses slowly)."""

    def stream_cap(self, declared: int, entries: int) -> int:
        """Decompressed bytes a tar stream may hold: declared data plus header overhead."""
        return declared + entries * 4 * 512 + 64 * self.max_header


DEFAULT_LIMITS = DebLimits()


@dataclass(frozen=True)
class Member:
    """One entry of the data archive (metadata only)."""

    path: str
    """Normalised absolute path, e.g. ``/etc/apt/apt.conf.d/99x``."""
    mode: int
    """Permission bits including setuid/setgid/sticky (``& 0o7777``)."""
    type: str
    """file, dir, symlink, hardlink, char, block, fifo or other."""
    linkname: str = ""
    size: int = 0
    uid: int = 0
    gid: int = 0
    raw_path: str = ""
    """The name exactly as stored in the tar header."""
    content: bytes | None = None
    """Bytes of a watched file (:data:`WATCHED_CONTENT_PREFIXES`), capped; else None."""


@dataclass(frozen=True)
class DebContents:
    """What a .deb holds, read without extracting it."""

    control: dict[str, str]
    """Fields of ``control`` (Package, Version, Source, Description ...); untrusted."""
    scripts: dict[str, bytes]
    """Maintainer scripts present, by name (see :data:`MAINTAINER_SCRIPTS`)."""
    members: tuple[Member, ...]
    conffiles: tuple[str, ...] = ()
    control_files: tuple[str, ...] = field(default=())
    """Every file name in the control archive (``md5sums``, ``shlibs`` ...)."""


# --- ar --------------------------------------------------------------------------------


@dataclass(frozen=True)
class _ArEntry:
    name: str
    offset: int
    size: int


def _ar_entries(fh: IO[bytes], total: int) -> list[_ArEntry]:
    """Parse the ar table of contents by seeking over member bodies."""
    fh.seek(0)
    if fh.read(len(_AR_MAGIC)) != _AR_MAGIC:
        raise DebFormatError("not a Debian package (no ar magic)")
    entries: list[_ArEntry] = []
    pos = len(_AR_MAGIC)
    while pos < total:
        fh.seek(pos)
        header = fh.read(_AR_HEADER)
        if len(header) == 0:
            break
        if len(header) != _AR_HEADER or header[58:60] != b"`\n":
            raise DebFormatError("malformed ar member header")
        name = header[0:16].decode("ascii", "replace").strip().rstrip("/")
        try:
            size = int(header[48:58].decode("ascii").strip())
        except ValueError as e:
            raise DebFormatError("malformed ar member size") from e
        body = pos + _AR_HEADER
        if size < 0 or body + size > total:
            raise DebFormatError(f"ar member {name!r} runs past the end of the file")
        entries.append(_ArEntry(name, body, size))
        if len(entries) > _MAX_AR_MEMBERS:
            raise DebFormatError("too many ar members for a Debian package")
        pos = body + size + (size % 2)
    return entries


class _Window(io.RawIOBase):
    """A read-only view of ``size`` bytes at ``offset`` of ``fh`` (no copy)."""

    def __init__(self, fh: IO[bytes], offset: int, size: int) -> None:
        self._fh = fh
        self._start = offset
        self._end = offset + size
        self._pos = offset

    def readable(self) -> bool:
        return True

    def readinto(self, buf: memoryview) -> int:  # type: ignore[override]
        want = min(len(buf), self._end - self._pos)
        if want <= 0:
            return 0
        self._fh.seek(self._pos)
        chunk = self._fh.read(want)
        buf[: len(chunk)] = chunk
        self._pos += len(chunk)
        return len(chunk)


# --- tar streams -----------------------------------------------------------------------


def _zstd_env() -> dict[str, str]:
    return {"PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C", "LC_ALL": "C"}


class _Capped(io.RawIOBase):
    """The decompressed bytes of one tar stream, refused past a byte cap or a deadline.

    tarfile skips a member's data by reading it, so a member declaring 16 GiB of
    zeros (16 MiB compressed) costs that much decompression: the cap and the
    deadline bound what one package can make the analyzer (and aegisd) read.
    """

    def __init__(self, inner: IO[bytes], cap: int, deadline: float, label: str) -> None:
        self._inner = inner
        self._left = cap
        self._deadline = deadline
        self._label = label

    def readable(self) -> bool:
        return True

    def readinto(self, buf: memoryview) -> int:  # type: ignore[override]
        if time.monotonic() > self._deadline:
            raise DebFormatError(f"{self._label}: reading took longer than its time limit")
        chunk = self._inner.read(min(len(buf), self._left + 1))
        if len(chunk) > self._left:
            raise DebFormatError(f"{self._label}: decompresses past its size limit")
        self._left -= len(chunk)
        buf[: len(chunk)] = chunk
        return len(chunk)


class _CheckedInfo(tarfile.TarInfo):
    """Refuses, before tarfile acts on them, headers that would cost unbounded memory.

    tarfile reads a GNU long name or a pax header whole into memory (a 4 GiB long
    name is 4 MiB of gzip), and a GNU sparse member's maps grow a list per block.
    dpkg-deb writes neither sparse members nor long headers, so refusing is safe.
    """

    max_header = DEFAULT_LIMITS.max_header

    @classmethod
    def frombuf(cls, buf: bytes | bytearray, encoding: str, errors: str) -> _CheckedInfo:
        info = super().frombuf(buf, encoding, errors)
        if info.type == tarfile.GNUTYPE_SPARSE:
            raise DebFormatError("tar member is a GNU sparse file")
        if info.type in _META_TYPES and info.size > cls.max_header:
            raise DebFormatError(f"tar header of {info.size} bytes (limit {cls.max_header})")
        return info

    def _proc_gnusparse_10(self, *args: object) -> None:
        # tarfile's pax sparse 1.0 reader loops on attacker-chosen counts; see above.
        raise DebFormatError("tar member is a pax sparse file")


_META_TYPES = (
    tarfile.GNUTYPE_LONGNAME,
    tarfile.GNUTYPE_LONGLINK,
    tarfile.XHDTYPE,
    tarfile.XGLTYPE,
    tarfile.SOLARIS_XHDTYPE,
)
_DECOMPRESSED = ("gz", "xz", "bz2", "tar")


def _decompressed(ext: str, window: IO[bytes]) -> IO[bytes]:
    """The decompressed view of ``window`` (ours, not tarfile's: the cap sees its bytes)."""
    if ext == "gz":
        return cast("IO[bytes]", gzip.GzipFile(fileobj=window, mode="rb"))
    if ext == "xz":
        return cast("IO[bytes]", lzma.LZMAFile(window))
    if ext == "bz2":
        return cast("IO[bytes]", bz2.BZ2File(window))
    return window


_TAR_BUFSIZE = 1 << 20
"""tarfile skips member data in reads of this size (its 10 KiB default is slow)."""


@dataclass
class _Stream:
    """A decompressed tar stream and whatever must be closed with it."""

    tar: tarfile.TarFile
    proc: subprocess.Popen[bytes] | None = None
    feeder: threading.Thread | None = None


def _open_tar(raw: IO[bytes], cap: int, limits: DebLimits, label: str) -> tarfile.TarFile:
    deadline = time.monotonic() + limits.max_seconds
    capped = io.BufferedReader(_Capped(raw, cap, deadline, label), _TAR_BUFSIZE)
    info_class = type("_Info", (_CheckedInfo,), {"max_header": limits.max_header})
    return tarfile.open(fileobj=capped, mode="r|", tarinfo=info_class, bufsize=_TAR_BUFSIZE)


def _tar_stream(fh: IO[bytes], entry: _ArEntry, cap: int, limits: DebLimits) -> _Stream:
    """Open ``entry`` (``*.tar``, ``.gz``, ``.xz``, ``.bz2``, ``.zst``) as a tar stream."""
    window = io.BufferedReader(_Window(fh, entry.offset, entry.size), 1 << 16)
    ext = entry.name.rsplit(".", 1)[-1]
    try:
        if ext in _DECOMPRESSED:
            return _Stream(_open_tar(_decompressed(ext, window), cap, limits, entry.name))
        if ext == "zst":
            return _zstd_stream(window, cap, limits, entry.name)
    except (AegisError, subprocess.SubprocessError):
        raise
    except Exception as e:
        # Hostile bytes reach tarfile, zlib and lzma; any failure of theirs (even
        # CPython 3.11's own AttributeError in tarfile._Stream) means "unreadable".
        raise DebFormatError(f"{entry.name}: not a readable tar stream: {e!r}") from e
    raise DebFormatError(f"{entry.name}: unsupported compression {ext!r}")


def _zstd_stream(window: IO[bytes], cap: int, limits: DebLimits, label: str) -> _Stream:
    # Python 3.11 has no zstd: pipe the member through the zstd tool (argv list,
    # explicit env). A thread feeds the compressed bytes so neither side blocks.
    try:
        proc = subprocess.Popen(
            ["zstd", "-dc", "-q", "--"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            env=_zstd_env(),
        )
    except OSError as e:
        raise EnvironmentFailure(f"cannot run zstd to read a .zst package member: {e}") from e
    assert proc.stdin is not None
    assert proc.stdout is not None

    def _feed() -> None:
        try:
            assert proc.stdin is not None
            while chunk := window.read(1 << 16):
                proc.stdin.write(chunk)
        except (OSError, ValueError):
            pass  # zstd stopped reading, or the reader was closed: nothing left to feed
        finally:
            assert proc.stdin is not None
            proc.stdin.close()

    feeder = threading.Thread(target=_feed, daemon=True)
    feeder.start()
    try:
        tar = _open_tar(proc.stdout, cap, limits, label)
    except Exception as e:
        proc.kill()
        proc.wait()
        proc.stdout.close()
        feeder.join(timeout=5)
        raise DebFormatError(f"zstd member: not a readable tar stream: {e}") from e
    return _Stream(tar, proc, feeder)


def _close(stream: _Stream) -> None:
    stream.tar.close()
    if stream.proc is not None:
        stream.proc.kill()
        stream.proc.wait()
        if stream.proc.stdout is not None:
            stream.proc.stdout.close()
    if stream.feeder is not None:
        stream.feeder.join(timeout=5)


def _norm(name: str) -> str:
    clean = posixpath.normpath("/" + name.lstrip("/"))
    # normpath keeps a leading "//" on POSIX; one slash is the canonical form.
    return "/" + clean.lstrip("/") if clean != "/" else "/"


_KINDS: tuple[tuple[Callable[[tarfile.TarInfo], bool], str], ...] = (
    (tarfile.TarInfo.isreg, "file"),
    (tarfile.TarInfo.isdir, "dir"),
    (tarfile.TarInfo.issym, "symlink"),
    (tarfile.TarInfo.islnk, "hardlink"),
    (tarfile.TarInfo.ischr, "char"),
    (tarfile.TarInfo.isblk, "block"),
    (tarfile.TarInfo.isfifo, "fifo"),
)


def _kind(info: tarfile.TarInfo) -> str:
    return next((kind for test, kind in _KINDS if test(info)), "other")


def _read_member(tar: tarfile.TarFile, info: tarfile.TarInfo, cap: int) -> bytes:
    handle = tar.extractfile(info)
    if handle is None:
        return b""
    return handle.read(cap)


def _read_control(stream: _Stream, limits: DebLimits) -> tuple[dict[str, bytes], list[str]]:
    files: dict[str, bytes] = {}
    names: list[str] = []
    total = 0
    try:
        for info in stream.tar:
            if len(names) > _MAX_CONTROL_ENTRIES:
                raise DebFormatError("control archive has too many entries")
            name = _norm(info.name).lstrip("/")
            if not name or info.isdir():
                continue
            names.append(name)
            if not info.isreg():
                # A symlinked maintainer script points outside the package: refuse it.
                if name in MAINTAINER_SCRIPTS:
                    raise DebFormatError(f"control member {name!r} is not a regular file")
                continue
            if info.size > limits.max_control_file:
                raise DebFormatError(
                    f"control member {name!r} is {info.size} bytes "
                    f"(limit {limits.max_control_file})"
                )
            total += info.size
            if total > limits.max_control_total:
                raise DebFormatError("control archive exceeds its size limit")
            files[name] = _read_member(stream.tar, info, limits.max_control_file)
    except AegisError:
        raise
    except Exception as e:  # see _tar_stream: any decoder failure means corrupt
        raise DebFormatError(f"control archive is corrupt: {e!r}") from e
    return files, names


def _watched(path: str) -> bool:
    return any(path.startswith(p) for p in WATCHED_CONTENT_PREFIXES)


def _read_data(stream: _Stream, limits: DebLimits) -> list[Member]:
    members: list[Member] = []
    declared = 0
    try:
        for info in stream.tar:
            if len(members) >= limits.max_members:
                raise DebFormatError(f"data archive has more than {limits.max_members} entries")
            if len(info.name) > limits.max_path or len(info.linkname) > limits.max_path:
                raise DebFormatError("data archive member path is too long")
            declared += max(info.size, 0)
            if declared > limits.max_data_total:
                raise DebFormatError("data archive exceeds its declared-size limit")
            path = _norm(info.name)
            kind = _kind(info)
            content = None
            if kind == "file" and _watched(path):
                content = _read_member(stream.tar, info, limits.max_watched_file)
            members.append(
                Member(
                    path=path,
                    mode=info.mode & 0o7777,
                    type=kind,
                    linkname=info.linkname,
                    size=info.size,
                    uid=info.uid,
                    gid=info.gid,
                    raw_path=info.name,
                    content=content,
                )
            )
    except AegisError:
        raise
    except Exception as e:  # see _tar_stream: any decoder failure means corrupt
        raise DebFormatError(f"data archive is corrupt: {e!r}") from e
    return members


def parse_control(text: bytes) -> dict[str, str]:
    r"""Parse a ``control`` file's fields (first paragraph), strictly enough.

    Continuation lines are joined with ``\n``; the result is untrusted text.

    Raises:
        DebFormatError: not UTF-8, or a line that is neither field nor continuation.
    """
    try:
        decoded = text.decode("utf-8")
    except UnicodeDecodeError as e:
        raise DebFormatError("control file is not UTF-8") from e
    fields: dict[str, str] = {}
    last: str | None = None
    for line in decoded.splitlines():
        if not line.strip():
            if fields:
                break
            continue
        if line[0] in " \t":
            if last is None:
                raise DebFormatError("control file starts with a continuation line")
            fields[last] += "\n" + line[1:]
            continue
        key, sep, value = line.partition(":")
        if not sep or not key or " " in key:
            raise DebFormatError(f"malformed control line {line[:60]!r}")
        last = key
        fields[key] = value.strip()
    return fields


def read_deb_stream(fh: IO[bytes], *, limits: DebLimits = DEFAULT_LIMITS) -> DebContents:
    """Read a .deb from a seekable binary file object.

    Raises:
        DebFormatError: malformed archive, missing members, or a bound exceeded.
        EnvironmentFailure: a zstd member and no ``zstd`` tool.
    """
    fh.seek(0, os.SEEK_END)
    total = fh.tell()
    entries = _ar_entries(fh, total)
    names = [e.name for e in entries]
    if not names or names[0] != "debian-binary":
        raise DebFormatError("first ar member is not debian-binary")
    fh.seek(entries[0].offset)
    if not fh.read(min(entries[0].size, 16)).startswith(b"2."):
        raise DebFormatError("unsupported debian-binary format version")
    control_entry = next((e for e in entries if e.name.startswith("control.tar")), None)
    data_entry = next((e for e in entries if e.name.startswith("data.tar")), None)
    if control_entry is None or data_entry is None:
        raise DebFormatError("package lacks control.tar or data.tar")
    control_cap = limits.stream_cap(limits.max_control_total, _MAX_CONTROL_ENTRIES + 1)
    stream = _tar_stream(fh, control_entry, control_cap, limits)
    try:
        files, control_names = _read_control(stream, limits)
    finally:
        _close(stream)
    if "control" not in files:
        raise DebFormatError("control archive has no control file")
    data_cap = limits.stream_cap(limits.max_data_total, limits.max_members)
    stream = _tar_stream(fh, data_entry, data_cap, limits)
    try:
        members = _read_data(stream, limits)
    finally:
        _close(stream)
    conffiles = tuple(
        ln.strip()
        for ln in files.get("conffiles", b"").decode("utf-8", "replace").splitlines()
        if ln.strip()
    )
    return DebContents(
        control=parse_control(files["control"]),
        scripts={n: files[n] for n in MAINTAINER_SCRIPTS if n in files},
        members=tuple(members),
        conffiles=conffiles,
        control_files=tuple(sorted(control_names)),
    )


def read_deb(path: Path, *, limits: DebLimits = DEFAULT_LIMITS) -> DebContents:
    """Read the .deb at ``path`` without extracting it (see :func:`read_deb_stream`).

    Raises:
        DebFormatError: malformed or over a bound.
        EnvironmentFailure: the file cannot be opened.
    """
    try:
        with path.open("rb") as fh:
            return read_deb_stream(fh, limits=limits)
    except OSError as e:
        raise EnvironmentFailure(f"cannot read package file {path}: {e.strerror}") from e
