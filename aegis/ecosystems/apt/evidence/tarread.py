"""A strict streaming reader of the tar archives inside a .deb (our own code: a security bound).

Why not :mod:`tarfile`: aegisd re-derives every plan with this reader, so a hostile
package must cost bounded memory and time, and what Aegis judges must be what dpkg
installs. tarfile's bounds could only be kept by overriding its private internals,
which python3.11 3.11.2-6+deb12u9 and Python 3.13 changed (the long-name, pax and
sparse refusals were silently lost). tarfile also differs from dpkg: it accepts pax
headers and contiguous files, which dpkg refuses; when two GNU long names precede one
member it keeps the first, dpkg the last; and a header it cannot parse (a bad mode
field) quietly ends its archive, while dpkg goes on installing what follows. So this
module reads exactly the forms dpkg's own extractor (``lib/dpkg/tarfn.c``) installs and
refuses the rest, which dpkg-deb never writes:

- 512-byte headers of old (v7), ustar and GNU archives; the checksum as dpkg computes
  it (unsigned byte sum, octal field); numeric fields in octal or positive base-256;
  ustar's ``prefix`` joined to the name only in ustar archives (as dpkg does);
- member types regular (``0``, NUL), hard link, symlink, character and block device,
  directory and fifo; only a regular file carries data;
- GNU long names and link targets (``L``, ``K``) of at most ``max_header`` bytes,
  refused before they are read, at most one of each per member;
- refused: GNU sparse (``S``) and the other GNU types, pax headers (``x``, ``g``; a
  sparse map ``GNU.sparse.*`` is named as such), Solaris headers, contiguous files
  (``7``), unknown types, a regular file whose name ends in ``/``, data on a member
  that cannot have any, a partial header or member;
- the archive ends at a zero block, or at the end of the stream on a header boundary.

Skipping member data reads the stream in :data:`SKIP_READ` chunks; the byte cap and
the wall-time limit sit beneath in :mod:`aegis.ecosystems.apt.evidence.debstream`.

Example:
    >>> reader = TarReader(io.BytesIO(tar_bytes), max_header=65536, label="data.tar")
    >>> [m.name for m in reader.members()]  # doctest: +SKIP
    ['./', './usr/', './usr/bin/tool']
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import IO

from aegis.errors import InputError

BLOCK = 512
SKIP_READ = 1 << 20
"""Member data is skipped in reads of this size (small reads made 16 GiB take minutes)."""
_ZERO_BLOCK = bytes(BLOCK)
_KINDS = {
    b"0": "file",
    b"\0": "file",
    b"1": "hardlink",
    b"2": "symlink",
    b"3": "char",
    b"4": "block",
    b"5": "dir",
    b"6": "fifo",
}
_LONG = {b"L": "name", b"K": "linkname"}
_PAX = (b"x", b"g", b"X")
_REFUSED = {
    b"S": "a GNU sparse file",
    b"V": "a GNU volume header",
    b"M": "a GNU multi-volume continuation",
    b"D": "a GNU dump directory",
    b"A": "a Solaris ACL",
    b"7": "a contiguous file (dpkg refuses it)",
}
_OCTAL_DIGITS = b"01234567"
_MAX_SIZE = (1 << 63) - 1
"""dpkg reads sizes into off_t."""
_MAX_ID = (1 << 32) - 1
"""dpkg reads uid and gid into uid_t and gid_t."""


class DebFormatError(InputError):
    """The .deb is malformed, uses a form dpkg refuses, or exceeds a bound of its limits."""


@dataclass(frozen=True)
class TarMember:
    """One member as dpkg would install it (GNU long name and link target applied)."""

    name: str
    """As stored, decoded as UTF-8 with surrogate escapes (``./usr/bin/x``)."""
    kind: str
    """file, dir, symlink, hardlink, char, block or fifo."""
    mode: int
    """The header's mode field (permission bits; callers mask with ``0o7777``)."""
    size: int
    """Bytes of data (non-zero only for a regular file)."""
    uid: int
    gid: int
    linkname: str = ""


