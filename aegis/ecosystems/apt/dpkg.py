"""The dpkg facts aegisd checks around an apt run: ``dpkg --audit``, the status, restarts.

Split out of :mod:`aegis.execute.runner` (which runs every ecosystem's argv): these are
apt's installed state (:meth:`aegis.ecosystems.apt.AptEcosystem.installed_state`), read
before and after a run and compared by :mod:`aegis.ecosystems.apt.drift`.
"""

from __future__ import annotations

import subprocess
from collections.abc import Mapping
from pathlib import Path

from aegis.errors import EnvironmentFailure

DPKG = "/usr/bin/dpkg"
DPKG_QUERY = "/usr/bin/dpkg-query"


def _root_args(dpkg_root: Path | None) -> list[str]:
    return [f"--root={dpkg_root}"] if dpkg_root is not None else []


def dpkg_audit(dpkg_root: Path | None, env: Mapping[str, str]) -> tuple[bool, str]:
    """Run ``dpkg --audit``; return (clean, its report).

    Raises:
        EnvironmentFailure: dpkg cannot be run.
    """
    try:
        proc = subprocess.run(
            [DPKG, *_root_args(dpkg_root), "--audit"],
            env=dict(env),
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as e:
        raise EnvironmentFailure(f"dpkg --audit could not run: {e}") from e
    report = (proc.stdout + proc.stderr).strip()
    return proc.returncode == 0 and not proc.stdout.strip(), report


PackageState = dict[str, tuple[str, str]]
"""``name:arch`` -> (version, dpkg status word: installed, config-files, half-configured...)."""


def dpkg_status(dpkg_root: Path | None, env: Mapping[str, str]) -> PackageState:
    """Return every package dpkg knows, with version and status.

    Raises:
        EnvironmentFailure: dpkg-query cannot be run.
    """
    try:
        proc = subprocess.run(
            [
                DPKG_QUERY,
                *_root_args(dpkg_root),
                "-W",
                "-f=${Package}\\t${Architecture}\\t${Version}\\t${db:Status-Status}\\n",
            ],
            env=dict(env),
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as e:
        raise EnvironmentFailure(f"dpkg-query could not run: {e}") from e
    # dpkg-query exits 1 with "no packages found" on an empty database: that is a state too.
    if proc.returncode not in (0, 1):
        raise EnvironmentFailure(f"dpkg-query failed: {proc.stderr.strip()}")
    return parse_dpkg_query(proc.stdout)


def parse_dpkg_query(text: str) -> PackageState:
    """Parse the tab-separated output of :func:`dpkg_status` (pure)."""
    out: PackageState = {}
    for line in text.splitlines():
        match line.split("\t"):
            case [name, arch, version, status]:
                pass
            case _:  # not one of our rows: skip it rather than guess
                continue
        if status == "not-installed":
            continue
        out[f"{name}:{arch}"] = (version, status)
    return out


def restart_facts(dpkg_root: Path | None, env: Mapping[str, str]) -> dict[str, object]:
    """Collect reboot-required and needrestart facts after a run (never fatal)."""
    base = dpkg_root if dpkg_root is not None else Path("/")
    reboot = base / "run/reboot-required"
    if not reboot.exists():
        reboot = base / "var/run/reboot-required"
    facts: dict[str, object] = {"reboot_required": reboot.exists()}
    pkgs = reboot.with_name("reboot-required.pkgs")
    if pkgs.exists():
        facts["reboot_required_pkgs"] = sorted(set(pkgs.read_text(errors="replace").split()))[:50]
    needrestart = Path("/usr/sbin/needrestart")
    if dpkg_root is None and needrestart.exists():
        try:
            proc = subprocess.run(
                [str(needrestart), "-b", "-r", "l"],
                env=dict(env),
                capture_output=True,
                text=True,
                timeout=60,
                check=False,
            )
            lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("NEEDRESTART-")]
            facts["needrestart"] = lines[:50]
        except (OSError, subprocess.TimeoutExpired) as e:
            facts["needrestart"] = f"failed: {e}"
    else:
        facts["needrestart"] = "not-run" if dpkg_root is not None else "not-installed"
    return facts
