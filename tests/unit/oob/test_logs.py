"""dpkg's log and apt's history read from a cursor, rotated and compressed files included."""

from __future__ import annotations

import gzip
import os
from pathlib import Path

from aegis.oob.findings import name_changes, parse_status
from aegis.oob.logs import Cursor, apt_runs_since, cursor_now, events_since, rotated


def _write(path: Path, text: str, mtime: float) -> None:
    if path.name.endswith(".gz"):
        path.write_bytes(gzip.compress(text.encode()))
    else:
        path.write_text(text)
    os.utime(path, (mtime, mtime))


def _ts(when: str) -> float:
    import time

    return time.mktime(time.strptime(when, "%Y-%m-%d %H:%M:%S"))


def test_rotated_files_are_read_oldest_first_from_the_cursor(tmp_path: Path) -> None:
    log = tmp_path / "dpkg.log"
    _write(
        tmp_path / "dpkg.log.2.gz",
        "2026-01-01 09:00:00 install old:all <none> 1\n",
        _ts("2026-01-01 09:00:00"),
    )
    _write(
        tmp_path / "dpkg.log.1",
        "2026-01-02 10:00:00 startup archives unpack\n"
        "2026-01-02 10:00:00 install a:amd64 <none> 1.0\n"
        "2026-01-02 10:00:01 upgrade b:all 1.0 1.1\n",
        _ts("2026-01-02 10:00:01"),
    )
    _write(
        log,
        "2026-01-03 11:00:00 remove a:amd64 1.0 <none>\n"
        "2026-01-03 11:00:00 status not-installed a:amd64 <none>\n"
        "2026-01-03 11:00:00 purge c:all 2.0 <none>\n",
        _ts("2026-01-03 11:00:00"),
    )
    assert [p.name for p in rotated(log)] == ["dpkg.log", "dpkg.log.1", "dpkg.log.2.gz"]
    # Cursor inside .1, after its first two lines of the same second.
    events, end = events_since(log, Cursor("2026-01-02 10:00:00", 2))
    assert [(e.action, e.package, e.old, e.new) for e in events] == [
        ("upgrade", "b", "1.0", "1.1"),
        ("remove", "a", "1.0", None),
        ("purge", "c", "2.0", None),
    ]
    assert end == Cursor("2026-01-03 11:00:00", 3) == cursor_now(log)
    # From the start: the compressed rotation too.
    events, _ = events_since(log, Cursor("", 0))
    assert [e.package for e in events] == ["old", "a", "b", "a", "c"]
    # At the end: nothing new, the cursor stays.
    assert events_since(log, end) == ([], end)


def test_apt_history_names_command_and_user(tmp_path: Path) -> None:
    hist = tmp_path / "history.log"
    _write(
        hist,
        "\nStart-Date: 2026-01-03  11:00:00\nCommandline: apt-get install x\n"
        "Requested-By: alice (1000)\nInstall: x:amd64 (1.0), libx:amd64 (2.0, automatic)\n"
        "End-Date: 2026-01-03  11:00:02\n\n"
        "Start-Date: 2026-01-03  12:00:00\nCommandline: /usr/bin/unattended-upgrade\n"
        "Upgrade: y:all (1.0, 1.1)\nEnd-Date: 2026-01-03  12:00:01\n",
        _ts("2026-01-03 12:00:01"),
    )
    runs = apt_runs_since(hist, "2026-01-03 10:00:00")
    assert [(r.start, sorted(r.packages)) for r in runs] == [
        ("2026-01-03 11:00:00", ["libx", "x"]),
        ("2026-01-03 12:00:00", ["y"]),
    ]
    events = [
        *events_since_text(
            tmp_path,
            "2026-01-03 11:00:01 install x:amd64 <none> 1.0\n"
            "2026-01-03 12:00:00 upgrade y:all 1.0 1.1\n"
            "2026-01-03 13:00:00 install z:all <none> 3\n",
        ),
    ]
    before = {"y:all": "1.0 installed", "gone:all": "1 installed"}
    now = {"x:amd64": "1.0 installed", "y:all": "1.1 installed", "z:all": "3 installed"}
    found = name_changes("b", before, now, events, runs, expect_unattended=True)
    by = {f.package: f for f in found}
    assert (by["x"].tool, by["x"].user, by["x"].uid) == ("apt-get", "alice", 1000)
    assert by["x"].commandline == "apt-get install x"
    assert (by["y"].tool, by["y"].expected) == ("unattended-upgrades", True)
    assert (by["z"].tool, by["z"].commandline) == ("dpkg", None)
    assert "dpkg directly" in by["z"].summary()
    # A status difference no log line explains is named too.
    assert (by["gone"].action, by["gone"].tool, by["gone"].new) == ("changed", "unknown", None)
    # Ids depend on the baseline and the change, so a recount finds the same ones.
    again = name_changes("b", before, now, events, runs, expect_unattended=True)
    assert [f.finding_id for f in again] == [f.finding_id for f in found]
    assert len({f.finding_id for f in found}) == len(found)


def events_since_text(tmp_path: Path, text: str):  # type: ignore[no-untyped-def]
    log = tmp_path / "d" / "dpkg.log"
    log.parent.mkdir()
    log.write_text(text)
    return events_since(log, Cursor("", 0))[0]


def test_parse_status_keeps_installed_and_config_files() -> None:
    text = (
        "Package: a\nStatus: install ok installed\nArchitecture: amd64\nVersion: 1\n\n"
        "Package: b\nStatus: deinstall ok config-files\nArchitecture: all\nVersion: 2\n\n"
        "Package: c\nStatus: purge ok not-installed\nArchitecture: all\n"
    )
    assert parse_status(text) == {"a:amd64": "1 installed", "b:all": "2 config-files"}


def _cursor_of_whole(path: Path) -> Cursor:
    lines = [ln for ln in path.read_bytes().split(b"\n") if ln]
    last = lines[-1][:19]
    seen = next((i for i, ln in enumerate(reversed(lines)) if ln[:19] != last), len(lines))
    return Cursor(last.decode(), seen)


def test_the_cursor_read_from_the_log_tail_is_the_whole_log_s(tmp_path: Path) -> None:
    """A megabyte log read from its end; a second longer than the tail is read whole."""
    log = tmp_path / "dpkg.log"
    body = "".join(f"2026-01-02 10:{m:02d}:{s:02d} status installed p{m}-{s}:all 1\n"
                   for m in range(60) for s in range(60) for _ in range(4))  # fmt: skip
    long_second = "2026-01-02 11:00:00 status unpacked q:all 1\n" * 3000  # > the tail read
    for text in (body, body + long_second, body + "2026-01-02 11:00:00 x\n\n", "one line\n"):
        log.write_text(text)
        assert cursor_now(log) == _cursor_of_whole(log)
    assert cursor_now(log) == Cursor("one line", 1)


def test_a_status_parsed_before_is_parsed_again_once_it_changes(tmp_path: Path) -> None:
    from aegis.oob.findings import HostFiles, read_status

    files = HostFiles(tmp_path / "status", tmp_path / "dpkg.log", tmp_path / "history.log")
    entry = "Package: a\nStatus: install ok installed\nArchitecture: all\nVersion: {}\n\n"
    files.status.write_text(entry.format("1"))
    sha1, first = read_status(files)
    first["b:all"] = "caller's own"  # a caller's copy: never the next caller's
    assert read_status(files) == (sha1, {"a:all": "1 installed"})
    files.status.write_text(entry.format("2"))
    assert read_status(files)[1] == {"a:all": "2 installed"}
