"""The planning runner: explicit environment, timeout, captured stderr."""

from __future__ import annotations

import time

import pytest

from aegis.ecosystems.apt.run import ToolFailedError, child_env, run_tool


def test_environment_is_explicit(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LD_PRELOAD", "/tmp/evil.so")
    monkeypatch.setenv("LANG", "de_DE.UTF-8")
    res = run_tool(["/usr/bin/env"], apt_config="/x/apt.conf", timeout_s=10)
    env = dict(line.split("=", 1) for line in res.stdout.splitlines())
    assert env == child_env("/x/apt.conf")
    assert env["LANG"] == env["LC_ALL"] == "C"
    assert env["APT_CONFIG"] == "/x/apt.conf"


def test_timeout_kills_and_reports() -> None:
    t0 = time.monotonic()
    res = run_tool(["/bin/sleep", "30"], apt_config=None, timeout_s=0.3)
    assert time.monotonic() - t0 < 5
    assert res.timed_out
    assert not res.ok
    with pytest.raises(ToolFailedError, match="timed out"):
        res.check()


def test_failure_carries_stderr() -> None:
    res = run_tool(["/bin/sh", "-c", "echo boom >&2; exit 3"], apt_config=None, timeout_s=10)
    assert res.returncode == 3
    with pytest.raises(ToolFailedError, match="boom"):
        res.check()


def test_missing_tool_is_a_value() -> None:
    res = run_tool(["/nonexistent/tool"], apt_config=None, timeout_s=1)
    assert res.returncode == -1
    assert "cannot start" in res.stderr
