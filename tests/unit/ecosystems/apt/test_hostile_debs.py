"""Hostile archives against the .deb reader: bounded memory and time, refused, never trusted.

aegisd re-derives every plan with this reader, so an archive that makes it allocate
gigabytes or decompress for minutes is an attack on the root daemon too. Each test
builds the attack byte by byte (``tarbytes``: no tarfile internals, so the tests mean
the same on every Python build) or with real GNU tar, and checks the reader refuses it
quickly, with a small peak of memory, as a ``content.malformed`` finding. The reader
accepts only what dpkg's own extractor installs; forms where tarfile and dpkg disagree
are refused. The link and name tricks at the end are member rules
(``content.symlink-path``, ``content.hardlink-outside``, ``content.bad-name``).
"""

from __future__ import annotations

import io
import lzma
import os
import re
import resource
import subprocess
import tarfile
import time
import zlib
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aegis.ecosystems.apt.evidence.contents import inspect_deb
from aegis.ecosystems.apt.evidence.debfile import DebFormatError, DebLimits, read_deb_stream
from aegis.ecosystems.apt.evidence.tarread import _octal
from aegis.text import inert
from tests.unit.evidence.conftest import Entry, _ar, build_deb_bytes

from .tarbytes import (
    END,
    MIB,
    USTAR_MAGIC,
    base256,
    compress,
    header,
    long_header,
    member,
    pax_header,
)

_CONTROL = b"Package: bomb\nVersion: 1.0\nArchitecture: all\nDescription: d\n"


def _control_tar() -> bytes:
    return compress([member(b"./control", _CONTROL), END], "gz")


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


def _paths(data: list[bytes], end: bytes = END) -> list[str]:
    deb = read_deb_stream(io.BytesIO(_deb(compress([*data, end], "gz"))))
    return [m.path for m in deb.members]


@pytest.mark.parametrize("kind", [b"L", b"K", b"x", b"g", b"X"], ids=lambda k: k.decode())
@pytest.mark.parametrize("comp", ["gz", "zst"])
def test_a_huge_long_name_or_pax_header_is_refused_before_it_is_read(
    kind: bytes, comp: str
) -> None:
    # 128 MiB of header from ~0.5 MiB of gzip: read whole, it would be 128 MiB of memory.
    data = compress([header(b"././@LongLink", kind, 128 * MIB), 128, END], comp)
    deb = _deb(data, comp)
    assert len(deb) < MIB
    assert _refused(deb, "tar header of 134217728 bytes") < 2


def test_a_gnu_sparse_member_is_refused() -> None:
    deb = _deb(compress([header(b"./sparse", b"S", 0), END], "gz"))
    _refused(deb, "GNU sparse")


_PAX_SPARSE = {
    "0.0": {
        "GNU.sparse.size": "1",
        "GNU.sparse.numblocks": "999999999999",
        "GNU.sparse.offset": "0",
        "GNU.sparse.numbytes": "1",
    },
    "0.1": {"GNU.sparse.size": "1", "GNU.sparse.numblocks": "1", "GNU.sparse.map": "0,1"},
    "1.0": {
        "GNU.sparse.major": "1",
        "GNU.sparse.minor": "0",
        "GNU.sparse.name": "sparse",
        "GNU.sparse.realsize": "1",
    },
}


@pytest.mark.parametrize("version", sorted(_PAX_SPARSE))
def test_a_pax_sparse_member_is_refused(version: str) -> None:
    # GNU.sparse 1.0 keeps its map in the data ("count\n" then numbers): tarfile
    # looped reading lines for an attacker's count. Every version is refused at its header.
    body = b"999999999999\n" + b"0\n" * (4 * MIB)
    parts = [pax_header(_PAX_SPARSE[version]), header(b"./sparse", b"0", len(body)), body, END]
    assert _refused(_deb(compress(parts, "gz")), "pax sparse") < 2


