"""``aegis vulndb import|status`` through CliRunner and ``python -m aegis``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from aegis.analyze.evidence.vulndb import load_index
from aegis.cli.aegis import cli
from aegis.config import load_config

TRACKER = {
    "openssl": {
        "CVE-2026-0001": {
            "description": "overflow \u202e\x1b[31m",
            "scope": "remote",
            "debianbug": 1,
            "releases": {
                "bookworm": {
                    "status": "resolved",
                    "urgency": "high",
                    "fixed_version": "3.0.2",
                    "repositories": {"bookworm": "3.0.2"},
                },
                "trixie": {
                    "status": "open",
                    "urgency": "low",
                    "repositories": {"trixie": "3.1"},
                    "nodsa": "Minor issue",
                    "nodsa_reason": "",
                },
            },
        }
    },
    "zlib": {
        "TEMP-0000000-1A2B3C": {
            "description": "x",
            "releases": {
                "bookworm": {
                    "status": "open",
                    "urgency": "not yet assigned",
                    "repositories": {},
                }
            },
        }
    },
}


@pytest.fixture
def tracker(tmp_path: Path) -> Path:
    path = tmp_path / "tracker.json"
    path.write_text(json.dumps(TRACKER))
    os.utime(path, (1_700_000_000, 1_700_000_000))
    return path


def test_import_then_status_json(aegis_home: Path, tracker: Path) -> None:
    result = CliRunner().invoke(cli, ["vulndb", "import", str(tracker), "--json"])
    assert result.exit_code == 0, result.output
    out = json.loads(result.output)
    assert out["path"] == str(aegis_home / "var/lib/aegis/vulndb.json")
    assert (out["release"], out["packages"], out["entries"]) == ("bookworm", 2, 2)
    assert out["date"] == "2023-11-14T22:13:20Z"  # the file's mtime: when it was fetched
    status = CliRunner().invoke(cli, ["vulndb", "status", "--json"])
    assert status.exit_code == 0
    assert json.loads(status.output)["date"] == "2023-11-14T22:13:20Z"
    index = load_index(load_config())
    assert index is not None
    assert [e.cve for e in index.entries["openssl"]] == ["CVE-2026-0001"]


def test_import_prints_path_for_people(aegis_home: Path, tracker: Path) -> None:
    result = CliRunner().invoke(cli, ["vulndb", "import", str(tracker)])
    assert result.exit_code == 0
    assert f"vulnerability index: {aegis_home}/var/lib/aegis/vulndb.json" in result.output


def test_release_from_environment(
    aegis_home: Path, tracker: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AEGIS_VULN_RELEASE", "trixie")
    result = CliRunner().invoke(cli, ["vulndb", "import", str(tracker), "--json"])
    assert json.loads(result.output)["entries"] == 1
    monkeypatch.setenv("AEGIS_VULN_RELEASE", "bookworm")
    status = CliRunner().invoke(cli, ["vulndb", "status"])
    assert status.exit_code == 3
    assert "trixie" in status.output


def test_status_without_index(aegis_home: Path) -> None:
    result = CliRunner().invoke(cli, ["vulndb", "status"])
    assert result.exit_code == 0
    assert "aegis vulndb import FILE" in result.output


@pytest.mark.parametrize(
    "content",
    [b"{", b'{"x": 1.0}', b'{"openssl": {"CVE-1": {"releases": {}}}}', b"[]"],
    ids=["truncated", "float", "bad-cve", "array"],
)
def test_bad_file_exits_3_and_keeps_old_index(
    aegis_home: Path, tracker: Path, tmp_path: Path, content: bytes
) -> None:
    assert CliRunner().invoke(cli, ["vulndb", "import", str(tracker)]).exit_code == 0
    before = (aegis_home / "var/lib/aegis/vulndb.json").read_bytes()
    bad = tmp_path / "bad.json"
    bad.write_bytes(content)
    result = CliRunner().invoke(cli, ["vulndb", "import", str(bad)])
    assert result.exit_code == 3
    assert "Error:" in result.output
    assert "Traceback" not in result.output
    assert (aegis_home / "var/lib/aegis/vulndb.json").read_bytes() == before


def test_python_m_aegis(aegis_home: Path, tracker: Path) -> None:
    env = {**os.environ, "AEGIS_HOME": str(aegis_home)}
    proc = subprocess.run(
        [sys.executable, "-m", "aegis", "vulndb", "import", str(tracker), "--json"],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["entries"] == 2
    missing = subprocess.run(
        [sys.executable, "-m", "aegis", "vulndb", "import", "/nonexistent/x.json"],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    assert missing.returncode == 3
    assert missing.stderr.startswith("Error: tracker file /nonexistent/x.json does not exist")
    fifo = tracker.parent / "tracker.fifo"
    os.mkfifo(fifo)  # given by mistake: refused at once, never waited on
    stuck = subprocess.run(
        [sys.executable, "-m", "aegis", "vulndb", "import", str(fifo)],
        capture_output=True,
        text=True,
        env=env,
        check=False,
        timeout=60,
    )
    assert stuck.returncode == 3
    assert "is not a regular file" in stuck.stderr


def test_help_has_example() -> None:
    for args in (
        ["vulndb", "--help"],
        ["vulndb", "import", "--help"],
        ["vulndb", "status", "--help"],
    ):
        result = CliRunner().invoke(cli, args)
        assert result.exit_code == 0
        assert "Example" in result.output


STATUS = """Package: libssl3
Status: install ok installed
Version: 3.0.1-1
Source: openssl (3.0.1)
Architecture: amd64

