"""apt's unattended-upgrades beside Aegis is found; a needed reboot is reported."""

from __future__ import annotations

from pathlib import Path

from aegis.config import load_config
from aegis.doctor import run_checks
from aegis.unattended.health import metrics_text, unattended_upgrades_active


def _cfg(tmp_path: Path, root: Path):  # type: ignore[no-untyped-def]
    return load_config({"AEGIS_HOME": str(tmp_path / "home"), "AEGIS_DPKG_ROOT": str(root)})


def test_unattended_upgrades_is_a_bypass_only_when_it_would_run(tmp_path: Path) -> None:
    root = tmp_path / "root"
    cfg = _cfg(tmp_path, root)
    assert unattended_upgrades_active(cfg)[0] is False
    (root / "usr/bin").mkdir(parents=True)
    (root / "usr/bin/unattended-upgrade").write_text("#!/usr/bin/python3\n")
    wants = root / "etc/systemd/system/timers.target.wants"
    wants.mkdir(parents=True)
    (wants / "apt-daily-upgrade.timer").write_text("")
    conf = root / "etc/apt/apt.conf.d"
    conf.mkdir(parents=True)
    (conf / "20auto-upgrades").write_text('APT::Periodic::Unattended-Upgrade "1";\n')
    active, why = unattended_upgrades_active(cfg)
    assert active
    assert "apt-daily-upgrade.timer" in why
    [row] = [
        c for c in run_checks(cfg, which=lambda t: "/bin/true") if c.name == "unattended-upgrades"
    ]
    assert row.status == "warn"
    # Switched off the way docs/operator-guide.md says: no longer a bypass.
    (conf / "99aegis").write_text('APT::Periodic::Unattended-Upgrade "0";\n')
    assert unattended_upgrades_active(cfg)[0] is False


def test_reboot_required_is_reported_never_performed(tmp_path: Path) -> None:
    root = tmp_path / "root"
    (root / "run").mkdir(parents=True)
    cfg = _cfg(tmp_path, root)
    assert "aegis_reboot_required 0" in metrics_text(cfg)
    (root / "run/reboot-required").write_text("*** System restart required ***\n")
    (root / "run/reboot-required.pkgs").write_text("linux-image-amd64\nlibc6\n")
    assert "aegis_reboot_required 1" in metrics_text(cfg)
    [row] = [c for c in run_checks(cfg, which=lambda t: "/bin/true") if c.name == "reboot"]
    assert row.status == "warn"
    assert "libc6, linux-image-amd64" in row.detail
