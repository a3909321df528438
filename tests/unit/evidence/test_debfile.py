"""Reading .debs without extracting: formats, bounds, refusals."""

from __future__ import annotations

import contextlib
import io
from collections.abc import Callable
from pathlib import Path

import pytest

from aegis.analyze.evidence.debfile import (
    DebFormatError,
    DebLimits,
    parse_control,
    read_deb,
    read_deb_stream,
)
from aegis.errors import InputError

from .conftest import Entry, build_deb_bytes


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


def test_member_count_bound() -> None:
    data = build_deb_bytes(entries=[Entry(f"./f{i}") for i in range(20)])
    with pytest.raises(DebFormatError, match="more than 10"):
        read_deb_stream(io.BytesIO(data), limits=DebLimits(max_members=10))


def test_declared_size_bound() -> None:
    data = build_deb_bytes(entries=[Entry("./f", content=b"x" * 5000)])
    with pytest.raises(DebFormatError, match="declared-size"):
        read_deb_stream(io.BytesIO(data), limits=DebLimits(max_data_total=1000))


def test_symlinked_maintainer_script_refused(tmp_path: Path) -> None:
    import tarfile

    from .conftest import _ar, _tar

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


@pytest.mark.parametrize("compression", ["gz", "xz", ""], ids=["gz", "xz", "none"])
def test_mutated_packages_fail_only_as_format_errors(compression: str) -> None:
    # Hostile bytes reach tarfile, zlib and lzma; CPython 3.11's tarfile even raises
    # AttributeError on some corrupt gzip headers. Only DebFormatError may escape.
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
