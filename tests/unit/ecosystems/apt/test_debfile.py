"""Reading .debs without extracting: formats, bounds, refusals."""

from __future__ import annotations

import contextlib
import gzip
import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
import zlib
from collections.abc import Callable
from pathlib import Path

import pytest
import zstandard
from hypothesis import given, settings
from hypothesis import strategies as st

from aegis.ecosystems.apt.evidence.debfile import (
    DebFormatError,
    DebLimits,
    parse_control,
    read_deb,
    read_deb_stream,
)
from aegis.ecosystems.apt.evidence.debstream import _Gz, ar_entries
from aegis.errors import InputError
from tests.unit.evidence.conftest import Entry, _ar, build_deb_bytes

from .tarbytes import END, member


@pytest.mark.parametrize("compression", ["gzip", "xz", "zstd", "none"])
def test_reads_every_dpkg_compression(dpkg_deb: Callable[..., Path], compression: str) -> None:
    deb = dpkg_deb(
        "x",
        "1.0",
        scripts={"postinst": "#!/bin/sh\necho hi\n"},
        files={"/usr/bin/s": ("x", 0o2755)},
        compression=compression,
    )
    contents = read_deb(deb)
    assert contents.control["Package"] == "x"
    assert contents.scripts == {"postinst": b"#!/bin/sh\necho hi\n"}
    modes = {m.path: (m.type, m.mode) for m in contents.members}
    assert modes["/usr/bin/s"] == ("file", 0o2755)
    assert modes["/usr/bin"] == ("dir", 0o755)


