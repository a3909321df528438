"""Reading a .deb as data, never extracting it onto the system.

A .deb is an ``ar`` archive holding ``debian-binary``, ``control.tar.*`` and
``data.tar.*``. :mod:`aegis.ecosystems.apt.evidence.debstream` walks the ar headers and
opens both tar members as bounded *streams* (gzip, xz, bzip2, zstd or uncompressed,
all in-process and decompressed by us so the byte cap sees every byte) read by our own
strict tar reader (:mod:`aegis.ecosystems.apt.evidence.tarread`: only what dpkg installs);
this module reads what they hold. Nothing is
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
wall time of each tar stream, the size of one GNU long-name header; sparse members,
pax headers and every other form dpkg refuses are refused), because aegisd
re-derives plans with this reader; member
paths are normalised to absolute POSIX paths (``./etc/x`` -> ``/etc/x``) and a
path that climbs out of the root (``..``) is kept verbatim in ``Member.raw_path``
so a rule can flag it.

Example:
    >>> deb = read_deb(Path("aegis-setuid_1.0_all.deb"))  # doctest: +SKIP
    >>> [m.path for m in deb.members if m.mode & 0o4000]  # doctest: +SKIP
    ['/usr/bin/aegis-suid']
"""

from __future__ import annotations

import os
import posixpath
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from aegis.ecosystems.apt.evidence.debstream import (
    DEFAULT_LIMITS,
    MAX_CONTROL_ENTRIES,
    DebFormatError,
    DebLimits,
    ar_entries,
    tar_stream,
)
from aegis.ecosystems.apt.evidence.tarread import TarReader
from aegis.errors import AegisError, EnvironmentFailure

__all__ = [
    "DEFAULT_LIMITS",
    "MAINTAINER_SCRIPTS",
    "WATCHED_CONTENT_PREFIXES",
    "DebContents",
    "DebFormatError",
    "DebLimits",
    "Member",
    "parse_control",
    "read_deb",
    "read_deb_stream",
]

MAINTAINER_SCRIPTS = ("preinst", "postinst", "prerm", "postrm", "config", "triggers")
"""Control-archive files that dpkg runs (or, for ``triggers``, interprets)."""

WATCHED_CONTENT_PREFIXES = (
    "/etc/apt/apt.conf.d/",
    "/etc/sudoers",
    "/etc/ld.so.preload",
)
"""Data files whose bytes (capped) are kept for the content rules; all else is metadata."""


@dataclass(frozen=True)
class Member:
    """One entry of the data archive (metadata only)."""

    path: str
    """Normalised absolute path, e.g. ``/etc/apt/apt.conf.d/99x``."""
    mode: int
    """Permission bits including setuid/setgid/sticky (``& 0o7777``)."""
    type: str
    """file, dir, symlink, hardlink, char, block or fifo."""
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


def _norm(name: str) -> str:
    clean = posixpath.normpath("/" + name.lstrip("/"))
    # normpath keeps a leading "//" on POSIX; one slash is the canonical form.
    return "/" + clean.lstrip("/") if clean != "/" else "/"


_KEPT_CONTROL = frozenset(("control", "conffiles", *MAINTAINER_SCRIPTS))
"""Control-archive files whose bytes are read (each at most ``max_control_file``)."""


def _read_control(tar: TarReader, limits: DebLimits) -> tuple[dict[str, bytes], list[str]]:
    files: dict[str, bytes] = {}
    names: list[str] = []
    total = 0
    try:
        for info in tar.members():
            if len(names) > MAX_CONTROL_ENTRIES:
                raise DebFormatError("control archive has too many entries")
            name = _norm(info.name).lstrip("/")
            if not name or info.kind == "dir":
                continue
            names.append(name)
            if info.kind != "file":
                # A symlinked maintainer script points outside the package: refuse it.
                if name in MAINTAINER_SCRIPTS:
                    raise DebFormatError(f"control member {name!r} is not a regular file")
                continue
            total += info.size
            if total > limits.max_control_total:
                raise DebFormatError("control archive exceeds its size limit")
            if name not in _KEPT_CONTROL:
                # md5sums, symbols, shlibs ... are only listed, never held: a large
                # package's md5sums passes 1 MiB (libboost1.74-dev: 1.2 MiB).
                continue
            if info.size > limits.max_control_file:
                raise DebFormatError(
                    f"control member {name!r} is {info.size} bytes "
                    f"(limit {limits.max_control_file})"
                )
            files[name] = tar.read(limits.max_control_file)
    except AegisError:
        raise
    except Exception as e:
        # Hostile bytes reach zlib, lzma, bz2 and libzstd while we iterate; any failure
        # of theirs (EOFError, OSError, zstandard.ZstdError ...) means "corrupt".
        raise DebFormatError(f"control archive is corrupt: {e!r}") from e
    return files, names


def _watched(path: str) -> bool:
    return path.startswith(WATCHED_CONTENT_PREFIXES)


def _read_data(tar: TarReader, limits: DebLimits) -> list[Member]:
    members: list[Member] = []
    declared = 0
    try:
        for info in tar.members():
            if len(members) >= limits.max_members:
                raise DebFormatError(f"data archive has more than {limits.max_members} entries")
            if len(info.name) > limits.max_path or len(info.linkname) > limits.max_path:
                raise DebFormatError("data archive member path is too long")
            declared += info.size
            if declared > limits.max_data_total:
                raise DebFormatError("data archive exceeds its declared-size limit")
            path = _norm(info.name)
            kind = info.kind
            content = None
            if kind == "file" and _watched(path):
                content = tar.read(limits.max_watched_file)
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
    except Exception as e:  # see _read_control: any decoder failure means corrupt
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
    """
    fh.seek(0, os.SEEK_END)
    total = fh.tell()
    entries = ar_entries(fh, total)
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
    control_cap = limits.stream_cap(limits.max_control_total, MAX_CONTROL_ENTRIES + 1)
    files, control_names = _read_control(tar_stream(fh, control_entry, control_cap, limits), limits)
    if "control" not in files:
        raise DebFormatError("control archive has no control file")
    data_cap = limits.stream_cap(limits.max_data_total, limits.max_members)
    members = _read_data(tar_stream(fh, data_entry, data_cap, limits), limits)
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