def _octal(field: bytes) -> int | None:
    # dpkg's tar_atol8: leading spaces, octal digits, then only NULs and spaces, i.e. the
    # regex rb" *([0-7]*)[ \0]*" (string methods instead: six fields in every header).
    digits = field.lstrip(b" ").rstrip(b" \0")
    if not digits:
        return 0 if field.strip(b" ") else None  # all spaces: not a number
    if digits.translate(None, _OCTAL_DIGITS):
        return None  # something other than octal digits between the padding
    return int(digits, 8)


def _number(field: bytes, maximum: int) -> int | None:
    """A numeric header field (octal, or base-256 when its first byte is 0x80), or None."""
    if field[:1] == b"\x80":
        value = int.from_bytes(field[1:], "big")
    elif field[:1] == b"\xff":
        return None  # base-256 negative: no size, id or mode is negative
    else:
        parsed = _octal(field)
        if parsed is None:
            return None
        value = parsed
    return value if value <= maximum else None


def _cstring(raw: bytes) -> bytes:
    return raw.split(b"\0", 1)[0]


def _text(raw: bytes) -> str:
    return raw.decode("utf-8", "surrogateescape")


def _checksum_ok(block: bytes) -> bool:
    field = block[148:156]
    stored = _octal(field)
    # dpkg sums the bytes as unsigned, with the checksum field counted as spaces.
    return stored is not None and stored == sum(block) - sum(field) + 8 * 32


def _pax_is_sparse(records: bytes) -> bool:
    """Whether pax records name GNU sparse keys (0.0, 0.1 and 1.0 all use ``GNU.sparse.``).

    Parsed only to say why the header is refused; any record we cannot parse counts as
    not sparse, since the header is refused either way.
    """
    pos = 0
    while pos < len(records):
        length_text, space, _ = records[pos : pos + 24].partition(b" ")
        if not space or not length_text.isdigit():
            return False
        length = int(length_text)
        record = records[pos : pos + length]
        if length <= len(length_text) or len(record) != length or not record.endswith(b"\n"):
            return False
        key = record[len(length_text) + 1 :].partition(b"=")[0]
        if key.startswith(b"GNU.sparse."):
            return True
        pos += length
    return False


