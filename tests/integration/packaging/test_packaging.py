"""Packaging: units verify offline, the reviewd sandbox gate, staged install + readiness check."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from tests.conftest import require_root

REPO = Path(__file__).resolve().parents[3]
PKG = REPO / "packaging"
UNITS = sorted(p.name for p in (PKG / "systemd").iterdir())
STALE_MESSAGE = (
    "The human operator must run packaging/install-native.sh from a root shell where id -u "
    "prints 0; PolicyKit prompts for systemctl are not enough to replace unit files."
)
REVIEWD_MAX_EXPOSURE = 2.0  # of 10: "OK" in systemd-analyze's scale
AEGISD_MAX_EXPOSURE = 7.0  # root running apt and dpkg: "MEDIUM" is as far as apt allows


def _need(tool: str) -> None:
    if shutil.which(tool) is None:
        pytest.skip(f"{tool} is not installed")


def _install(stage: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", str(PKG / "install-native.sh"), "--root", str(stage), "--skip-deps"],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )


def _verify(stage: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", str(PKG / "verify-native.sh"), "--root", str(stage)],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )


@pytest.fixture(scope="module")
def stage(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A staged native install (install-native.sh --root)."""
    require_root("install-native.sh refuses to run unless id -u prints 0")
    _need("systemd-analyze")
    _need("systemd-sysusers")
    root = tmp_path_factory.mktemp("stage")
    result = _install(root)
    assert result.returncode == 0, result.stderr + result.stdout
    return root


def test_units_are_the_contract_set() -> None:
    assert UNITS == [
        "aegis-monitor.service",
        "aegis-monitor.timer",
        "aegis-reviewd.service",
        "aegis-reviewd.socket",
        "aegis-unattended.service",
        "aegis-unattended.timer",
        "aegisd.service",
        "aegisd.socket",
    ]


