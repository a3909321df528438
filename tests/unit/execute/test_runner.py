"""aegisd's runner with real processes: no shell, fixed environment, timeout, capped output."""

from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path

import pytest

from aegis.ecosystems.apt.dpkg import restart_facts
from aegis.errors import InputError, TrustError
from aegis.execute.runner import child_env, run_argv


def _run(tmp_path: Path, *argv: str, timeout_s: float = 30, cap: int = 64 * 1024, env=None):  # type: ignore[no-untyped-def]
    return run_argv(
        argv,
        env=env if env is not None else child_env(None),
        timeout_s=timeout_s,
        out_dir=tmp_path / "runs",
        name="t",
        cap=cap,
    )


def test_environment_is_fixed_and_nothing_is_inherited(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for var, value in {
        "LD_PRELOAD": "/tmp/evil.so",
        "http_proxy": "http://attacker.invalid",
        "APT_CONFIG": "/tmp/evil.conf",
        "AEGIS_HOME": "/tmp/x",
        "DPKG_ROOT": "/tmp/x",
    }.items():
        monkeypatch.setenv(var, value)
    result = _run(tmp_path, "/usr/bin/env")
    assert result.exit_status == 0
    seen = dict(line.split("=", 1) for line in result.stdout_tail.splitlines())
    assert seen == {
        "DEBIAN_FRONTEND": "noninteractive",
        "LANG": "C",
        "LC_ALL": "C",
        "PATH": "/usr/sbin:/usr/bin:/sbin:/bin",
        "APT_LISTCHANGES_FRONTEND": "none",
        "NEEDRESTART_MODE": "l",
    }


def test_no_shell_metacharacters_are_plain_arguments(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    result = _run(tmp_path, "/bin/echo", "$(touch " + str(marker) + ")", ";", "|", "`id`")
    assert result.stdout_tail == f"$(touch {marker}) ; | `id`\n"
    assert not marker.exists()


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        ((), "empty argv"),
        (("apt-get", "install"), "not an absolute path"),
        (("/usr/bin/apt-get", "install", "x\x00y"), "NUL"),
    ],
    ids=["empty", "relative", "nul"],
)
def test_unacceptable_argv_is_refused_before_anything_starts(
    tmp_path: Path, argv: tuple[str, ...], message: str
) -> None:
    with pytest.raises(InputError, match=message):
        _run(tmp_path, *argv)
    assert not (tmp_path / "runs").exists()


def test_timeout_kills_the_whole_process_group(tmp_path: Path) -> None:
    pidfile = tmp_path / "child.pid"
    started = time.monotonic()
    result = _run(tmp_path, "/bin/sh", "-c", f"sleep 60 & echo $! > {pidfile}; wait", timeout_s=1)
    assert time.monotonic() - started < 10
    assert result.timed_out is True
    assert result.exit_status == -9
    child = int(pidfile.read_text())
    deadline = time.monotonic() + 5
    while Path(f"/proc/{child}").exists() and time.monotonic() < deadline:
        # A zombie reparented to init may linger a moment; a live sleep must not.
        if "State:\tZ" in Path(f"/proc/{child}/status").read_text(errors="replace"):
            break
        time.sleep(0.05)
    alive = Path(f"/proc/{child}").exists() and "State:\tZ" not in Path(
        f"/proc/{child}/status"
    ).read_text(errors="replace")
    assert not alive, "the grandchild survived the timeout"


def test_output_is_capped_but_hashed_in_full(tmp_path: Path) -> None:
    result = _run(
        tmp_path,
        "/bin/sh",
        "-c",
        "head -c 200000 /dev/zero | tr '\\0' a; echo END; echo oops >&2",
        cap=1000,
    )
    full = b"a" * 200000 + b"END\n"
    assert result.stdout_bytes == len(full)
    assert result.stdout_sha256 == hashlib.sha256(full).hexdigest()
    assert len(result.stdout_tail) == 1000
    assert result.stdout_tail.endswith("END\n")
    assert result.stderr_tail == "oops\n"
    assert result.stderr_sha256 == hashlib.sha256(b"oops\n").hexdigest()


@pytest.mark.root
def test_apt_config_only_from_a_root_owned_file(tmp_path: Path) -> None:
    conf_dir = tmp_path / "etc"
    conf_dir.mkdir(mode=0o755)
    conf = conf_dir / "apt.conf"
    conf.write_text("")
    conf.chmod(0o644)
    assert child_env(conf)["APT_CONFIG"] == str(conf)
    conf.chmod(0o664)
    with pytest.raises(TrustError, match="not root-owned or is writable"):
        child_env(conf)
    conf.chmod(0o644)
    os.chown(conf, 65534, 65534)
    with pytest.raises(TrustError, match="not root-owned or is writable"):
        child_env(conf)
    os.chown(conf, 0, 0)
    conf_dir.chmod(0o777)  # anyone could swap the file
    with pytest.raises(TrustError):
        child_env(conf)
    with pytest.raises(TrustError, match="cannot be read"):
        child_env(tmp_path / "missing/apt.conf")


@pytest.mark.parametrize("kind", ["fifo", "directory"])
def test_apt_config_that_is_not_a_regular_file_is_refused(tmp_path: Path, kind: str) -> None:
    # apt would only warn and then read the host's own configuration.
    conf = tmp_path / "apt.conf"
    if kind == "fifo":
        os.mkfifo(conf)
    else:
        conf.mkdir()
    with pytest.raises(TrustError, match="not a regular file"):
        child_env(conf)


def test_reboot_required_facts_are_collected_from_the_root(tmp_path: Path) -> None:
    assert restart_facts(tmp_path, {})["reboot_required"] is False
    run = tmp_path / "run"
    run.mkdir()
    (run / "reboot-required").write_text("*** System restart required ***\n")
    (run / "reboot-required.pkgs").write_text("linux-image-amd64\nlibc6\nlibc6\n")
    facts = restart_facts(tmp_path, {})
    assert facts["reboot_required"] is True
    assert facts["reboot_required_pkgs"] == ["libc6", "linux-image-amd64"]
    assert facts["needrestart"] == "not-run"  # never runs the host's needrestart for a root
