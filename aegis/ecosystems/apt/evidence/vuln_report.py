"""Installed packages with open vulnerabilities, like debsecan. Pure except :func:`read_status`.

``aegis vulndb report`` answers "what on this host is vulnerable now", independent of
any plan: each installed binary package is mapped to its source (dpkg's ``Source:``
field, ``src (version)`` when the versions differ) and matched against the imported
tracker index for the configured release. An entry counts when it is open (no fixed
version yet) or its fixed version is newer than what is installed.

Example:
    >>> report_open(index, [Installed("libssl3", "3.0.11-1", "openssl", "3.0.11-1")])
    [OpenIssue(package='libssl3', ...)]
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from aegis.analyze.debversion import version_at_least
from aegis.analyze.evidence.vulnerabilities import VulnIndex, is_critical
from aegis.bounds import MAX_DPKG_STATUS_BYTES as MAX_STATUS_BYTES
from aegis.ecosystems.apt.parse import parse_source_field
from aegis.errors import EnvironmentFailure, InputError
from aegis.safe_read import read_capped


@dataclass(frozen=True)
class Installed:
    """One installed binary package."""

    package: str
    version: str
    source: str
    source_version: str


@dataclass(frozen=True)
class OpenIssue:
    """An installed package affected by a tracker entry."""

    package: str
    version: str
    source: str
    cve: str
    urgency: str
    fixed_version: str | None
    """None: no fix yet."""
    critical: bool


def parse_status(text: str) -> list[Installed]:
    """Installed packages from dpkg's status text (``install ok installed`` only).

    Raises:
        InputError: the text is not a dpkg status file.
    """
    from debian.deb822 import Deb822  # noqa: PLC0415 - deb822 takes ~60 ms to import: only when a file is parsed

    out: list[Installed] = []
    try:
        for para in Deb822.iter_paragraphs(text.splitlines()):
            if para.get("Status", "").split()[-1:] != ["installed"]:
                continue
            name, version = para.get("Package"), para.get("Version")
            if not name or not version:
                raise InputError("dpkg status: an installed entry without Package or Version")
            source, source_version = parse_source_field(name, version, para.get("Source"))
            out.append(Installed(name, version, source, source_version or version))
    except ValueError as e:  # python-debian on a malformed paragraph
        raise InputError(f"dpkg status: {e}") from e
    return out


def read_status(path: Path) -> list[Installed]:
    """Read and parse dpkg's status file at ``path``.

    Raises:
        EnvironmentFailure: unreadable.
        InputError: too large or malformed.
    """
    try:
        data = read_capped(path, MAX_STATUS_BYTES, "dpkg status")
    except OSError as e:
        raise EnvironmentFailure(f"cannot read dpkg status {path}: {e.strerror}") from e
    if len(data) > MAX_STATUS_BYTES:
        raise InputError(f"dpkg status {path} is larger than {MAX_STATUS_BYTES} bytes")
    return parse_status(data.decode("utf-8", "replace"))


def report_open(index: VulnIndex, installed: Iterable[Installed]) -> list[OpenIssue]:
    """Tracker entries that affect the installed versions, by package then CVE."""
    out: list[OpenIssue] = []
    for pkg in installed:
        for entry in index.entries.get(pkg.source, ()):
            fixed = entry.fixed_version
            if fixed is not None and version_at_least(pkg.source_version, fixed):
                continue
            out.append(
                OpenIssue(
                    pkg.package,
                    pkg.version,
                    pkg.source,
                    entry.cve,
                    entry.urgency,
                    fixed,
                    is_critical(entry.urgency),
                )
            )
    return sorted(out, key=lambda i: (i.package, i.cve))
