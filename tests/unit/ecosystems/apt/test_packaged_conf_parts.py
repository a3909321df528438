"""Shipped apt.conf.d parts are read only as regular files (a planted FIFO or link is skipped)."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from aegis.ecosystems.apt.evidence.aptconfig import packaged_conf_texts

TEXT = b'APT::Get::Assume-Yes "false";\n'


def _root(tmp_path: Path, names: list[str]) -> tuple[Path, Path]:
    parts = tmp_path / "etc/apt/apt.conf.d"
    parts.mkdir(parents=True)
    status = tmp_path / "var/lib/dpkg/status"
    status.parent.mkdir(parents=True)
    md5 = hashlib.md5(TEXT, usedforsecurity=False).hexdigest()
    lines = "".join(f" /etc/apt/apt.conf.d/{n} {md5}\n" for n in names)
    status.write_text(f"Package: apt\nStatus: install ok installed\nConffiles:\n{lines}\n")
    return parts, status


def test_a_regular_shipped_part_is_read(tmp_path: Path) -> None:
    parts, status = _root(tmp_path, ["01shipped"])
    (parts / "01shipped").write_bytes(TEXT)
    assert packaged_conf_texts(str(parts), str(status)) == (TEXT.decode(),)


def test_a_fifo_or_link_in_its_place_is_skipped_without_blocking(tmp_path: Path) -> None:
    parts, status = _root(tmp_path, ["01fifo", "02link"])
    os.mkfifo(parts / "01fifo")  # no writer: a blocking open would wait for ever
    real = tmp_path / "real"
    real.write_bytes(TEXT)
    (parts / "02link").symlink_to(real)
    assert packaged_conf_texts(str(parts), str(status)) == ()