@pytest.mark.parametrize(
    ("options", "match"),
    [
        (["--format=gnu"], "GNU sparse"),
        (["--format=posix", "--sparse-version=0.0"], "pax sparse"),
        (["--format=posix", "--sparse-version=0.1"], "pax sparse"),
        (["--format=posix", "--sparse-version=1.0"], "pax sparse"),
    ],
    ids=["gnu", "pax-0.0", "pax-0.1", "pax-1.0"],
)
def test_sparse_archives_written_by_gnu_tar_are_refused(
    tmp_path: Path, options: list[str], match: str
) -> None:
    tree = tmp_path / "tree"
    tree.mkdir()
    with (tree / "holes").open("wb") as fh:
        fh.write(b"x")
        fh.seek(8 * MIB)
        fh.write(b"y")
    out = subprocess.run(
        ["tar", "--sparse", *options, "-C", str(tree), "-cf", "-", "holes"],
        check=True,
        capture_output=True,
    ).stdout
    _refused(_deb(compress([out], "gz")), match)


def test_a_pax_header_is_refused_as_dpkg_refuses_it(tmp_path: Path) -> None:
    # dpkg: "unsupported PAX tar header type 'x'"; tarfile would take the pax path
    # over the header's name, so the name judged would not be the name installed.
    fields = {"path": "usr/share/doc/harmless"}
    _refused(_deb(compress([pax_header(fields), member(b"./etc/x"), END], "gz")), "pax header")
    _refused(_deb(compress([pax_header(fields, b"g"), END], "gz")), "pax header")
    (tmp_path / "f").write_text("x")
    out = subprocess.run(
        ["tar", "--format=posix", "-C", str(tmp_path), "-cf", "-", "f"],
        check=True,
        capture_output=True,
    ).stdout
    _refused(_deb(compress([out], "gz")), "pax header")


@pytest.mark.parametrize("comp", ["gz", "xz", "zst"])
def test_header_bytes_count_against_the_stream_cap(comp: str) -> None:
    # Members of size 0 each carrying a 60 KiB GNU long name: nothing is declared,
    # yet every header is read. The stream cap (declared + per-entry overhead) stops it.
    parts: list[bytes | int] = []
    for i in range(200):
        parts += [long_header(b"./" + b"n" * 60_000 + b"%d" % i), header(b"x", b"5")]
    parts.append(END)
    limits = DebLimits(max_data_total=MIB, max_members=1000, max_path=64 * 1024)
    _refused(_deb(compress(parts, comp), comp), "past its size limit", limits)


@pytest.mark.parametrize("kind", [b"Z", b"7", b"V", b"M", b"D", b"A"], ids=lambda k: k.decode())
def test_an_unknown_control_member_type_cannot_make_the_reader_skip_gigabytes(
    kind: bytes,
) -> None:
    # tarfile skipped an unknown type's data like a file's (and read a contiguous file
    # '7' as one); dpkg refuses them all, so the reader refuses the header itself.
    control = compress(
        [member(b"./control", _CONTROL), header(b"./x", kind, 64 * MIB), 64, END], "gz"
    )
    deb = _deb(compress([END], "gz"), control_tar=control)
    assert _refused(deb, "control.tar.gz: (unknown tar member type|tar member is)") < 2


def test_a_slow_stream_hits_the_time_limit() -> None:
    data = compress([header(b"./a", b"0", 32 * MIB), 32, END], "xz")
    with pytest.raises(DebFormatError, match="time limit"):
        read_deb_stream(io.BytesIO(_deb(data, "xz")), limits=DebLimits(max_seconds=0.0))


@pytest.mark.parametrize("comp", ["gz", "zst"])
def test_skipping_a_large_member_is_fast(comp: str) -> None:
    # tarfile's default 10 KiB skip made 300 MiB of zeros take ~12 s (16 GiB: minutes).
    data = compress([header(b"./big", b"0", 256 * MIB), 256, END], comp)
    started = time.monotonic()
    deb = read_deb_stream(io.BytesIO(_deb(data, comp)))
    assert [m.path for m in deb.members] == ["/big"]
    assert time.monotonic() - started < 5


@pytest.mark.parametrize("comp", ["gz", "xz", "zst"])
def test_a_bomb_is_capped_in_every_compression(comp: str) -> None:
    data = compress([header(b"./big", b"0", 128 * MIB), 128, END], comp)
    assert len(data) < MIB
    limits = DebLimits(max_data_total=32 * MIB)
    assert _refused(_deb(data, comp), "declared-size limit|past its size limit", limits) < 2


