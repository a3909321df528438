"""The .deb reader against dpkg itself: what it lists is what ``dpkg --unpack`` installs.

Each archive goes through the reader and through the real dpkg (``--instdir`` and
``--admindir`` in a temporary directory, never the host's). The reader may refuse
more than dpkg (a malformed mode field dpkg reads as 0), never less: whatever it
accepts, dpkg installs under exactly the paths it listed.
"""

from __future__ import annotations

import io
import subprocess
from pathlib import Path

import pytest

from aegis.ecosystems.apt.evidence.debfile import DebFormatError, read_deb_stream
from tests.conftest import require_root
from tests.unit.evidence.conftest import _ar

from .tarbytes import END, USTAR_MAGIC, compress, header, long_header, member, pax_header

_CONTROL = b"Package: parity\nVersion: 1.0\nArchitecture: all\nMaintainer: a <a@b.c>\n"
_CONTROL += b"Description: d\n"

STRICTER = "refused by the reader, installed by dpkg"

CASES: dict[str, tuple[list[bytes], bool | str]] = {
    # name: (data.tar members, whether the reader accepts them, or STRICTER)
    "plain": ([header(b"./usr", b"5"), member(b"./usr/a", b"x")], True),
    "gnu-long-name": (
        [header(b"./usr", b"5"), long_header(b"./usr/" + b"n" * 150), member(b"x")],
        True,
    ),
    "ustar-prefix": (
        [header(b"./usr", b"5"), header(b"a", magic=USTAR_MAGIC, prefix=b"./usr")],
        True,
    ),
    "gnu-prefix-ignored": ([header(b"./usr", b"5"), header(b"./usr/a", prefix=b"./etc")], True),
    "after-end-block": ([header(b"./usr", b"5"), END, member(b"./usr/late")], True),
    "pax-path": ([pax_header({"path": "usr/other"}), member(b"./usr/a")], False),
    "pax-global": ([pax_header({"comment": "x"}, b"g"), member(b"./usr/a")], False),
    "gnu-sparse": ([header(b"./usr/s", b"S")], False),
    "contiguous": ([header(b"./usr/c", b"7", 2), b"hi" + bytes(510)], False),
    "unknown-type": ([header(b"./usr/z", b"Z")], False),
    "bad-checksum": ([header(b"./usr", b"5"), header(b"./usr/a", checksum_delta=1)], False),
    "bad-uid-on-long-name": (
        [
            header(b"././@LongLink", b"L", 4, fields={"uid": b"zz" + bytes(6)}),
            b"./a\0" + bytes(508),
            member(b"x"),
        ],
        False,
    ),
    # Forms dpkg installs but reads differently from tarfile or from its other versions:
    # refused, so no reading of them can hide a file.
    "bad-mode": (
        [header(b"./usr", b"5"), header(b"./usr/a", fields={"mode": b"12 34\0\0\0"})],
        STRICTER,
    ),
    "two-long-names": (
        [header(b"./usr", b"5"), long_header(b"./usr/a"), long_header(b"./usr/b"), member(b"x")],
        STRICTER,
    ),
    "file-with-slash": ([header(b"./usr", b"5"), header(b"./usr/z/")], STRICTER),
}


def _deb(data: list[bytes]) -> bytes:
    control = compress([member(b"./control", _CONTROL), END], "gz")
    return _ar(
        [
            ("debian-binary", b"2.0\n"),
            ("control.tar.gz", control),
            ("data.tar.gz", compress([*data, END], "gz")),
        ]
    )


def _dpkg_unpack(deb: bytes, tmp_path: Path) -> set[str] | None:
    """Paths dpkg installs from ``deb`` into a private root, or None if it refuses."""
    admin, inst = tmp_path / "admin", tmp_path / "inst"
    for d in (admin / "updates", admin / "info", inst):
        d.mkdir(parents=True)
    for f in ("status", "available"):
        (admin / f).touch()
    path = tmp_path / "parity.deb"
    path.write_bytes(deb)
    run = subprocess.run(
        ["dpkg", f"--admindir={admin}", f"--instdir={inst}", "--force-all", "--unpack", str(path)],
        capture_output=True,
        text=True,
        check=False,
    )
    if run.returncode != 0:
        assert "tar" in run.stderr, run.stderr  # refused for its archive, not by set-up
        return None
    return {"/" + str(p.relative_to(inst)) for p in inst.rglob("*")}


@pytest.mark.parametrize("case", sorted(CASES))
def test_the_reader_accepts_only_what_dpkg_installs_and_lists_what_it_installs(
    case: str, tmp_path: Path
) -> None:
    require_root("dpkg --unpack into a private --instdir")
    parts, accepted = CASES[case]
    deb = _deb(parts)
    installed = _dpkg_unpack(deb, tmp_path)
    if accepted is not True:
        with pytest.raises(DebFormatError):
            read_deb_stream(io.BytesIO(deb))
        if accepted is STRICTER:
            assert installed is not None  # still true of this dpkg? then keep refusing
        else:
            assert installed is None, f"dpkg installs what the reader refuses: {installed}"
        return
    listed = {m.path for m in read_deb_stream(io.BytesIO(deb)).members}
    assert installed == listed
