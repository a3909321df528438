"""npm started by the CLI before click loads: used only when it is exactly the planner's run."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from aegis.cli.early_plan import _words, start
from aegis.config import load_config
from aegis.early import slot
from aegis.early.npm_tool import Resolution
from aegis.ecosystems import for_tool
from aegis.model import Intent, Operation, Plan, Tool

from .npm_fixtures import NpmWorld, needs_npm, new_project, serve

pytestmark = needs_npm
REPO = Path(__file__).resolve().parents[4]


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NpmWorld]:
    yield from serve(tmp_path_factory.mktemp("npm") / "registry")


def _started(world: NpmWorld, project: Path, *targets: str) -> Resolution:
    start("npm", [*targets, "--project", str(project), "--registry", world.url, "--plan"])
    held = slot.pending()[-1]
    assert isinstance(held, Resolution)
    assert held.proc is not None
    return held


def _plan(world: NpmWorld, project: Path, *targets: str) -> Plan:
    intent = Intent(Tool.NPM, Operation.INSTALL, targets, "tester", "2026-01-01T00:00:00Z",
                    location=f"project:{project}", registry=world.url)  # fmt: skip
    return for_tool(Tool.NPM).plan(load_config({}), intent, datetime.now(UTC))


def _ended(run: Resolution) -> int | None:
    """npm's exit status (0: it ran to the end; -9: killed), once its scratch is removed."""
    assert run.proc is not None
    slot.settle()  # a finished run's scratch is removed in a thread
    return None if Path(run.tmp.name).exists() else run.proc.returncode


def test_the_planner_claims_the_run_started_for_exactly_its_resolution(
    world: NpmWorld, tmp_path: Path
) -> None:
    project = new_project(tmp_path / "p")
    run = _started(world, project, "top-b")
    plan = _plan(world, project, "top-b")
    assert not slot.pending()
    assert _ended(run) == 0  # claimed and waited for
    assert plan.failure is None
    assert {c.name for c in plan.changes} == {"top-b", "dep-a"}


def test_a_run_for_other_words_is_killed_and_never_read(world: NpmWorld, tmp_path: Path) -> None:
    project = new_project(tmp_path / "p")
    run = _started(world, project, "shadow-bin")
    plan = _plan(world, project, "top-b")  # the normal parse said top-b
    assert _ended(run) == -9
    assert {c.name for c in plan.changes} == {"top-b", "dep-a"}


def test_a_run_of_stale_project_files_is_killed(world: NpmWorld, tmp_path: Path) -> None:
    """The project changed after the early copy: the plan resolves what is there now."""
    project = new_project(tmp_path / "p")
    run = _started(world, project, "top-b")
    now = '{"name": "app", "version": "1.0.0", "dependencies": {"lodahs": "1.0.0"}}\n'
    (project / "package.json").write_text(now)
    plan = _plan(world, project, "top-b")
    assert _ended(run) == -9
    assert plan.ecosystem is not None
    (pkg,) = (f for f in plan.ecosystem.files if f.name == "package.json")
    assert pkg.before == now
    assert "lodahs" in json.loads(pkg.after)["dependencies"]


@pytest.mark.parametrize(
    "args",
    [
        ["x", "--project", "p"],  # no --plan
        ["x", "--global", "--plan"],
        ["x", "--project", "p", "--plan", "--help"],
        ["--plan", "--project", "p", "--", "x"],
        ["x", "--userconfig=/tmp/evil", "--project", "p", "--plan"],
        ["--project", "p", "--plan"],  # no target
        ["x", "--plan", "--project"],  # no value
    ],
)
def test_only_the_plainest_words_start_anything(args: list[str]) -> None:
    assert _words("npm", args) is None


def test_a_refused_plan_leaves_no_run_behind(world: NpmWorld, tmp_path: Path) -> None:
    """The words pass the grammars, the normal path refuses: npm is killed, scratch removed."""
    home, tmp = tmp_path / "home", tmp_path / "tmp"
    tmp.mkdir()
    inside = new_project(home / "var/lib/aegis/managed/npm")
    env = {"AEGIS_HOME": str(home), "AEGIS_HOST_ID": "test-host", "PATH": "/usr/bin:/bin",
           "TMPDIR": str(tmp)}  # fmt: skip
    argv = [sys.executable, "-m", "aegis", "npm", "install", "top-b", "--registry", world.url,
            "--plan", "--project"]  # fmt: skip
    refused = subprocess.run([*argv, str(inside)], env=env, capture_output=True, text=True,
                             cwd=REPO, timeout=120, check=False)  # fmt: skip
    assert refused.returncode == 3
    assert "is the managed prefix" in refused.stderr
    ok = subprocess.run([*argv, str(new_project(tmp_path / "p"))], env=env, capture_output=True,
                        text=True, cwd=REPO, timeout=120, check=False)  # fmt: skip
    assert ok.returncode == 0, ok.stderr
    assert "request: r-" in ok.stdout  # printed in full before the fast exit
    assert os.listdir(tmp) == []
