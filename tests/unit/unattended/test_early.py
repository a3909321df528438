"""apt calls started ahead of the analysis: taken once, by exactly the same command only."""

from __future__ import annotations

import time
from pathlib import Path

from aegis.config import load_config
from aegis.early import process, scratch, slot
from aegis.ecosystems.apt.apt_runner import (
    APT_CONFIG_BIN,
    APT_GET,
    AptRunner,
    download_set_args,
    simulation_args,
)
from aegis.ecosystems.apt.run import child_env, run_tool
from aegis.model import Operation
from aegis.unattended import early


def test_the_early_calls_are_the_analysis_own(tmp_path: Path) -> None:
    """Same argv and environment as the analyzer's, with and without Aegis's apt cache."""
    conf = tmp_path / "apt.conf"
    conf.write_text("")
    for env in (
        {"AEGIS_HOME": str(tmp_path)},
        {"AEGIS_HOME": str(tmp_path), "AEGIS_APT_CONFIG": str(conf)},
    ):
        cfg = load_config(env)
        runner = AptRunner(cfg)
        sim = [APT_GET, *runner.cache_opts, *simulation_args(Operation.UPGRADE, ())]
        expected = [
            ([APT_CONFIG_BIN, "dump"], child_env(cfg.apt_config)),
            (sim, child_env(cfg.apt_config)),
        ]
        assert early.first_apt_calls(cfg) == expected
        uris = [APT_GET, *runner.cache_opts]
        uris += download_set_args(Operation.UPGRADE, (), None, tmp_path) or []
        assert early.download_set_call(cfg, str(tmp_path)) == (uris, child_env(cfg.apt_config))
    assert runner.cache_opts == ()  # the private APT_CONFIG: no cache options
    assert early.first_apt_calls(load_config({"AEGIS_HOME": str(tmp_path)}))[1][0][1] == "-o"


def test_a_started_command_is_taken_once_and_only_when_identical(tmp_path: Path) -> None:
    log = tmp_path / "pids"
    argv = ["/bin/sh", "-c", f"echo $$ >> {log}; echo $$"]
    process.start(argv, child_env(None))
    deadline = time.monotonic() + 10
    while not (log.exists() and log.read_text().endswith("\n")) and time.monotonic() < deadline:
        time.sleep(0.01)
    early_pid = log.read_text().split()[0]
    # Another environment is another command: it runs on its own.
    other = run_tool(argv, apt_config="/nonexistent", timeout_s=10)
    first = run_tool(argv, apt_config=None, timeout_s=10)
    again = run_tool(argv, apt_config=None, timeout_s=10)
    assert first.stdout.strip() == early_pid
    assert other.stdout.strip() != early_pid
    assert again.stdout.strip() not in (early_pid, other.stdout.strip())
    assert process.take(tuple(argv), child_env(None)) is None


def test_what_nobody_took_is_killed() -> None:
    env = child_env(None)
    process.start(["/bin/sleep", "30"], env)
    t0 = time.monotonic()
    slot.discard()
    assert time.monotonic() - t0 < 5
    assert process.take(("/bin/sleep", "30"), env) is None


def test_the_early_archive_directory_is_private_taken_once_and_removed_if_not() -> None:
    path = scratch.make("aegis-test-")
    assert path is not None
    assert Path(path).stat().st_mode & 0o777 == 0o700
    scratch.keep(scratch.ARCHIVES, path)
    taken = scratch.take(scratch.ARCHIVES)
    assert taken is not None
    assert taken.name == path
    assert scratch.take(scratch.ARCHIVES) is None
    with taken:
        (Path(path) / "partial").mkdir()
    assert not Path(path).exists()

    left = scratch.make("aegis-test-")
    assert left is not None
    scratch.keep(scratch.ARCHIVES, left)
    slot.discard()
    assert not Path(left).exists()
    assert scratch.take(scratch.ARCHIVES) is None
