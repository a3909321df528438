"""Hostile archives against the .deb reader: bounded memory and time, refused, never trusted.

aegisd re-derives every plan with this reader, so an archive that makes it allocate
gigabytes or decompress for minutes is an attack on the root daemon too. Each test
builds the attack byte by byte (dpkg-deb would not write it) and checks the reader
refuses it quickly, with a small peak of memory, as a ``content.malformed`` finding.
The link and name tricks at the end are member rules (``content.symlink-path``,
``content.hardlink-outside``, ``content.bad-name``).
"""

from __future__ import annotations

import io
import lzma
import os
import resource
import subprocess
import tarfile
import time
import zlib
from collections.abc import Iterable
from pathlib import Path

import pytest

from aegis.analyze.evidence.contents import inspect_deb
from aegis.analyze.evidence.debfile import DebFormatError, DebLimits, read_deb_stream
from aegis.text import inert

from .conftest import Entry, _ar, _tar, build_deb_bytes

MIB = 1 << 20
_CONTROL = b"Package: bomb\nVersion: 1.0\nArchitecture: all\nDescription: d\n"


def _header(name: str, kind: bytes, size: int) -> bytes:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.size = size
    # tobuf() would write a GNU long-name header for us; build the raw header instead.
    return info._create_header(info.get_info(), tarfile.GNU_FORMAT, "utf-8", "strict")  # type: ignore[attr-defined]


def _compress(parts: Iterable[bytes | int], comp: str) -> bytes:
    """Compress ``parts``; an int is that many MiB of zeros (never held in memory)."""
    c = zlib.compressobj(1, zlib.DEFLATED, 31) if comp == "gz" else lzma.LZMACompressor()
    out = bytearray()
    zeros = bytes(MIB)
    for part in parts:
        for chunk in [zeros] * part if isinstance(part, int) else [part]:
            out += c.compress(chunk)
    return bytes(out + c.flush())


def _control_tar() -> bytes:
    info = tarfile.TarInfo("./control")
    info.size = len(_CONTROL)
    return _tar([(info, _CONTROL)], "gz")


def _deb(data_tar: bytes, comp: str = "gz", control_tar: bytes | None = None) -> bytes:
    return _ar(
        [
            ("debian-binary", b"2.0\n"),
            ("control.tar.gz", control_tar or _control_tar()),
            (f"data.tar.{comp}", data_tar),
        ]
    )


def _peak_rss_mib() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024


def _refused(deb: bytes, match: str, limits: DebLimits | None = None) -> float:
    before = _peak_rss_mib()
    started = time.monotonic()
    with pytest.raises(DebFormatError, match=match):
        read_deb_stream(io.BytesIO(deb), **({"limits": limits} if limits else {}))
    assert _peak_rss_mib() - before < 64  # nothing near the header's size was allocated
    return time.monotonic() - started


@pytest.mark.parametrize("kind", [tarfile.GNUTYPE_LONGNAME, tarfile.XHDTYPE, tarfile.XGLTYPE])
def test_a_huge_long_name_or_pax_header_is_refused_before_it_is_read(kind: bytes) -> None:
    # 128 MiB of header from ~0.5 MiB of gzip: tarfile would read it whole into memory.
    deb = _deb(_compress([_header("././@LongLink", kind, 128 * MIB), 128, bytes(1024)], "gz"))
    assert len(deb) < MIB
    assert _refused(deb, "tar header of 134217728 bytes") < 2


def test_a_gnu_sparse_member_is_refused() -> None:
    deb = _deb(_compress([_header("./sparse", tarfile.GNUTYPE_SPARSE, 0), bytes(1024)], "gz"))
    _refused(deb, "GNU sparse")


def test_a_pax_sparse_map_with_a_huge_count_is_refused() -> None:
    # GNU.sparse 1.0: tarfile loops reading "number\n" lines for an attacker's count.
    pax = tarfile.TarInfo("./sparse")
    pax.size = 1
    pax.pax_headers = {
        "GNU.sparse.major": "1",
        "GNU.sparse.minor": "0",
        "GNU.sparse.name": "sparse",
        "GNU.sparse.realsize": "1",
    }
    header = pax.tobuf(format=tarfile.PAX_FORMAT)
    body = b"999999999999\n" + b"0\n" * (4 * MIB)
    deb = _deb(_compress([header, body, bytes(1024)], "gz"))
    assert _refused(deb, "pax sparse") < 2


@pytest.mark.parametrize("comp", ["gz", "xz"])
def test_header_bytes_count_against_the_stream_cap(comp: str) -> None:
    # Members of size 0 each carrying a 60 KiB pax header: nothing is declared, yet
    # tarfile reads every header. The stream cap (declared + per-entry overhead)
    # stops it.
    parts: list[bytes | int] = []
    for i in range(200):
        info = tarfile.TarInfo(f"./f{i}")
        info.pax_headers = {"comment": "x" * 60_000}
        parts.append(info.tobuf(format=tarfile.PAX_FORMAT))
    parts.append(bytes(1024))
    limits = DebLimits(max_data_total=MIB, max_members=1000)
    _refused(_deb(_compress(parts, comp), comp), "past its size limit", limits)


def test_an_unknown_control_member_type_cannot_make_the_reader_skip_gigabytes() -> None:
    # tarfile skips an unknown member type's data like a file's; the control
    # archive's size checks only looked at regular files.
    control = _compress(
        [
            _header("./control", tarfile.REGTYPE, len(_CONTROL)),
            _CONTROL + bytes(512 - len(_CONTROL)),
            _header("./x", b"Z", 64 * MIB),
            64,
            bytes(1024),
        ],
        "gz",
    )
    deb = _deb(_compress([bytes(1024)], "gz"), control_tar=control)
    assert _refused(deb, "control.tar.gz: decompresses past its size limit") < 2


