"""The byte level of reading a .deb: ar members and bounded tar streams.

A .deb is an ``ar`` archive; :func:`ar_entries` walks its headers itself and
:func:`tar_stream` opens ``control.tar.*`` or ``data.tar.*`` as a
:class:`~aegis.ecosystems.apt.evidence.tarread.TarReader` (our own strict reader of what
dpkg installs, not :mod:`tarfile`; that module says why). gzip, xz, bzip2, zstd (the
``zstandard`` library, no external tool) and plain tar are decompressed in-process
behind a counting reader, so the cap of :meth:`DebLimits.stream_cap` and the
wall-time limit see every decompressed byte: aegisd re-derives plans with this
reader, so a hostile package must not cost unbounded memory or time. What the
members mean is :mod:`aegis.ecosystems.apt.evidence.debfile`.

Example:
    >>> with open(path, "rb") as fh:  # doctest: +SKIP
    ...     entries = ar_entries(fh, os.fstat(fh.fileno()).st_size)
"""

from __future__ import annotations

import bz2
import io
import lzma
import time
import zlib
from dataclasses import dataclass
from typing import IO, cast

import zstandard

from aegis.ecosystems.apt.evidence.tarread import SKIP_READ, DebFormatError, TarReader

_AR_MAGIC = b"!<arch>\n"
_AR_HEADER = 60
_MAX_AR_MEMBERS = 16
"""A .deb has three ar members (debian-binary, control, data); allow some slack."""
MAX_CONTROL_ENTRIES = 1000
"""A control archive holds a handful of files; more is a malformed or hostile package."""


__all__ = [
    "DEFAULT_LIMITS",
    "MAX_CONTROL_ENTRIES",
    "ArEntry",
    "DebFormatError",
    "DebLimits",
    "ar_entries",
    "tar_stream",
]


@dataclass(frozen=True)
class DebLimits:
    """Bounds on what a package may make us read (bound every size an input controls)."""

    max_members: int = 200_000
    """Entries in the data archive."""
    max_control_file: int = 1024 * 1024
    """One control-archive file that is read (``control``, ``conffiles``, a maintainer
    script); the others (``md5sums`` ...) count only towards ``max_control_total``."""
    max_control_total: int = 16 * 1024 * 1024
    """The whole uncompressed control archive."""
    max_watched_file: int = 64 * 1024
    """Bytes kept of one watched data file."""
    max_data_total: int = 16 * 1024 * 1024 * 1024
    """Sum of declared member sizes of the data archive."""
    max_path: int = 4096
    max_header: int = 64 * 1024
    """One GNU long name or link target: it is read whole into memory."""
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


class _Capped(io.RawIOBase):
    """The decompressed bytes of one tar stream, refused past a byte cap or a deadline.

    Skipping a member's data means decompressing it, so a member declaring 16 GiB of
    zeros (16 MiB compressed) costs that much work: the cap and the deadline bound
    what one package can make the analyzer (and aegisd) read.
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
        # Straight into the caller's buffer: no chunk the size of the buffer per read.
        view = memoryview(buf)[: min(len(buf), self._left + 1)]
        got: int = self._inner.readinto(view)  # type: ignore[attr-defined]
        if got > self._left:
            raise DebFormatError(f"{self._label}: decompresses past its size limit")
        self._left -= got
        return got


ZSTD_MAX_WINDOW = 1 << 27
"""The largest zstd window a frame may ask for (128 MiB, libzstd's and dpkg's default
limit): the window is allocated up front, so a hostile frame must not choose it."""
XZ_MEMLIMIT = 1 << 27
"""Memory an xz stream may need to decode (128 MiB; ``xz -9`` needs 65 MiB): its
dictionary, up to 4 GiB, is the attacker's choice and is filled as output flows."""


