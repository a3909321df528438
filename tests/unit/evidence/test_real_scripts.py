"""Calibration on recorded Debian maintainer scripts: distribution scripts are not hostile.

Policy denies every hostile finding, so a false hostile would block upgrading sudo,
openssh-server or ufw from Debian itself. These scripts manage exactly the files
and services the rules watch; they may be sensitive, never hostile.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from aegis.analyze.evidence.scripts import scan_script

ASSETS = Path(__file__).resolve().parents[2] / "assets" / "evidence" / "debian-scripts"
SCRIPTS = sorted(p for p in ASSETS.iterdir() if p.suffix != ".md")


def test_assets_present() -> None:
    assert len(SCRIPTS) >= 40


@pytest.mark.parametrize("path", SCRIPTS, ids=[p.name for p in SCRIPTS])
def test_debian_script_is_not_hostile(path: Path) -> None:
    package, script = path.name.rsplit(".", 1)
    hostile = [
        (f.rule, f.line, f.excerpt)
        for f in scan_script(package, script, path.read_bytes())
        if f.severity == "hostile"
    ]
    assert hostile == []


@pytest.mark.parametrize(
    ("name", "rule"),
    [
        ("sudo.postinst", "script.sudoers"),
        ("openssh-server.postinst", "script.sshd"),
        ("apache2.preinst", "script.decoded-exec"),
    ],
)
def test_debian_scripts_are_still_seen(name: str, rule: str) -> None:
    package, script = name.rsplit(".", 1)
    findings = scan_script(package, script, (ASSETS / name).read_bytes())
    assert any(f.rule == rule and f.severity == "sensitive" for f in findings)