class TarReader:
    """Members of one tar stream, read strictly and once, front to back.

    Args:
        stream: the decompressed tar bytes (a capped, deadline-checked reader).
        max_header: the largest GNU long name or link target accepted, in bytes.
        label: the ar member's name, for messages (``data.tar.xz``).
    """

    def __init__(self, stream: IO[bytes], *, max_header: int, label: str) -> None:
        self._stream = stream
        self._max_header = max_header
        self._label = label
        self._left = 0
        """Unread data bytes of the current member."""
        self._pad = 0
        """Padding after the current member's data, to the next block."""

    def _error(self, message: str) -> DebFormatError:
        return DebFormatError(f"{self._label}: {message}")

    def _read_exact(self, size: int, what: str) -> bytes:
        parts: list[bytes] = []
        want = size
        while want > 0:
            chunk = self._stream.read(min(want, SKIP_READ))
            if not chunk:
                raise self._error(f"truncated tar archive (in {what})")
            parts.append(chunk)
            want -= len(chunk)
        return b"".join(parts)

    def _skip(self, size: int) -> None:
        while size > 0:
            chunk = self._stream.read(min(size, SKIP_READ))
            if not chunk:
                raise self._error("truncated tar archive (in member data)")
            size -= len(chunk)

    def read(self, limit: int) -> bytes:
        """Up to ``limit`` bytes of the current member's data (the rest is skipped later)."""
        take = min(limit, self._left)
        data = self._read_exact(take, "member data")
        self._left -= take
        return data

    def _next_block(self) -> bytes | None:
        """The next header block, or None at the end of the archive."""
        self._skip(self._left + self._pad)
        self._left = self._pad = 0
        block = self._stream.read(BLOCK)
        if not block or block == _ZERO_BLOCK:
            return None  # end of stream on a header boundary, or the end-of-archive block
        if len(block) < BLOCK:
            block += self._read_exact(BLOCK - len(block), "a header")
            if block == _ZERO_BLOCK:
                return None
        if not _checksum_ok(block):
            raise self._error("tar header checksum mismatch")
        return block

    def _header_body(self, typeflag: bytes, size: int) -> bytes:
        # The size is checked before a byte of the body is read: a 4 GiB long name is a
        # few MiB of gzip, and dpkg itself would allocate it whole.
        if size > self._max_header:
            raise self._error(f"tar header of {size} bytes (limit {self._max_header})")
        body = self._read_exact(size, "a long-name or pax header")
        self._skip(-size % BLOCK)
        if typeflag in _PAX:
            if _pax_is_sparse(body):
                raise self._error("tar member is a pax sparse file")
            raise self._error(f"pax header (type {typeflag!r}): dpkg does not install these")
        return body

    def _numbers(self, block: bytes) -> tuple[int, int, int, int]:
        """size, mode, uid and gid of any header; dpkg refuses a malformed one in any header."""
        size = _number(block[124:136], _MAX_SIZE)
        if size is None:
            raise self._error("invalid tar header size field")
        mode = _number(block[100:108], _MAX_ID)
        uid = _number(block[108:116], _MAX_ID)
        gid = _number(block[116:124], _MAX_ID)
        # mtime is not used, but dpkg refuses a malformed one; base-256 may be negative.
        mtime_ok = block[136] in (0x80, 0xFF) or _octal(block[136:148]) is not None
        if mode is None or uid is None or gid is None or not mtime_ok:
            raise self._error("invalid tar header mode, uid, gid or mtime field")
        return size, mode, uid, gid

    def members(self) -> Iterator[TarMember]:
        """Yield each member; reading stops at the end of the archive.

        Raises:
            DebFormatError: a malformed header, a refused form, or a header over a bound.
        """
        pending: dict[str, bytes] = {}
        """GNU long name and link target for the next member."""
        while (block := self._next_block()) is not None:
            typeflag = block[156:157]
            size, mode, uid, gid = self._numbers(block)
            if block[0] == 0:
                raise self._error("tar header with an empty name field")
            if typeflag in _REFUSED:
                raise self._error(f"tar member is {_REFUSED[typeflag]}")
            if typeflag in _LONG or typeflag in _PAX:
                body = self._header_body(typeflag, size)
                key = _LONG[typeflag]
                value = _cstring(body)
                if key in pending or not value or len(value) == len(body):
                    # Two of one kind (dpkg keeps the last, tarfile the first), an
                    # empty one, or one without its NUL: nothing dpkg-deb writes.
                    raise self._error(f"malformed GNU long {key} header")
                pending[key] = value
                continue
            if typeflag not in _KINDS:
                raise self._error(f"unknown tar member type {typeflag!r}")
            kind = _KINDS[typeflag]
            name = pending.get("name") or _header_name(block)
            if kind == "dir":
                name = name.rstrip(b"/") or b"/"
            elif kind == "file" and name.endswith(b"/"):
                # dpkg versions disagree on whether this is a directory; nothing writes it.
                raise self._error("regular tar member whose name ends in '/'")
            if kind != "file" and size:
                raise self._error(f"tar {kind} member carries {size} bytes of data")
            self._left = size
            self._pad = -size % BLOCK
            linkname = pending.get("linkname") or _cstring(block[157:257])
            pending = {}
            yield TarMember(_text(name), kind, mode, size, uid, gid, _text(linkname))
        if pending:
            raise self._error("GNU long-name header without a member")


def _header_name(block: bytes) -> bytes:
    # dpkg joins ustar's prefix only in ustar archives; GNU ones keep other data there.
    name = _cstring(block[0:100])
    if block[257:263] == b"ustar\0" and block[345] != 0:
        return _cstring(block[345:500]) + b"/" + name
    return name
