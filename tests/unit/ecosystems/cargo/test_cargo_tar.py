"""The streaming .crate reader: what tarfile accepted and it refuses, and what it keeps."""

from __future__ import annotations

import gzip
import io
import tarfile

import pytest

from aegis.ecosystems.cargo.crate import CrateError, inspect_crate, read_members

MANIFEST = b'[package]\nname = "x"\nversion = "1.0.0"\nbuild = "gen/make.rs"\n'
SCRIPT = b'fn main() { Command::new("make").arg("all").status(); }\n'


def _tar(members: list[tuple[str, bytes]], fmt: int = tarfile.GNU_FORMAT) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=fmt) as tf:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return buf.getvalue()


@pytest.mark.parametrize("fmt", [tarfile.GNU_FORMAT, tarfile.PAX_FORMAT, tarfile.USTAR_FORMAT])
@pytest.mark.parametrize("script_first", [False, True])
def test_a_custom_build_script_is_kept_in_any_format_and_order(
    fmt: int, script_first: bool
) -> None:
    long = "x-1.0.0/" + "d" * 90 + "/s\u00e9.rs"  # past ustar's 100 bytes, not ASCII
    members = [("x-1.0.0/Cargo.toml", MANIFEST), ("x-1.0.0/gen/make.rs", SCRIPT),
               (long, b"y" * 3000)]  # fmt: skip
    if script_first:
        members.reverse()
    data = gzip.compress(_tar(members, fmt))
    facts = inspect_crate(data, "x", "1.0.0")
    assert facts.build_script == "gen/make.rs"
    assert facts.build_commands == ("make all",)
    assert read_members(data, "x-1.0.0", frozenset({long[8:]})) == {long[8:]: b"y" * 3000}


@pytest.mark.parametrize(
    "tar",
    [
        _tar([("x-1.0.0/build.rs", b"a"), ("x-1.0.0/build.rs", b"b")]),  # last one would win
        _tar([("x-1.0.0/./build.rs", b"a")]),  # cargo unpacks it as build.rs
        _tar([("x-1.0.0//build.rs", b"a")]),
        _tar([("x-1.0.0/Cargo.toml", b"a")]) + b"hidden after the end",
        _tar([("x-1.0.0/Cargo.toml", b"a")])[:700],  # truncated
    ],
)
def test_odd_archives_are_refused(tar: bytes) -> None:
    with pytest.raises(CrateError):
        read_members(gzip.compress(tar), "x-1.0.0", frozenset({"Cargo.toml"}))


def test_a_corrupt_header_is_refused() -> None:
    tar = bytearray(_tar([("x-1.0.0/Cargo.toml", b"a")]))
    tar[0] = ord("y")  # the name changes, the checksum does not
    with pytest.raises(CrateError, match="checksum"):
        read_members(gzip.compress(bytes(tar)), "x-1.0.0", frozenset())