def test_a_slow_stream_hits_the_time_limit() -> None:
    data = _compress([_header("./a", tarfile.REGTYPE, 32 * MIB), 32, bytes(1024)], "xz")
    with pytest.raises(DebFormatError, match="time limit"):
        read_deb_stream(io.BytesIO(_deb(data, "xz")), limits=DebLimits(max_seconds=0.0))


def test_skipping_a_large_member_is_fast() -> None:
    # tarfile's default 10 KiB skip made 300 MiB of zeros take ~12 s (16 GiB: minutes).
    data = _compress([_header("./big", tarfile.REGTYPE, 256 * MIB), 256, bytes(1024)], "gz")
    started = time.monotonic()
    deb = read_deb_stream(io.BytesIO(_deb(data)))
    assert [m.path for m in deb.members] == ["/big"]
    assert time.monotonic() - started < 5


def test_a_bomb_becomes_a_hostile_malformed_finding(tmp_path: Path) -> None:
    path = tmp_path / "bomb.deb"
    path.write_bytes(
        _deb(_compress([_header("x", tarfile.GNUTYPE_LONGNAME, 64 * MIB), 64, bytes(1024)], "gz"))
    )
    result = inspect_deb(path, "bomb", "1.0", installed_info_dir=None)
    assert [(f.rule, f.severity) for f in result.findings] == [("content.malformed", "hostile")]
    assert "tar header" in result.findings[0].excerpt


# --- link tricks and names dpkg-deb --build cannot produce ------------------------------


def _findings(tmp_path: Path, entries: list[Entry]) -> list[tuple[str, str, str]]:
    path = tmp_path / "links.deb"
    path.write_bytes(build_deb_bytes(package="links", entries=entries))
    result = inspect_deb(path, "links", "1.0", installed_info_dir=None)
    return [(f.rule, f.severity, f.file) for f in result.findings]


def test_a_file_written_through_the_packages_own_symlink_is_judged_where_it_lands(
    tmp_path: Path,
) -> None:
    found = _findings(
        tmp_path,
        [
            Entry("./usr/lib/x", 0o777, tarfile.SYMTYPE, linkname="/etc/sudoers.d"),
            Entry("./usr/lib/x/evil", 0o440, content=b"ALL ALL=(ALL) NOPASSWD: ALL\n"),
            Entry("./usr/lib/r", 0o777, tarfile.SYMTYPE, linkname="../../etc"),
            Entry("./usr/lib/r/cron.d/job", content=b"* * * * * root /tmp/x\n"),
        ],
    )
    assert ("content.symlink-path", "hostile", "/usr/lib/x/evil") in found
    assert ("content.sudoers", "sensitive", "/etc/sudoers.d/evil") in found
    assert ("content.symlink-path", "hostile", "/usr/lib/r/cron.d/job") in found
    assert ("content.cron", "sensitive", "/etc/cron.d/job") in found


def test_a_symlink_loop_is_hostile_not_a_hang(tmp_path: Path) -> None:
    found = _findings(
        tmp_path,
        [
            Entry("./a", 0o777, tarfile.SYMTYPE, linkname="b"),
            Entry("./b", 0o777, tarfile.SYMTYPE, linkname="a"),
            Entry("./a/x"),
        ],
    )
    assert ("content.symlink-path", "hostile", "/a/x") in found


def test_a_hard_link_to_a_file_the_package_does_not_ship_is_hostile(tmp_path: Path) -> None:
    found = _findings(
        tmp_path,
        [
            Entry("./usr/bin/tool", 0o755, content=b"x"),
            Entry("./usr/bin/tool2", 0o755, tarfile.LNKTYPE, linkname="./usr/bin/tool"),
            Entry("./usr/share/shadow", 0o644, tarfile.LNKTYPE, linkname="etc/shadow"),
            Entry("./usr/share/sudo", 0o4755, tarfile.LNKTYPE, linkname="usr/bin/sudo"),
        ],
    )
    outside = [f for f in found if f[0] == "content.hardlink-outside"]
    assert outside == [
        ("content.hardlink-outside", "hostile", "/usr/share/shadow"),
        ("content.hardlink-outside", "hostile", "/usr/share/sudo"),
    ]


@pytest.mark.parametrize("name", ["./usr/share/a\nb", "./usr/share/\x1b[2Jx", "./usr/\x9bx"])
def test_a_member_name_with_a_control_character_is_hostile(tmp_path: Path, name: str) -> None:
    found = _findings(tmp_path, [Entry(name)])
    assert [f[:2] for f in found] == [("content.bad-name", "hostile")]
    shown = inert(found[0][2])
    assert "\x1b" not in shown
    assert "\n" not in shown


def test_real_dpkg_deb_links_raise_none_of_these(tmp_path: Path) -> None:
    # A package built by dpkg-deb from a tree with an in-tree hard link and a
    # directory symlink: nothing of the above fires.
    root = tmp_path / "tree"
    (root / "DEBIAN").mkdir(parents=True)
    (root / "DEBIAN/control").write_bytes(_CONTROL.replace(b"bomb", b"links"))
    (root / "usr/bin").mkdir(parents=True)
    (root / "usr/bin/tool").write_text("x")
    os.link(root / "usr/bin/tool", root / "usr/bin/tool2")
    (root / "usr/lib").mkdir()
    (root / "usr/lib/alias").symlink_to("../bin")
    out = tmp_path / "links.deb"
    subprocess.run(
        ["dpkg-deb", "--root-owner-group", "--build", str(root), str(out)],
        check=True,
        capture_output=True,
    )
    result = inspect_deb(out, "links", "1.0", installed_info_dir=None)
    assert result.findings == ()
