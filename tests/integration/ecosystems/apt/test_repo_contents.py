"""Contents and vulnerability evidence against the real signed test repository.

The .debs come from ``aegis.devtools.testrepo`` (built with dpkg-deb), are fetched
into a private cache through the real ``apt-get download`` under a throwaway
root's APT_CONFIG, and an upgrade is compared with scripts a real dpkg installed
into that root. The host's package state is never touched.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path
from typing import Any

import pytest

from aegis.analyze.evidence import vulnerabilities
from aegis.ecosystems.apt.evidence.contents import dpkg_info_dir, inspect_deb, scan
from aegis.ecosystems.apt.evidence.debfile import read_deb
from aegis.ecosystems.apt.evidence.download import fetch_deb
from aegis.model import Action, PackageChange, Provenance
from tests.conftest import require_root


def _deb(repo: Any, name: str, version: str) -> Path:
    path: Path = repo.path / "pool" / repo.component / f"{name}_{version}_all.deb"
    assert path.exists(), path
    return path


def _summary(path: Path, name: str, version: str) -> set[tuple[str, str, int, str]]:
    return {
        (f.rule, f.file, f.line, f.severity)
        for f in scan(path, name, version, installed_info_dir=None)
    }


def test_hostile_fixture_found(test_repo: Any) -> None:
    found = _summary(_deb(test_repo, "aegis-hostile", "1.0"), "aegis-hostile", "1.0")
    assert {
        ("script.download-exec", "postinst", 4, "hostile"),
        ("script.sudoers", "postinst", 7, "hostile"),
        ("script.decoded-exec", "postinst", 8, "hostile"),
    } <= found


def test_obfuscated_fixture_found(test_repo: Any) -> None:
    found = _summary(_deb(test_repo, "aegis-obfuscated", "1.0"), "aegis-obfuscated", "1.0")
    hostile = {(rule, line) for rule, _, line, sev in found if sev == "hostile"}
    assert {("script.decoded-exec", 3), ("script.download-exec", 7), ("script.sudoers", 10)} <= (
        hostile
    )


@pytest.mark.parametrize(
    ("name", "version"),
    [("aegis-benign", "1.0"), ("aegis-benign", "1.1"), ("aegis-base", "1.2"), ("libssl3", "3.0.2")],
)
def test_benign_fixtures_have_no_findings(test_repo: Any, name: str, version: str) -> None:
    assert _summary(_deb(test_repo, name, version), name, version) == set()


def test_apt_hook_fixture(test_repo: Any) -> None:
    found = _summary(_deb(test_repo, "aegis-apthook", "1.0"), "aegis-apthook", "1.0")
    assert found == {("content.apt-hook", "/etc/apt/apt.conf.d/99aegis", 1, "sensitive")}


def test_setuid_fixture(test_repo: Any) -> None:
    found = _summary(_deb(test_repo, "aegis-setuid", "1.0"), "aegis-setuid", "1.0")
    assert found == {("content.setuid", "/usr/bin/aegis-suid", 0, "sensitive")}


def test_description_is_exposed(test_repo: Any) -> None:
    inspection = inspect_deb(
        _deb(test_repo, "aegis-base", "1.0"), "aegis-base", "1.0", installed_info_dir=None
    )
    assert inspection.description == "Aegis base fixture (old)"


def _provenance(apt_root: Any, name: str, version: str) -> Provenance:
    from aegis.devtools import testrepo

    uris = testrepo.run_apt(apt_root, "download", "--print-uris", f"{name}={version}").stdout
    m = re.search(r"'([^']+)' (\S+) (\d+) ", uris)
    assert m, uris
    show = testrepo.run_apt(apt_root, "show", f"{name}={version}", tool="/usr/bin/apt-cache").stdout
    sha = re.search(r"^SHA256: ([0-9a-f]{64})$", show, re.M)
    assert sha, show
    return Provenance(
        package=name,
        version=version,
        arch="all",
        uri=m.group(1),
        filename=m.group(2),
        size=int(m.group(3)),
        sha256=sha.group(1),
        repository=None,
        chain=(),
        verified=False,
    )


@pytest.mark.parametrize("via_apt", [False, True], ids=["copy", "apt-get-download"])
def test_fetch_from_signed_index(apt_root: Any, tmp_path: Path, via_apt: bool) -> None:
    prov = _provenance(apt_root, "aegis-hostile", "1.0")
    path = fetch_deb(
        prov, cache_dir=tmp_path / "cache", apt_config=apt_root.apt_config, via_apt=via_apt
    )
    assert hashlib.sha256(path.read_bytes()).hexdigest() == prov.sha256
    assert path.name == f"{prov.sha256}.deb"
    assert read_deb(path).control["Package"] == "aegis-hostile"


def test_upgrade_with_changed_postinst_is_flagged(apt_root: Any, test_repo: Any) -> None:
    require_root("installs into a throwaway root with dpkg --root")
    from aegis.devtools import testrepo

    testrepo.run_apt(apt_root, "install", "-y", "aegis-benign=1.0")
    info = dpkg_info_dir(apt_root.root)
    assert (info / "aegis-benign.postinst").exists()
    findings = scan(
        _deb(test_repo, "aegis-benign", "1.1"), "aegis-benign", "1.1", installed_info_dir=info
    )
    assert [(f.rule, f.file, f.line, f.severity) for f in findings] == [
        ("script.changed", "postinst", 4, "changed")
    ]
    # Re-installing the same version changes nothing.
    same = scan(
        _deb(test_repo, "aegis-benign", "1.0"), "aegis-benign", "1.0", installed_info_dir=info
    )
    assert same == ()


def test_libssl3_through_source_openssl(test_repo: Any) -> None:
    tracker = (
        b'{"openssl": {"CVE-2026-1111": {"description": "t", "releases": {"bookworm": '
        b'{"status": "resolved", "urgency": "high", "fixed_version": "3.0.2", '
        b'"repositories": {"bookworm": "3.0.2"}}}}}}'
    )
    index = vulnerabilities.parse_tracker(
        tracker, release="bookworm", date="2026-01-01T00:00:00Z", imported_at="2026-01-01T00:00:00Z"
    )

    def change(version: str) -> PackageChange:
        control = read_deb(_deb(test_repo, "libssl3", version)).control
        return PackageChange(
            name=control["Package"],
            arch="all",
            action=Action.INSTALL,
            current_version=None,
            candidate_version=control["Version"],
            source_package=control.get("Source", control["Package"]),
            source_version=None,
            repository=None,
        )

    (vuln,) = vulnerabilities.match([change("3.0.1")], index)
    assert (vuln.package, vuln.source_package, vuln.cve, vuln.critical) == (
        "libssl3",
        "openssl",
        "CVE-2026-1111",
        True,
    )
    assert (vuln.fixed_version, vuln.fixed_by_plan) == ("3.0.2", False)
    assert vulnerabilities.match([change("3.0.2")], index) == ()