Package: openssl
Status: install ok installed
Version: 3.0.2
Architecture: amd64

Package: zlib
Status: install ok installed
Version: 1:1.2.13
Architecture: amd64

Package: removed-long-ago
Status: deinstall ok config-files
Version: 1.0
Source: openssl (1.0)
"""


def test_report_lists_installed_packages_with_open_issues(
    aegis_home: Path, tracker: Path, tmp_path: Path
) -> None:
    status = tmp_path / "status"
    status.write_text(STATUS)
    runner = CliRunner()
    missing = runner.invoke(cli, ["vulndb", "report", "--status", str(status)])
    assert missing.exit_code == 7
    assert "aegis vulndb import" in missing.stderr
    assert runner.invoke(cli, ["vulndb", "import", str(tracker)]).exit_code == 0

    result = runner.invoke(cli, ["vulndb", "report", "--status", str(status), "--json"])
    assert result.exit_code == 0, result.output
    issues = json.loads(result.stdout)["issues"]
    # libssl3's source version is below the fix; openssl 3.0.2 is fixed; zlib is open;
    # a package that is only configured is not installed.
    assert [(i["package"], i["cve"], i["fixed_version"], i["critical"]) for i in issues] == [
        ("libssl3", "CVE-2026-0001", "3.0.2", True),
        ("zlib", "TEMP-0000000-1A2B3C", None, True),  # "not yet assigned" counts as critical
    ]
    critical = runner.invoke(cli, ["vulndb", "report", "--status", str(status), "--critical"])
    assert critical.exit_code == 0
    assert "libssl3 3.0.1-1  CVE-2026-0001 (high CRITICAL), fixed in 3.0.2" in critical.stdout
    assert "zlib 1:1.2.13  TEMP-0000000-1A2B3C (not yet assigned CRITICAL), no fix yet" in (
        critical.stdout
    )
    bad = tmp_path / "bad"
    bad.write_text("Package: x\nStatus: install ok installed\n")
    refused = runner.invoke(cli, ["vulndb", "report", "--status", str(bad)])
    assert refused.exit_code == 3
    assert "without Package or Version" in refused.stderr


def test_an_empty_export_imports_as_no_known_issues(aegis_home: Path, tmp_path: Path) -> None:
    empty = tmp_path / "empty.json"
    empty.write_text("{}")
    result = CliRunner().invoke(cli, ["vulndb", "import", str(empty), "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["entries"] == 0