def test_nothing_is_extracted(
    tmp_path: Path, make_deb: Callable[..., Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    deb = make_deb(entries=[Entry("./etc/cron.d/x", content=b"x")])
    monkeypatch.chdir(tmp_path)
    before = sorted(p.name for p in tmp_path.iterdir())
    read_deb(deb)
    assert sorted(p.name for p in tmp_path.iterdir()) == before


def test_watched_file_content_is_kept_and_capped() -> None:
    data = build_deb_bytes(
        entries=[
            Entry("./etc/apt/apt.conf.d/99x", content=b"A" * 100),
            Entry("./usr/share/big", content=b"B" * 100),
        ]
    )
    contents = read_deb_stream(io.BytesIO(data), limits=DebLimits(max_watched_file=10))
    by_path = {m.path: m.content for m in contents.members}
    assert by_path == {"/etc/apt/apt.conf.d/99x": b"A" * 10, "/usr/share/big": None}


def test_description_with_continuation() -> None:
    contents = read_deb_stream(
        io.BytesIO(build_deb_bytes(description="short\n long line\n .\n more"))
    )
    assert contents.control["Description"] == "short\nlong line\n.\nmore"


BAD = [
    ("no-magic", b"not an archive"),
    (
        "truncated-member",
        b"!<arch>\ndebian-binary   0           0     0     100644  999       `\n2.0\n",
    ),
    ("bad-header", b"!<arch>\n" + b"x" * 70),
    (
        "wrong-first-member",
        build_deb_bytes()[:8]
        + build_deb_bytes()[8:].replace(b"debian-binary   ", b"other-binary    ", 1),
    ),
    ("no-data", build_deb_bytes().split(b"data.tar.gz")[0]),
    ("corrupt-gzip", build_deb_bytes().replace(b"\x1f\x8b\x08", b"\x1f\x8b\x09", 1)),
]


@pytest.mark.parametrize("data", [b for _, b in BAD], ids=[i for i, _ in BAD])
def test_malformed_packages_are_refused(data: bytes) -> None:
    with pytest.raises(DebFormatError) as exc:
        read_deb_stream(io.BytesIO(data))
    assert isinstance(exc.value, InputError)


def test_oversized_control_script_refused() -> None:
    data = build_deb_bytes(scripts={"postinst": "#" * 2048})
    with pytest.raises(DebFormatError, match="postinst"):
        read_deb_stream(io.BytesIO(data), limits=DebLimits(max_control_file=1024))


def test_a_large_md5sums_is_listed_not_refused() -> None:
    # Real packages ship md5sums and symbols past 1 MiB (libboost1.74-dev, opencv-doc,
    # libflite1); only the files that are read are held to max_control_file.
    data = build_deb_bytes(scripts={"md5sums": b"0" * 2048, "postinst": "#!/bin/sh\n"})
    contents = read_deb_stream(io.BytesIO(data), limits=DebLimits(max_control_file=1024))
    assert "md5sums" in contents.control_files
    assert contents.scripts == {"postinst": b"#!/bin/sh\n"}
    with pytest.raises(DebFormatError, match="control archive exceeds its size limit"):
        read_deb_stream(io.BytesIO(data), limits=DebLimits(max_control_total=1024))


def test_member_count_bound() -> None:
    data = build_deb_bytes(entries=[Entry(f"./f{i}") for i in range(20)])
    with pytest.raises(DebFormatError, match="more than 10"):
        read_deb_stream(io.BytesIO(data), limits=DebLimits(max_members=10))


def test_declared_size_bound() -> None:
    data = build_deb_bytes(entries=[Entry("./f", content=b"x" * 5000)])
    with pytest.raises(DebFormatError, match="declared-size"):
        read_deb_stream(io.BytesIO(data), limits=DebLimits(max_data_total=1000))


def test_symlinked_maintainer_script_refused(tmp_path: Path) -> None:
    from tests.unit.evidence.conftest import _tar

    ctl = []
    control = b"Package: x\nVersion: 1\nArchitecture: all\nDescription: d\n"
    info = tarfile.TarInfo("./control")
    info.size = len(control)
    ctl.append((info, control))
    link = tarfile.TarInfo("./postinst")
    link.type = tarfile.SYMTYPE
    link.linkname = "/etc/shadow"
    ctl.append((link, b""))
    data = _ar(
        [
            ("debian-binary", b"2.0\n"),
            ("control.tar.gz", _tar(ctl, "gz")),
            ("data.tar.gz", _tar([], "gz")),
        ]
    )
    with pytest.raises(DebFormatError, match="not a regular file"):
        read_deb_stream(io.BytesIO(data))


@pytest.mark.parametrize(
    "text",
    [b"\xff\xfe", b" starts with continuation\n", b"No colon here\n"],
    ids=["utf8", "cont", "colon"],
)
def test_parse_control_refuses(text: bytes) -> None:
    with pytest.raises(DebFormatError):
        parse_control(text)


@pytest.mark.parametrize("compression", ["gz", "xz", "zst", ""], ids=["gz", "xz", "zst", "none"])
def test_mutated_packages_fail_only_as_format_errors(compression: str) -> None:
    # Hostile bytes reach our tar reader, zlib, lzma and libzstd (zstandard raises its
    # own ZstdError). Only DebFormatError may escape.
    import random

    base = build_deb_bytes(
        scripts={"postinst": "#!/bin/sh\necho hi\n"},
        entries=[Entry("./etc/apt/apt.conf.d/x", content=b"x" * 300), Entry("./usr/bin/y", 0o4755)],
        compression=compression,
    )
    rng = random.Random(compression)  # noqa: S311 - reproducible mutations
    for _ in range(400):
        data = bytearray(base)
        for _ in range(rng.randint(1, 8)):
            data[rng.randrange(len(data))] = rng.randrange(256)
        if rng.random() < 0.2:
            data = data[: rng.randrange(len(data))]
        with contextlib.suppress(DebFormatError):
            read_deb_stream(io.BytesIO(bytes(data)))


def _read_in_child(deb: Path, path: str) -> list[object]:
    # A child with only ``path`` on PATH: any tool the reader ran would be missing.
    code = (
        "import json, sys; from pathlib import Path\n"
        "from aegis.ecosystems.apt.evidence.debfile import read_deb\n"
        "d = read_deb(Path(sys.argv[1]))\n"
        "print(json.dumps([d.control['Package'], sorted(d.scripts), [m.path for m in d.members]]))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(deb)],
        # The parent's import path (a venv, or PYTHONPATH in a bare root), nothing else.
        env={
            "PATH": path,
            "LC_ALL": "C.UTF-8",
            "PYTHONPATH": os.pathsep.join(filter(None, sys.path)),
        },
        check=True,
        capture_output=True,
        text=True,
    )
    return list(json.loads(out.stdout))


def test_a_zstd_package_built_by_dpkg_deb_is_read_without_a_zstd_tool(
    dpkg_deb: Callable[..., Path], tmp_path: Path
) -> None:
    # Ubuntu and third-party repositories build with dpkg-deb -Zzstd; a fresh Debian
    # machine has no zstd tool. The zstandard library reads the members in-process.
    deb = dpkg_deb(
        "z",
        "1.0",
        scripts={"postinst": "#!/bin/sh\necho hi\n"},
        files={"/usr/bin/s": ("x", 0o755)},
        compression="zstd",
    )
    with deb.open("rb") as fh:
        names = [e.name for e in ar_entries(fh, deb.stat().st_size)]
    assert names == ["debian-binary", "control.tar.zst", "data.tar.zst"]
    empty = tmp_path / "no-tools"
    empty.mkdir()
    assert shutil.which("zstd", path=str(empty)) is None
    package, scripts, paths = _read_in_child(deb, str(empty))
    assert (package, scripts) == ("z", ["postinst"])
    assert "/usr/bin/s" in paths  # type: ignore[operator]


def test_zstd_frames_are_read_across_and_a_huge_window_is_refused() -> None:
    tar = member(b"./usr/a", b"one") + member(b"./usr/b", b"two") + END
    frames = b"".join(
        zstandard.ZstdCompressor().compress(part) for part in (tar[:1024], tar[1024:])
    )
    deb = _ar(
        [("debian-binary", b"2.0\n"), ("control.tar.zst", _ctl_zst()), ("data.tar.zst", frames)]
    )
    assert [m.path for m in read_deb_stream(io.BytesIO(deb)).members] == ["/usr/a", "/usr/b"]
    # A frame may ask for a window of up to 2 GiB, allocated before any output: past
    # 128 MiB (libzstd's default limit, the one dpkg decompresses under) it is refused.
    params = zstandard.ZstdCompressionParameters.from_level(1, window_log=30)
    stream = zstandard.ZstdCompressor(compression_params=params).compressobj()
    huge = stream.compress(tar) + stream.flush()
    assert zstandard.get_frame_parameters(huge).window_size == 1 << 30
    deb = _ar(
        [("debian-binary", b"2.0\n"), ("control.tar.zst", _ctl_zst()), ("data.tar.zst", huge)]
    )
    with pytest.raises(DebFormatError, match="too much memory"):
        read_deb_stream(io.BytesIO(deb))


def _ctl_zst() -> bytes:
    control = b"Package: z\nVersion: 1\nArchitecture: all\nDescription: d\n"
    return zstandard.ZstdCompressor().compress(member(b"./control", control) + END)


def test_real_dpkg_deb_output_reads_as_tarfile_reads_it(tmp_path: Path) -> None:
    # On benign bytes written by dpkg-deb (GNU tar format: long names and link targets,
    # hard links, symlinks, fifos, setuid bits, non-ASCII names) the strict reader and
    # tarfile agree member for member.
    root = tmp_path / "tree"
    (root / "DEBIAN").mkdir(parents=True)
    (root / "DEBIAN/control").write_text(
        "Package: same\nVersion: 1\nArchitecture: all\nMaintainer: a <a@b.c>\nDescription: d\n"
    )
    deep = root / ("usr/share/" + "/".join(["d" * 40] * 4))
    deep.mkdir(parents=True)
    (deep / ("f" * 120)).write_text("x" * 1000)
    (root / "usr/bin").mkdir()
    (root / "usr/bin/tool").write_text("#!/bin/sh\n")
    (root / "usr/bin/tool").chmod(0o4755)
    os.link(root / "usr/bin/tool", root / "usr/bin/tool2")
    (root / "usr/bin/far").symlink_to("../" * 50 + "etc/target")
    os.mkfifo(root / "usr/share/fifo")
    (root / "usr/share/caf\u00e9").write_text("\u00e9")
    out = tmp_path / "same.deb"
    subprocess.run(
        ["dpkg-deb", "--root-owner-group", "-Zxz", "--build", str(root), str(out)],
        check=True,
        capture_output=True,
    )
    tar_bytes = subprocess.run(
        ["dpkg-deb", "--fsys-tarfile", str(out)], check=True, capture_output=True
    ).stdout
    kinds = {
        tarfile.REGTYPE: "file",
        tarfile.DIRTYPE: "dir",
        tarfile.SYMTYPE: "symlink",
        tarfile.LNKTYPE: "hardlink",
        tarfile.FIFOTYPE: "fifo",
    }
    with tarfile.open(fileobj=io.BytesIO(tar_bytes)) as tar:
        expected = [(i.name, kinds[i.type], i.mode, i.size, i.linkname, i.uid, i.gid) for i in tar]
    got = [
        (m.raw_path, m.type, m.mode, m.size, m.linkname, m.uid, m.gid)
        for m in read_deb(out).members
    ]
    assert got == expected
    assert len(got) > 8


def _gzip_member(data: bytes) -> bytes:
    return gzip.compress(data, mtime=0)


def _read_both(stream: bytes) -> tuple[bytes | None, bytes | None]:
    """What gzip.GzipFile and our reader (in 7-byte reads) make of ``stream``; None: refused."""
    try:
        theirs: bytes | None = gzip.GzipFile(fileobj=io.BytesIO(stream)).read()
    except (OSError, EOFError, zlib.error):
        theirs = None
    ours_io = _Gz(io.BytesIO(stream))
    parts: list[bytes] = []
    try:
        while chunk := ours_io.read(7):
            parts.append(chunk)
        ours: bytes | None = b"".join(parts)
    except (OSError, EOFError, zlib.error):
        ours = None
    return theirs, ours


_ONE = _gzip_member(b"control data " * 40)
_TWO = _ONE + _gzip_member(b"second member")
GZIP_FRAMES = [
    ("one-member", _ONE, True),
    ("two-members", _TWO, True),
    ("nul-padding", _ONE + b"\0" * 9 + _gzip_member(b"x") + b"\0" * 3, True),
    ("empty-member", _gzip_member(b""), True),
    ("reserved-flags", _ONE[:3] + b"\xc0" + _ONE[4:], False),  # GzipFile: accepted
    ("trailing-garbage", _ONE + b"garbage", False),
    ("truncated", _ONE[:-5], False),
    ("bad-crc", _ONE[:-8] + bytes([_ONE[-8] ^ 1]) + _ONE[-7:], False),
    ("bad-length", _ONE[:-4] + bytes([_ONE[-4] ^ 1]) + _ONE[-3:], False),
    ("not-gzip", b"BZh91AY&SY", False),
]


@pytest.mark.parametrize(
    ("stream", "accepted"), [(s, a) for _, s, a in GZIP_FRAMES], ids=[i for i, _, _ in GZIP_FRAMES]
)
def test_gzip_members_read_as_gzipfile_reads_them(stream: bytes, accepted: bool) -> None:
    theirs, ours = _read_both(stream)
    assert (ours is not None) is accepted
    assert ours == theirs or (ours is None and not accepted)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.integers(0, len(_TWO) - 1), st.integers(0, 255)), max_size=6))
def test_gzip_reader_never_accepts_what_gzipfile_refuses(edits: list[tuple[int, int]]) -> None:
    stream = bytearray(_TWO)
    for at, value in edits:
        stream[at] = value
    theirs, ours = _read_both(bytes(stream))
    # zlib (as dpkg reads gzip) refuses reserved header flags and checks the optional
    # header CRC, which GzipFile ignores: stricter at most, and the same bytes whenever
    # it reads them. (A read ending on a member's end once made the rest be read twice.)
    assert ours is None or ours == theirs
