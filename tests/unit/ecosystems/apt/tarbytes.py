"""Raw tar bytes for the .deb reader's tests, built by hand (no tarfile internals).

The hostile-archive tests must mean the same on every Python build, so they write
every 512-byte header themselves: GNU, ustar and v7 magic, octal or base-256 numbers,
GNU long names, pax records, sparse types, wrong checksums. ``compress`` makes small
inputs of huge outputs (an int part is that many MiB of zeros, never held in memory).
"""

from __future__ import annotations

import lzma
import zlib
from collections.abc import Iterable, Mapping

import zstandard

MIB = 1 << 20
BLOCK = 512
GNU_MAGIC = b"ustar  \0"
USTAR_MAGIC = b"ustar\x0000"
V7_MAGIC = bytes(8)
END = bytes(2 * BLOCK)
"""The end-of-archive marker: two zero blocks."""


def octal(value: int, width: int) -> bytes:
    """A NUL-terminated octal field of ``width`` bytes."""
    return b"%0*o\0" % (width - 1, value)


def base256(value: int, width: int) -> bytes:
    """A GNU base-256 field (first byte 0x80 for a positive number)."""
    return b"\x80" + value.to_bytes(width - 1, "big")


def header(
    name: bytes,
    kind: bytes = b"0",
    size: int = 0,
    *,
    linkname: bytes = b"",
    mode: int = 0o644,
    magic: bytes = GNU_MAGIC,
    prefix: bytes = b"",
    fields: Mapping[str, bytes] | None = None,
    checksum_delta: int = 0,
) -> bytes:
    """One header block; ``fields`` overrides raw fields (``mode``, ``size``, ``mtime`` ...)."""
    raw = {
        "mode": octal(mode, 8),
        "uid": octal(0, 8),
        "gid": octal(0, 8),
        "size": octal(size, 12),
        "mtime": octal(1_700_000_000, 12),
    } | dict(fields or {})
    block = bytearray(BLOCK)
    block[0:100] = name.ljust(100, b"\0")
    for key, (start, width) in {
        "mode": (100, 8),
        "uid": (108, 8),
        "gid": (116, 8),
        "size": (124, 12),
        "mtime": (136, 12),
    }.items():
        assert len(raw[key]) == width, key
        block[start : start + width] = raw[key]
    block[148:156] = b" " * 8
    block[156:157] = kind
    block[157:257] = linkname.ljust(100, b"\0")
    block[257:265] = magic
    block[265:297] = b"root".ljust(32, b"\0")
    block[297:329] = b"root".ljust(32, b"\0")
    block[345:500] = prefix.ljust(155, b"\0")
    block[148:156] = b"%06o\0 " % (sum(block) + checksum_delta)
    assert len(block) == BLOCK
    return bytes(block)


def padded(data: bytes) -> bytes:
    """``data`` padded with NULs to whole blocks."""
    return data + bytes(-len(data) % BLOCK)


def member(name: bytes, data: bytes = b"", *, mode: int = 0o644) -> bytes:
    """A regular file's header and its padded data."""
    return header(name, b"0", len(data), mode=mode) + padded(data)


def long_header(value: bytes, kind: bytes = b"L") -> bytes:
    """A GNU long name (``L``) or link target (``K``) as GNU tar writes it."""
    data = value + b"\0"
    return header(b"././@LongLink", kind, len(data)) + padded(data)


def pax_records(fields: Mapping[str, str]) -> bytes:
    """pax extended-header records: ``"<length> <key>=<value>\\n"``."""
    out = b""
    for key, value in fields.items():
        body = f" {key}={value}\n".encode()
        length = len(body) + 1
        while len(str(length)) + len(body) != length:
            length += 1
        out += str(length).encode() + body
    return out


def pax_header(fields: Mapping[str, str], kind: bytes = b"x") -> bytes:
    """A pax header block and its records."""
    records = pax_records(fields)
    return header(b"./PaxHeaders/x", kind, len(records), magic=USTAR_MAGIC) + padded(records)


def compress(parts: Iterable[bytes | int], comp: str) -> bytes:
    """Compress ``parts`` with ``comp`` (gz, xz, zst, tar); an int is that many MiB of zeros."""
    if comp == "tar":
        return b"".join(bytes(p * MIB) if isinstance(p, int) else p for p in parts)
    out = bytearray()
    zeros = bytes(MIB)
    if comp == "zst":
        zc = zstandard.ZstdCompressor(level=3).compressobj()
        for part in parts:
            for chunk in [zeros] * part if isinstance(part, int) else [part]:
                out += zc.compress(chunk)
        return bytes(out + zc.flush())
    c = zlib.compressobj(1, zlib.DEFLATED, 31) if comp == "gz" else lzma.LZMACompressor(preset=0)
    for part in parts:
        for chunk in [zeros] * part if isinstance(part, int) else [part]:
            out += c.compress(chunk)
    return bytes(out + c.flush())