def _xz(data: bytes, dict_prop: int | None = None) -> bytes:
    """An xz stream of ``data``; ``dict_prop`` rewrites the LZMA2 dictionary size it declares."""
    xz = lzma.compress(
        data, format=lzma.FORMAT_XZ, filters=[{"id": lzma.FILTER_LZMA2, "preset": 0}]
    )
    if dict_prop is None:
        return xz
    size = (xz[12] + 1) * 4  # the block header follows the 12-byte stream header
    block = bytearray(xz[12 : 12 + size])
    block[block.index(b"\x21\x01") + 2] = dict_prop  # LZMA2 filter id, 1 property byte
    block[-4:] = zlib.crc32(block[:-4]).to_bytes(4, "little")
    return xz[:12] + bytes(block) + xz[12 + size :]


def test_an_xz_stream_declaring_a_4_gib_dictionary_is_refused() -> None:
    # The decoder allocates the declared dictionary and fills it as output flows:
    # 16 GiB of zeros would grow the reader (aegisd) to 4 GiB. Past 128 MiB, refused.
    tar = member(b"./usr/a", b"x") + END
    assert lzma.decompress(_xz(tar, dict_prop=40)) == tar  # valid xz, just greedy
    with pytest.raises(DebFormatError, match="Memory usage limit"):
        read_deb_stream(io.BytesIO(_deb(_xz(tar, dict_prop=40), "xz")))


def test_concatenated_xz_streams_with_padding_are_read_across() -> None:
    tar = member(b"./usr/a", b"one") + member(b"./usr/b", b"two") + END
    data = _xz(tar[:1024]) + bytes(8) + _xz(tar[1024:])
    deb = read_deb_stream(io.BytesIO(_deb(data, "xz")))
    assert [m.path for m in deb.members] == ["/usr/a", "/usr/b"]
    with pytest.raises(DebFormatError, match="corrupt"):
        read_deb_stream(io.BytesIO(_deb(_xz(tar[:1024]) + b"garbage" + _xz(tar[1024:]), "xz")))
    with pytest.raises(DebFormatError, match="corrupt"):
        read_deb_stream(io.BytesIO(_deb(_xz(tar)[:40], "xz")))


def test_a_bomb_becomes_a_hostile_malformed_finding(tmp_path: Path) -> None:
    path = tmp_path / "bomb.deb"
    path.write_bytes(_deb(compress([header(b"x", b"L", 64 * MIB), 64, END], "gz")))
    result = inspect_deb(path, "bomb", "1.0", installed_info_dir=None)
    assert [(f.rule, f.severity) for f in result.findings] == [("content.malformed", "hostile")]
    assert "tar header" in result.findings[0].excerpt


# --- where tarfile and dpkg read the same bytes differently -----------------------------


def test_a_header_tarfile_cannot_parse_does_not_hide_what_follows() -> None:
    # tarfile ended the archive quietly at a header with a bad mode field; dpkg reads
    # on and installs the rest. Refused, so nothing after it goes unjudged.
    first = member(b"./usr/share/doc")
    bad = header(b"./usr/share/a", fields={"mode": b"12 34\0\0\0"})
    hidden = member(b"./etc/sudoers.d/evil", b"ALL ALL=(ALL) NOPASSWD: ALL\n")
    with pytest.raises(DebFormatError, match="invalid tar header mode"):
        _paths([first, bad, hidden])
    with tarfile.open(fileobj=io.BytesIO(first + bad + hidden + END)) as tar:
        assert tar.getnames() == ["./usr/share/doc"]


def test_two_long_names_for_one_member_are_refused() -> None:
    # dpkg installs under the last long name, tarfile reported the first.
    parts = [long_header(b"./usr/share/doc/x"), long_header(b"./etc/cron.d/x"), member(b"./a")]
    with pytest.raises(DebFormatError, match="malformed GNU long name"):
        _paths(parts)


