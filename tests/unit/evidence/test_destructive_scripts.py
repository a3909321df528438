"""script.destructive: commands that wipe the system (issue 12 item 9), and what stays fine."""

from __future__ import annotations

import pytest

from aegis.analyze.evidence.scripts import scan_script

DESTRUCTIVE = [
    "rm -rf --no-preserve-root /",
    'rm -rf "${DPKG_ROOT}/"',
    "rm -rf ${DPKG_ROOT:-}/*",
    "rm -rf /etc",
    "rm -r -f /boot",
    "rm --recursive --force /usr/*",
    "sudo rm -fr /var/lib",
    "/bin/rm -Rf /home/",
    "true && rm -rf /srv",
    "dd if=/dev/zero of=/dev/sda bs=1M",
    "dd if=/dev/urandom of=/dev/nvme0n1",
    "mkfs.ext4 -F /dev/vda1",
    "mkfs -t xfs /dev/sdb",
    "wipefs -a /dev/vda",
    "sgdisk --zap-all /dev/sda",
    "shred -n1 /dev/sdc",
    "chmod -R 777 /",
    "chown -R nobody:nogroup /etc",
    "chmod -R a+w /usr/bin",
]
FINE = [
    "rm -rf /var/lib/aegis-tool",
    "rm -rf /etc/aegis-tool",
    'rm -rf "${DPKG_ROOT:-}/var/cache/aegis-tool"',
    "rm -f /etc/aegis.conf",
    "rm -f /etc",  # not recursive: fails on a directory
    "dd if=/dev/sda of=/var/backups/mbr bs=512 count=1",
    "chmod -R 755 /usr/share/aegis-tool",
    "chown -R aegis: /var/lib/aegis-tool",
    "echo 'never run rm -rf / by hand' >&2",
    "mkfs.ext4 /var/lib/aegis-tool/image.img",
]


@pytest.mark.parametrize("line", DESTRUCTIVE)
def test_destructive_commands_are_hostile(line: str) -> None:
    found = scan_script("aegis-x", "prerm", f"#!/bin/sh\nset -e\n{line}\n".encode())
    assert [(f.rule, f.severity, f.line) for f in found] == [("script.destructive", "hostile", 3)]


@pytest.mark.parametrize("line", FINE)
def test_package_housekeeping_is_not_destructive(line: str) -> None:
    found = scan_script("aegis-x", "postrm", f"#!/bin/sh\n{line}\n".encode())
    assert "script.destructive" not in [f.rule for f in found]
