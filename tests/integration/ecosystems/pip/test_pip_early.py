"""pip started by the CLI before click loads: used only for exactly the planner's argv."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from aegis.cli.early_plan import _words, start
from aegis.config import load_config
from aegis.early import slot
from aegis.early.pip_tool import PipRun
from aegis.ecosystems import for_tool
from aegis.model import Intent, Operation, Plan, Tool

from .pip_fixtures import PipWorld, make_venv, serve


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PipWorld]:
    base = tmp_path_factory.mktemp("pip")
    yield from serve(base / "index", make_venv(base / "venv"))


def _started(world: PipWorld, *targets: str) -> PipRun:
    start("pip", [*targets, f"--venv={world.venv}", "--index-url", world.url, "--plan"])
    held = slot.pending()[-1]
    assert isinstance(held, PipRun)
    assert held.proc is not None
    return held


def _plan(world: PipWorld, *targets: str) -> Plan:
    intent = Intent(Tool.PIP, Operation.INSTALL, targets, "tester", "2026-01-01T00:00:00Z",
                    location=f"venv:{world.venv}", registry=world.url)  # fmt: skip
    return for_tool(Tool.PIP).plan(load_config({}), intent, datetime.now(UTC))


def _ended(run: PipRun) -> int | None:
    """pip's exit status (0: it ran to the end; -9: killed), once its HOME is removed."""
    assert run.proc is not None
    return None if Path(run.home.name).exists() else run.proc.returncode


def test_the_planner_claims_only_the_run_started_with_its_argv(world: PipWorld) -> None:
    run = _started(world, "demo-app")
    plan = _plan(world, "demo-app")
    assert not slot.pending()
    assert _ended(run) == 0  # claimed and waited for
    assert {c.name for c in plan.changes} == {"demo-app", "demo-lib"}
    other = _started(world, "friendly-tool")
    plan = _plan(world, "demo-app")  # the normal parse said demo-app: killed, never read
    assert _ended(other) == -9
    assert {c.name for c in plan.changes} == {"demo-app", "demo-lib"}


@pytest.mark.parametrize(
    "args",
    [
        ["x", "--venv", "v"],  # no --plan
        ["x", "--target", "/srv/lib", "--plan"],
        ["x", "--managed", "tools", "--plan"],
        ["x", "--venv", "v", "--plan", "-r", "reqs.txt"],
    ],
)
def test_only_the_plainest_words_start_anything(args: list[str]) -> None:
    assert _words("pip", args) is None


def test_bad_words_start_nothing(world: PipWorld) -> None:
    """The ecosystem's own grammars refuse first: no pip runs for a URL or a non-venv."""
    for args in (
        ["x @ https://evil.example/x.whl", "--venv", str(world.venv)],
        ["demo-app", "--venv", "/usr"],
        ["demo-app", "--venv", str(world.venv), "--index-url", "file:///tmp/idx"],
    ):
        start("pip", [*args, "--plan"])
        assert not slot.pending()