class _Xz(io.RawIOBase):
    """Concatenated xz streams, as ``xz`` writes them, decoded under :data:`XZ_MEMLIMIT`.

    :class:`lzma.LZMAFile` takes no memory limit (and ignores garbage after a stream),
    hence this small loop over :class:`lzma.LZMADecompressor`.
    """

    def __init__(self, inner: IO[bytes]) -> None:
        self._inner = inner
        self._dec = self._decoder()
        self._pending = b""
        """Input read but not yet given to the decompressor."""

    @staticmethod
    def _decoder() -> lzma.LZMADecompressor:
        return lzma.LZMADecompressor(lzma.FORMAT_XZ, memlimit=XZ_MEMLIMIT)

    def readable(self) -> bool:
        return True

    def readinto(self, buf: memoryview) -> int:  # type: ignore[override]
        while True:
            if self._dec.eof:
                # Another stream may follow; NUL bytes between streams are padding.
                data = (self._dec.unused_data + self._pending).lstrip(b"\0")
                while not data:
                    more = self._inner.read(1 << 16)
                    if not more:
                        return 0
                    data = more.lstrip(b"\0")
                self._dec = self._decoder()
                self._pending = data
            if self._dec.needs_input and not self._pending:
                self._pending = self._inner.read(1 << 16)
                if not self._pending:
                    raise EOFError("xz stream ends before its end marker")
            out = self._dec.decompress(self._pending, max_length=len(buf))
            self._pending = b""
            if out:
                buf[: len(out)] = out
                return len(out)


_GZIP_WBITS = 16 + zlib.MAX_WBITS
"""zlib's gzip framing: header and trailer (CRC-32 and length) checked by zlib itself."""


class _Gz(io.RawIOBase):
    """Concatenated gzip members, read as :class:`gzip.GzipFile` reads them.

    As GzipFile: NUL bytes between and after members are padding, anything else must
    start another member, and a stream that ends inside a member is an error. One zlib
    decompressor per member instead of GzipFile's reader in Python: for the small
    packages of a large upgrade, that reader cost more than the inflating. zlib checks
    the header (and its CRC when present), the data's CRC-32 and length.
    """

    def __init__(self, inner: IO[bytes]) -> None:
        self._inner = inner
        self._dec = zlib.decompressobj(_GZIP_WBITS)
        self._pending = b""
        """Input read but not yet given to the decompressor."""

    def readable(self) -> bool:
        return True

    def readinto(self, buf: memoryview) -> int:  # type: ignore[override]
        if not len(buf):
            return 0  # zlib reads max_length 0 as "no limit"
        while True:
            if self._dec.eof:
                # Everything after the member is in unused_data; the unconsumed tail can
                # still hold a stale copy of it (a read that ended on the member's end).
                data = self._dec.unused_data.lstrip(b"\0")
                while not data:
                    more = self._inner.read(1 << 16)
                    if not more:
                        return 0
                    data = more.lstrip(b"\0")
                self._dec = zlib.decompressobj(_GZIP_WBITS)
                self._pending = data
            if not self._pending:
                self._pending = self._inner.read(1 << 16)
                if not self._pending:
                    raise EOFError("gzip stream ends before its end marker")
            out = self._dec.decompress(self._pending, len(buf))
            self._pending = self._dec.unconsumed_tail
            if out:
                buf[: len(out)] = out
                return len(out)


def _decompressed(ext: str, window: IO[bytes]) -> IO[bytes] | None:
    """The decompressed view of ``window`` (ours, so the cap sees its bytes), or None."""
    if ext == "gz":
        return cast("IO[bytes]", _Gz(window))
    if ext == "xz":
        return cast("IO[bytes]", _Xz(window))
    if ext == "bz2":
        return cast("IO[bytes]", bz2.BZ2File(window))
    if ext == "zst":
        # zstd as Ubuntu and third-party repositories build it (dpkg-deb -Zzstd); frames
        # are read across, as libzstd streams them for dpkg.
        zstd = zstandard.ZstdDecompressor(max_window_size=ZSTD_MAX_WINDOW)
        return cast("IO[bytes]", zstd.stream_reader(window, read_across_frames=True))
    if ext == "tar":
        return window
    return None


def tar_stream(fh: IO[bytes], entry: ArEntry, cap: int, limits: DebLimits) -> TarReader:
    """Open ``entry`` (``*.tar``, ``.gz``, ``.xz``, ``.bz2``, ``.zst``) as a tar reader.

    Decompression is lazy: the decompressors' failures on hostile bytes surface while
    the caller iterates, which turns any of them into a :class:`DebFormatError`.
    """
    window = io.BufferedReader(_Window(fh, entry.offset, entry.size), 1 << 16)
    ext = entry.name.rsplit(".", 1)[-1]
    raw = _decompressed(ext, window)
    if raw is None:
        raise DebFormatError(f"{entry.name}: unsupported compression {ext!r}")
    deadline = time.monotonic() + limits.max_seconds
    capped = io.BufferedReader(_Capped(raw, cap, deadline, entry.name), SKIP_READ)
    return TarReader(capped, max_header=limits.max_header, label=entry.name)
