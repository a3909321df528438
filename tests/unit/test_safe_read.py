"""Capped reads read a file in the size it has, and still never past the cap."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from aegis.errors import InputError
from aegis.safe_read import read_capped, read_fd_upto


def test_a_file_is_read_whole_up_to_the_cap(tmp_path: Path) -> None:
    f = tmp_path / "f"
    f.write_bytes(b"x" * 1000)
    assert read_capped(f, 4 << 20, "file") == b"x" * 1000
    # One byte past the cap tells the caller the file is too large.
    assert read_capped(f, 10, "file") == b"x" * 11
    fd = os.open(f, os.O_RDONLY)
    try:
        assert read_fd_upto(fd, 11) == b"x" * 11
    finally:
        os.close(fd)


def test_a_file_longer_than_its_stat_says_is_read_on_to_the_cap() -> None:
    # /proc files say size 0: the reader goes on past the stat size, never past the cap.
    status = Path("/proc/self/status")
    assert read_capped(status, 1 << 20, "status").startswith(b"Name:")
    assert len(read_capped(status, 20, "status")) == 21
    fd = os.open(status, os.O_RDONLY)
    try:
        assert read_fd_upto(fd, 1 << 20).startswith(b"Name:")
    finally:
        os.close(fd)


def test_a_fifo_is_refused_not_waited_on(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "fifo")
    with pytest.raises(InputError):
        read_capped(tmp_path / "fifo", 100, "fifo")