@pytest.mark.parametrize(
    ("parts", "match"),
    [
        ([header(b"./a", checksum_delta=1)], "checksum"),
        ([long_header(b"./a")], "long-name header without a member"),
        ([header(b"./dir/", b"0")], "name ends in '/'"),
        ([header(b"./l", b"2", 512, linkname=b"x"), bytes(512)], "symlink member carries"),
        ([header(b"./a", b"0", 1024), bytes(512)], "truncated"),
        ([header(b"./a")[:300]], "truncated"),
        ([header(b"./a", fields={"size": b"\xff" * 12})], "size field"),
        ([header(b"./a", fields={"size": b"1x" + bytes(10)})], "size field"),
        ([header(b"", b"0")], "empty name"),
        ([header(b"x", b"L", 0)], "malformed GNU long name"),
        ([header(b"x", b"L", 3), b"abc" + bytes(509), member(b"./a")], "malformed GNU long"),
        ([header(b"x", b"L", 4, fields={"uid": b"z" * 8}), b"./a\0" + bytes(508)], "uid"),
        ([header(b"", b"L", 4), b"./a\0" + bytes(508), member(b"./b")], "empty name"),
    ],
    ids=[
        "checksum",
        "dangling-long-name",
        "file-with-slash",
        "data-on-symlink",
        "short-data",
        "short-header",
        "negative-size",
        "bad-size",
        "empty-name",
        "empty-long-name",
        "long-name-without-nul",
        "bad-uid-on-long-name",
        "long-name-header-without-name",
    ],
)
def test_malformed_headers_are_refused(parts: list[bytes], match: str) -> None:
    with pytest.raises(DebFormatError, match=match):
        _paths(parts, end=b"" if match == "truncated" else END)


def test_forms_dpkg_reads_are_read_as_dpkg_reads_them() -> None:
    long_target = b"../" * 60 + b"target"
    parts = [
        # ustar joins prefix and name; GNU archives keep other data there (dpkg ignores it).
        header(b"sudoers.d/x", magic=USTAR_MAGIC, prefix=b"./etc"),
        header(b"./usr/a", prefix=b"./etc"),
        header(b"./usr/old", magic=bytes(8)),
        header(b"./usr/big", fields={"size": base256(5, 12)}) + b"hello" + bytes(507),
        long_header(b"./usr/share/" + b"d" * 200),
        long_header(long_target, b"K"),
        header(b"ignored", b"2", linkname=b"ignored-too"),
        header(b"./usr/dir/", b"5"),
    ]
    deb = read_deb_stream(io.BytesIO(_deb(compress([*parts, END, member(b"./after")], "gz"))))
    got = [(m.path, m.type, m.size, m.linkname) for m in deb.members]
    assert got == [
        ("/etc/sudoers.d/x", "file", 0, ""),
        ("/usr/a", "file", 0, ""),
        ("/usr/old", "file", 0, ""),
        ("/usr/big", "file", 5, ""),
        ("/usr/share/" + "d" * 200, "symlink", 0, long_target.decode()),
        ("/usr/dir", "dir", 0, ""),
    ]  # and nothing after the end-of-archive block: dpkg stops there too


def test_hand_built_headers_are_what_gnu_tar_reads(tmp_path: Path) -> None:
    # The builder above is real tar: GNU tar lists what the reader lists.
    parts = [member(b"./usr/a", b"hi", mode=0o4755), long_header(b"./" + b"x" * 150), member(b"y")]
    archive = tmp_path / "a.tar"
    archive.write_bytes(b"".join([*parts, END]))
    listed = subprocess.run(
        ["tar", "-tf", str(archive)], check=True, capture_output=True, text=True
    ).stdout.split()
    assert listed == ["./usr/a", "./" + "x" * 150]
    assert _paths(parts) == ["/usr/a", "/" + "x" * 150]
    assert os.path.getsize(archive) % 512 == 0


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


_TAR_ATOL8 = re.compile(rb" *([0-7]*)[ \0]*")
"""dpkg's tar_atol8 form: leading spaces, octal digits, then only NULs and spaces."""


@settings(max_examples=500, deadline=None)
@given(
    st.binary(max_size=12) | st.lists(st.sampled_from(b" \x000178 9a+-_"), max_size=12).map(bytes)
)
def test_numeric_fields_read_as_dpkg_reads_them(field: bytes) -> None:
    match = _TAR_ATOL8.fullmatch(field)
    expected = int(match.group(1) or b"0", 8) if match and field.strip(b" ") else None
    assert _octal(field) == expected