@pytest.mark.parametrize("unit", UNITS)
def test_systemd_analyze_verify_has_no_output_on_stderr(stage: Path, unit: str) -> None:
    proc = subprocess.run(
        [
            "systemd-analyze",
            "verify",
            "--man=no",
            f"--root={stage}",
            "--recursive-errors=no",
            f"/etc/systemd/system/{unit}",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0
    assert proc.stderr == ""


def _exposure(stage: Path, unit: str) -> float:
    """The overall exposure ``systemd-analyze security`` prints for ``unit``, as a number.

    systemd 252 prints ``8.7 EXPOSED``, 257 ``0.9 SAFE`` with other glyphs: compare numbers.
    """
    proc = subprocess.run(
        [
            "systemd-analyze",
            "security",
            "--offline=true",
            f"--root={stage}",
            f"/etc/systemd/system/{unit}",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    match = re.search(rf"Overall exposure level for {re.escape(unit)}: (\d+\.\d+)", proc.stdout)
    assert match, proc.stdout[-2000:] + proc.stderr[-2000:]
    return float(match.group(1))


def test_aegis_reviewd_passes_the_security_gate(stage: Path) -> None:
    assert _exposure(stage, "aegis-reviewd.service") <= REVIEWD_MAX_EXPOSURE


def test_aegisd_is_hardened_as_far_as_apt_allows(stage: Path) -> None:
    # 8.7 before the apt-compatible options; the booted-host test proves an apply still
    # installs a package whose postinst starts a service under them.
    assert _exposure(stage, "aegisd.service") <= AEGISD_MAX_EXPOSURE


def _keys(unit: str) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for line in (PKG / "systemd" / unit).read_text().splitlines():
        if "=" in line and not line.startswith("#"):
            key, _, value = line.partition("=")
            out.setdefault(key.strip(), []).append(value.strip())
    return out


def test_aegisd_hardening_does_not_break_apt() -> None:
    keys = _keys("aegisd.service")
    assert keys["KillMode"] == ["process"]
    for forbidden in ("ProtectKernelModules", "ProtectSystem", "RestrictSUIDSGID"):
        assert forbidden not in keys, forbidden
    # apt downloads over IP; AF_UNIX alone breaks it (docs/testing.md).
    assert {"AF_UNIX", "AF_INET", "AF_INET6"} <= set(keys["RestrictAddressFamilies"][0].split())
    assert keys["ExecStart"] == ["/opt/aegis/bin/aegisd"]


def test_sockets_have_contract_owners_and_modes() -> None:
    aegisd, reviewd = _keys("aegisd.socket"), _keys("aegis-reviewd.socket")
    assert aegisd["ListenStream"] == ["/run/aegis/aegisd.sock"]
    assert (aegisd["SocketUser"], aegisd["SocketGroup"], aegisd["SocketMode"]) == (
        ["root"],
        ["aegis-apply"],
        ["0660"],
    )
    assert reviewd["ListenStream"] == ["/run/aegis/aegis-reviewd.sock"]
    assert (reviewd["SocketUser"], reviewd["SocketGroup"], reviewd["SocketMode"]) == (
        ["aegis-reviewd"],
        ["aegis"],
        ["0660"],
    )


def test_staged_install_passes_verify_native(stage: Path) -> None:
    result = _verify(stage)
    assert result.returncode == 0, result.stdout
    assert result.stdout.rstrip().endswith("verify-native: ready")
    assert (stage / "etc/aegis/policy.toml").is_file()
    assert oct((stage / "var/lib/aegis").stat().st_mode & 0o7777) == "0o3770"
    wrapper = (stage / "opt/aegis/bin/aegisd").read_text()
    assert "exec /opt/aegis/venv/bin/python3 -I -m aegis.execute.aegisd" in wrapper
    assert os.readlink(stage / "opt/aegis/venv/bin/python3").startswith("/usr/bin/python3")
    docs = stage / "opt/aegis/share/doc/aegis"  # what the docs tell people and agents to read
    for name in ("operator-guide.md", "agents.md", "design.md", "distributions.md"):
        assert (docs / name).is_file(), name


def test_staged_sources_open_the_store(stage: Path, tmp_path: Path) -> None:
    """The installed sources carry the shipped migrations: a command can create the store."""
    src = stage / "opt/aegis/src"
    code = (
        "import sys, aegis; assert aegis.__file__.startswith(sys.argv[1]), aegis.__file__; "
        "from aegis.cli.aegis import main; sys.argv = ['aegis', 'requests', '--json']; main()"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code, str(src)],
        capture_output=True,
        text=True,
        check=False,
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(src), "AEGIS_HOME": str(tmp_path / "home")},
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "home/var/lib/aegis/state.db").is_file()


def test_verify_native_flags_missing_migrations(tmp_path: Path, stage: Path) -> None:
    copy = tmp_path / "stage"
    shutil.copytree(stage, copy, symlinks=True)
    shutil.rmtree(copy / "opt/aegis/src/state")
    result = _verify(copy)
    assert result.returncode != 0
    assert "state/migrations/0001_initial.sql is missing" in result.stdout


@pytest.mark.parametrize("stale", ["/usr/bin/aegisd", "/usr/libexec/aegis/aegisd"])
def test_stale_unit_is_flagged_with_the_contract_message(
    tmp_path: Path, stage: Path, stale: str
) -> None:
    copy = tmp_path / "stage"
    shutil.copytree(stage, copy, symlinks=True)
    unit = copy / "etc/systemd/system/aegisd.service"
    unit.write_text(
        unit.read_text().replace("ExecStart=/opt/aegis/bin/aegisd", f"ExecStart={stale}")
    )
    result = _verify(copy)
    assert result.returncode == 1
    assert f"stale unit: {unit} runs {stale}. {STALE_MESSAGE}" in result.stdout


def test_stale_drop_in_is_flagged(tmp_path: Path, stage: Path) -> None:
    copy = tmp_path / "stage"
    shutil.copytree(stage, copy, symlinks=True)
    dropin = copy / "etc/systemd/system/aegis-reviewd.service.d/old.conf"
    dropin.parent.mkdir()
    dropin.write_text("[Service]\nExecStart=\nExecStart=/usr/bin/aegis-reviewd\n")
    result = _verify(copy)
    assert result.returncode == 1
    assert "stale unit:" in result.stdout
    assert STALE_MESSAGE in result.stdout


def test_verify_native_reports_missing_install(tmp_path: Path) -> None:
    _need("systemd-analyze")
    result = _verify(tmp_path)
    assert result.returncode == 1
    assert "FAIL  unit aegisd.service is not installed" in result.stdout


def test_install_native_refuses_non_root(tmp_path: Path) -> None:
    require_root("needs root to drop to another uid")
    _need("setpriv")
    # A copy the unprivileged user can read, wherever the checkout lives.
    public = Path(tempfile.mkdtemp(prefix="aegis-install-"))
    public.chmod(0o755)
    script = public / "install-native.sh"
    shutil.copy(PKG / "install-native.sh", script)
    script.chmod(0o755)
    proc = subprocess.run(
        [
            "setpriv",
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "bash",
            str(script),
            "--root",
            str(tmp_path / "s"),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 1
    assert "must be run as root" in proc.stderr
    assert not (tmp_path / "s").exists()
    shutil.rmtree(public)


@pytest.mark.parametrize("wrapper", ["aegis", "aegisctl", "aegisd", "aegis-reviewd"])
def test_wrappers_run_the_cli_with_the_venv_system_python(wrapper: str, tmp_path: Path) -> None:
    """Each wrapper's command line, run with this checkout on the path, prints its help."""
    text = (PKG / "wrappers" / wrapper).read_text()
    exec_line = next(line for line in text.splitlines() if line.startswith("exec "))
    assert exec_line.startswith("exec /opt/aegis/venv/bin/python3 -I ")
    assert "/usr/bin/aegis" not in text
    assert "/usr/libexec/aegis" not in text
    shim = tmp_path / wrapper
    # Same script, but this test's Python (with the project's dependencies) and checkout.
    shim.write_text(text.replace("/opt/aegis/venv/bin/python3 -I", f"{sys.executable}"))
    shim.chmod(0o755)
    proc = subprocess.run(
        [str(shim), "--help"],
        capture_output=True,
        text=True,
        check=False,
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    assert "usage" in proc.stdout.lower()


SETPRIV_NOBODY = ("setpriv", "--reuid=65534", "--regid=65534", "--clear-groups")


def test_verify_native_as_a_non_member_cannot_inspect_rather_than_missing(stage: Path) -> None:
    """A user outside group aegis is told what it cannot look into, never "missing"."""
    _need("setpriv")
    # A copy of the staged install the unprivileged user can reach, wherever tmp lives.
    public = Path(tempfile.mkdtemp(prefix="aegis-verify-"))
    try:
        public.chmod(0o755)
        copy = public / "stage"
        # cp -a keeps owners and groups (the staged aegis group), which copytree does not.
        subprocess.run(["cp", "-a", str(stage), str(copy)], check=True)
        copy.chmod(0o755)  # pytest's own temporary directories are 0700
        for name in ("verify-native.sh", "tmpfiles.d-aegis.conf"):
            shutil.copy(PKG / name, public / name)
        proc = subprocess.run(
            [*SETPRIV_NOBODY, "bash", str(public / "verify-native.sh"), "--root", str(copy)],
            capture_output=True,
            text=True,
            check=False,
            timeout=60,
        )
        assert proc.returncode == 7, proc.stdout + proc.stderr
        assert "cannot inspect directory /var/lib/aegis/aegisd" in proc.stdout
        assert "missing" not in proc.stdout
        assert "FAIL" not in proc.stdout
        assert "join group aegis" in proc.stdout
    finally:
        shutil.rmtree(public)
