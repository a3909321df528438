"""npm held at aegisd's gate (aegis/execute/npm_gate.py): its command runs only once let go."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from aegis.early.npm_tool import NO_GLOBAL_CONFIG, NPM, npm_env
from aegis.execute.npm_gate import GATE_JS, STOPPED, HeldRun, hold
from tests.integration.ecosystems.npm.npm_fixtures import needs_npm, new_project

pytestmark = needs_npm

NODE = "/usr/bin/node"
SETTLE_S = 1.5
"""Long enough for npm to have loaded and reached the gate on a loaded two-core host."""


def _pkg_set(project: Path) -> tuple[str, ...]:
    # A command with a visible effect and no registry: it rewrites package.json.
    return (NPM, "pkg", "set", "description=ran", "--userconfig", os.devnull,
            "--globalconfig", NO_GLOBAL_CONFIG, "--prefix", str(project))  # fmt: skip


def _held(argv: tuple[str, ...], tmp_path: Path) -> HeldRun:
    run = hold(argv, npm_env(str(tmp_path)), out_dir=tmp_path / "runs", name="x")
    assert run is not None
    return run


def _description(project: Path) -> object:
    return json.loads((project / "package.json").read_text()).get("description")


def test_npm_held_at_the_gate_runs_its_command_only_once_let_go(tmp_path: Path) -> None:
    project = new_project(tmp_path / "app")
    run = _held(_pkg_set(project), tmp_path)
    time.sleep(SETTLE_S)
    assert _description(project) is None
    result = run.go(60)
    assert result is not None
    assert result.exit_status == 0, result.stderr_tail
    assert _description(project) == "ran"
    assert run.cancel() is None  # let go once: nothing left to stop


def test_a_cancelled_npm_never_runs_its_command_and_leaves_no_output(tmp_path: Path) -> None:
    """A refused plan: npm is stopped before its command, however far it got."""
    for settle in (0.0, SETTLE_S):
        project = new_project(tmp_path / f"app{settle}")
        run = _held(_pkg_set(project), tmp_path)
        time.sleep(settle)
        assert run.cancel() in (STOPPED, -signal.SIGKILL)
        assert _description(project) is None
        assert list((tmp_path / "runs").iterdir()) == []
        assert run.go(60) is None  # never afterwards


def test_npm_exits_before_its_command_when_aegisd_goes_away(tmp_path: Path) -> None:
    """aegisd dead: the gate's pipe reads end-of-file and npm exits 125."""
    project = new_project(tmp_path / "app")
    run = _held(_pkg_set(project), tmp_path)
    assert run._started is not None
    proc = run._started.proc
    os.close(run._gate)  # what aegisd's death does to the write end
    run._gate = os.open(os.devnull, os.O_RDONLY)  # cancel() closes something harmless
    assert proc.wait(timeout=60) == STOPPED
    assert _description(project) is None
    run.cancel()


def _fake_npm(root: Path, marker: Path, *, known: bool) -> str:
    """An npm-like tree whose bin loads a command (writing ``marker``) without lib/npm.js."""
    (root / "bin").mkdir(parents=True)
    (root / "lib/commands").mkdir(parents=True)
    (root / "lib/cli").mkdir()
    (root / "lib/commands/pkg.js").write_text(
        f"require('fs').writeFileSync({json.dumps(str(marker))}, 'ran')\n"
    )
    if known:  # looks like npm 7+, but runs a command around npm.exec
        (root / "lib/npm.js").write_text("module.exports = class Npm { exec () {} }\n")
        (root / "lib/cli/entry.js").write_text(
            "const Npm = require('../npm.js')\nnpm.exec(command, args)\n"
        )
    cli = root / "bin/npm-cli.js"
    cli.write_text("require('../lib/commands/pkg.js')\n")
    return str(cli)


def test_an_npm_layout_the_gate_does_not_know_waits_before_any_of_it_runs(
    tmp_path: Path,
) -> None:
    marker = tmp_path / "ran"
    cli = _fake_npm(tmp_path / "npm", marker, known=False)
    run = _held((NODE, cli), tmp_path)
    time.sleep(SETTLE_S)
    assert not marker.exists()
    assert run.cancel() in (STOPPED, -signal.SIGKILL)
    assert not marker.exists()
    run = _held((NODE, cli), tmp_path)
    result = run.go(60)
    assert result is not None
    assert result.exit_status == 0, result.stderr_tail
    assert marker.exists()


def test_a_command_loading_before_the_gate_is_in_place_stops_npm(tmp_path: Path) -> None:
    """Fail closed: a command module that would run ungated stops npm before it runs."""
    marker = tmp_path / "ran"
    run = _held((NODE, _fake_npm(tmp_path / "npm", marker, known=True)), tmp_path)
    deadline = time.monotonic() + 30
    while run._started is not None and run._started.proc.poll() is None:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert run.cancel() == STOPPED
    assert not marker.exists()


@pytest.mark.parametrize("gate", ["", "2", "x"])
def test_npm_without_a_usable_gate_never_runs_its_command(tmp_path: Path, gate: str) -> None:
    project = new_project(tmp_path / "app")
    env = {**npm_env(str(tmp_path)), "NODE_OPTIONS": f'--require "{GATE_JS}"',
           "AEGIS_NPM_GATE_FD": gate}  # fmt: skip
    done = subprocess.run(_pkg_set(project), check=False, env=env, capture_output=True, timeout=60)
    assert done.returncode == STOPPED
    assert _description(project) is None


def test_a_replayed_requests_held_run_leaves_the_first_runs_output_alone(tmp_path: Path) -> None:
    """Two requests with one execution id: the second's held run (refused, then stopped)
    neither truncates nor removes the output the first run wrote under that id's name."""
    project = new_project(tmp_path / "app")
    runs = tmp_path / "runs"
    runs.mkdir()
    first = {runs / "x.stdout": b"the first run's output\n", runs / "x.stderr": b"its errors\n"}
    for path, data in first.items():
        path.write_bytes(data)
    for settle in (0.0, SETTLE_S):
        replayed = _held(_pkg_set(project), tmp_path)
        time.sleep(settle)
        assert replayed.cancel() in (STOPPED, -signal.SIGKILL)
        assert {p: p.read_bytes() for p in first} == first
    assert sorted(p.name for p in runs.iterdir()) == ["x.stderr", "x.stdout"]
