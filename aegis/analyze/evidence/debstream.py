"""The byte level of reading a .deb: ar members and bounded tar streams.

A .deb is an ``ar`` archive; :func:`ar_entries` walks its headers itself and
:func:`tar_stream` opens ``control.tar.*`` or ``data.tar.*`` as a :mod:`tarfile`
stream. gzip, xz, bzip2 and plain tar are decompressed in-process behind a counting
reader, so the cap of :meth:`DebLimits.stream_cap` and the wall-time limit see every
decompressed byte; zstd goes through ``zstd -dc`` on a pipe (argv list, explicit
environment). Long-name and pax headers over ``max_header`` and GNU/pax sparse members
are refused before tarfile reads them: aegisd re-derives plans with this reader, so a
hostile package must not cost unbounded memory or time. What the members mean is
:mod:`aegis.analyze.evidence.debfile`.

Example:
    >>> with open(path, "rb") as fh:  # doctest: +SKIP
    ...     entries = ar_entries(fh, os.fstat(fh.fileno()).st_size)
"""

from __future__ import annotations

import bz2
import gzip
import io
import lzma
import subprocess
import tarfile
import threading
import time
from dataclasses import dataclass
from typing import IO, cast

from aegis.errors import AegisError, EnvironmentFailure, InputError

_AR_MAGIC = b"!<arch>\n"
_AR_HEADER = 60
_MAX_AR_MEMBERS = 16
"""A .deb has three ar members (debian-binary, control, data); allow some slack."""
MAX_CONTROL_ENTRIES = 1000
"""A control archive holds a handful of files; more is a malformed or hostile package."""


class DebFormatError(InputError):
    """The .deb is malformed, or exceeds a bound of :class:`DebLimits`."""


@dataclass(frozen=True)
class DebLimits:
    """Bounds on what a package may make us read (bound every size an input controls)."""

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
class ArEntry:
    """One ar member: its name and where its body lies in the file."""

    name: str
    offset: int
    size: int


def ar_entries(fh: IO[bytes], total: int) -> list[ArEntry]:
    """Parse the ar table of contents by seeking over member bodies."""
    fh.seek(0)
    if fh.read(len(_AR_MAGIC)) != _AR_MAGIC:
        raise DebFormatError("not a Debian package (no ar magic)")
    entries: list[ArEntry] = []
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
        entries.append(ArEntry(name, body, size))
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
class Stream:
    """A decompressed tar stream and whatever must be closed with it."""

    tar: tarfile.TarFile
    proc: subprocess.Popen[bytes] | None = None
    feeder: threading.Thread | None = None


def _open_tar(raw: IO[bytes], cap: int, limits: DebLimits, label: str) -> tarfile.TarFile:
    deadline = time.monotonic() + limits.max_seconds
    capped = io.BufferedReader(_Capped(raw, cap, deadline, label), _TAR_BUFSIZE)
    info_class = type("_Info", (_CheckedInfo,), {"max_header": limits.max_header})
    return tarfile.open(fileobj=capped, mode="r|", tarinfo=info_class, bufsize=_TAR_BUFSIZE)


def tar_stream(fh: IO[bytes], entry: ArEntry, cap: int, limits: DebLimits) -> Stream:
    """Open ``entry`` (``*.tar``, ``.gz``, ``.xz``, ``.bz2``, ``.zst``) as a tar stream."""
    window = io.BufferedReader(_Window(fh, entry.offset, entry.size), 1 << 16)
    ext = entry.name.rsplit(".", 1)[-1]
    try:
        if ext in _DECOMPRESSED:
            return Stream(_open_tar(_decompressed(ext, window), cap, limits, entry.name))
        if ext == "zst":
            return _zstd_stream(window, cap, limits, entry.name)
    except (AegisError, subprocess.SubprocessError):
        raise
    except Exception as e:
        # Hostile bytes reach tarfile, zlib and lzma; any failure of theirs (even
        # CPython 3.11's own AttributeError in tarfile.Stream) means "unreadable".
        raise DebFormatError(f"{entry.name}: not a readable tar stream: {e!r}") from e
    raise DebFormatError(f"{entry.name}: unsupported compression {ext!r}")


def _zstd_stream(window: IO[bytes], cap: int, limits: DebLimits, label: str) -> Stream:
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
    return Stream(tar, proc, feeder)


def close_stream(stream: Stream) -> None:
    """Close the tar stream, stop a zstd child and its feeder thread."""
    stream.tar.close()
    if stream.proc is not None:
        stream.proc.kill()
        stream.proc.wait()
        if stream.proc.stdout is not None:
            stream.proc.stdout.close()
    if stream.feeder is not None:
        stream.feeder.join(timeout=5)
