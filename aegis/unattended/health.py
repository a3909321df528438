"""What ``aegis doctor`` and the monitor say about automatic upgrades.

- apt's own unattended-upgrades still active beside Aegis is a bypass: it upgrades
  packages outside the chain (every change it makes is an out-of-band change). It is
  active when the program is installed, ``apt-daily-upgrade.timer`` is enabled and apt's
  ``APT::Periodic::Unattended-Upgrade`` is not ``"0"``.
- A needed reboot (``/run/reboot-required``) is reported, never performed.
- The last ``aegis unattended run`` pass, from its report file.

Example:
    >>> unattended_upgrades_active(cfg)
    (True, 'apt-daily-upgrade.timer enabled, APT::Periodic::Unattended-Upgrade "1"')
"""

from __future__ import annotations

import re
from pathlib import Path

from aegis.config import Config

_PERIODIC_RE = re.compile(r'APT::Periodic::Unattended-Upgrade\s+"([^"]*)"')
TIMER_WANTS = (
    "etc/systemd/system/timers.target.wants/apt-daily-upgrade.timer",
    "lib/systemd/system/timers.target.wants/apt-daily-upgrade.timer",
    "usr/lib/systemd/system/timers.target.wants/apt-daily-upgrade.timer",
)


def unattended_upgrades_active(cfg: Config) -> tuple[bool, str]:
    """Whether apt's unattended-upgrades would upgrade packages here, and why."""
    root = cfg.dpkg_root or Path("/")
    if not (root / "usr/bin/unattended-upgrade").exists():
        return False, "unattended-upgrades is not installed"
    if not any((root / w).exists() for w in TIMER_WANTS):
        return False, "apt-daily-upgrade.timer is not enabled"
    value = None
    conf = root / "etc/apt/apt.conf.d"
    for f in sorted(conf.glob("*")) if conf.is_dir() else []:
        try:
            for m in _PERIODIC_RE.finditer(f.read_text(errors="replace")):
                value = m.group(1)  # the last file apt reads wins
        except OSError:
            continue
    if value in (None, "0", ""):
        return False, "APT::Periodic::Unattended-Upgrade is not set"
    return True, f'apt-daily-upgrade.timer enabled, APT::Periodic::Unattended-Upgrade "{value}"'


def metrics_text(cfg: Config) -> str:
    """``aegis_reboot_required`` and the last unattended pass, for the monitor's file."""
    from aegis.unattended.run import read_last_run, reboot_state

    needed, _ = reboot_state(cfg)
    lines = [
        "# HELP aegis_reboot_required 1 when /run/reboot-required exists (Aegis never reboots).",
        "# TYPE aegis_reboot_required gauge",
        f"aegis_reboot_required {1 if needed else 0}",
    ]
    last = read_last_run(cfg)
    status = last.get("status") if last else None
    if isinstance(status, str) and re.fullmatch(r"[a-z-]{1,20}", status):
        lines += [
            "# HELP aegis_unattended_waiting 1 when the last automatic pass left a request "
            "waiting for a human.",
            "# TYPE aegis_unattended_waiting gauge",
            f"aegis_unattended_waiting {1 if status == 'waiting' else 0}",
        ]
    return "\n".join(lines) + "\n"
