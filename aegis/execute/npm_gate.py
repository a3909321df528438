"""A signed npm run started while aegisd still checks its plan, held before its command.

A small ``npm ci`` spends most of its time starting: node, then npm's own modules (about
0.4 s of 0.5 s on a two-core host), then the command itself (about 0.1 s). aegisd's
re-resolution runs npm for as long first. So once the signature and the other cheap checks
passed, aegisd starts the run it would run afterwards, its exact argv and environment, with
``npm_gate.js`` preloaded (``NODE_OPTIONS=--require``): npm boots, loads its modules and
configuration, and then waits on a pipe before its command runs. After every check passed,
the ``started`` record and the signed project files, :meth:`HeldRun.go` lets it go; any
refusal stops it before its command (:meth:`HeldRun.cancel`); when aegisd dies the pipe
closes and npm exits 125 without running its command. The gate fails closed: an npm
whose layout it does not know waits before any of npm runs (only node's start is saved),
and npm's command or its installer loading before the gate is in place stops npm.

Only the argv aegisd derives itself from the signed plan is started this way (its cache
in aegisd's own directory, its ``--prefix`` the signed place, checked to be an npm
project); the argv check after the re-derivation still compares the signed argv with the
derived plan's. A run that is gone before it was let go never ran its command: aegisd runs
the argv the ordinary way then (:func:`aegis.execute.runner.run_argv`).

Example::

    held = HeldRun.start(cfg, ep, env, out_dir=runs, name=xid)   # None: not an npm run
    ...                                                          # every check, started
    result = held.go(timeout_s) or runner.run_argv(...)          # None: it went away
    held.cancel()                                                # always; no-op once gone
"""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import time
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from aegis.early.npm_tool import NPM
from aegis.ecosystems import for_tool
from aegis.ecosystems.npm.names import project_dir
from aegis.errors import AegisError
from aegis.execute import runner
from aegis.model import Tool

if TYPE_CHECKING:
    from aegis.config import Config
    from aegis.sign.execution_plan import ExecutionPlan

GATE_JS = Path(__file__).with_name("npm_gate.js")
GO = b"g"
STOPPED = 125
"""npm's exit status when the gate stopped it before its command (npm_gate.js)."""


def _gate_options() -> str | None:
    """``NODE_OPTIONS`` that preload the gate; None when it cannot be trusted or quoted."""
    path = str(GATE_JS)
    if any(c in path for c in '"\\\n'):
        return None
    try:
        runner.check_regular_file(GATE_JS)
        runner.check_root_owned(GATE_JS)  # aegisd runs npm as root: never a user's script
    except AegisError:
        return None
    return f'--require "{path}"'


def _is_project(directory: str) -> bool:
    """An existing directory (not a link) with a package.json that is a file."""
    p = Path(directory)
    return not p.is_symlink() and p.is_dir() and (p / "package.json").is_file()


class HeldRun:
    """npm started with the gate closed; let go once (:meth:`go`) or cancelled."""

    def __init__(
        self, started: runner.Started, gate: int, argv: tuple[str, ...], env: dict[str, str]
    ) -> None:
        """Hold ``started`` (its gate's write end ``gate``): the signed ``argv`` in ``env``."""
        self._started: runner.Started | None = started
        self._gate = gate
        self.argv = argv
        self.env = env

    @classmethod
    def start(
        cls, cfg: Config, ep: ExecutionPlan, env: Mapping[str, str], *, out_dir: Path, name: str
    ) -> HeldRun | None:
        """Start ``ep``'s npm run held at the gate; None when this plan's run is not held.

        Held only for an npm plan whose signed argv is the one aegisd derives itself from
        the signed plan, into an existing project (the managed prefix runs the plain way).
        """
        if ep.intent.tool is not Tool.NPM or not ep.argv or ep.argv[0] != NPM:
            return None
        try:
            if for_tool(Tool.NPM).derive_argv(ep.plan, cfg) != ep.argv:
                return None
            location = ep.plan.intent.location or ""
            if not location.startswith("project:") or not _is_project(project_dir(location)):
                return None
        except (AegisError, OSError):
            return None
        return hold(ep.argv, env, out_dir=out_dir, name=name)

    def go(self, timeout_s: float) -> runner.RunResult | None:
        """Open the gate and wait for npm; None when it was gone first (it never ran).

        Its duration counts from now, as a run started now would.
        """
        started, self._started = self._started, None
        if started is None:
            return None
        gate, self._gate = self._gate, -1
        try:
            if started.proc.poll() is not None:
                _remove(started)
                return None
            started.began = time.monotonic()
            os.write(gate, GO)
        except BrokenPipeError:
            started.proc.wait()
            _remove(started)
            return None
        finally:
            os.close(gate)
        return runner.finish(started, timeout_s)

    def cancel(self) -> int | None:
        """Stop npm before its command: close the gate, kill what is left, remove its output.

        npm may not have reached the gate yet (or may hang reading a planted file); it has
        run nothing of its command either way, so it is killed rather than waited for.

        Returns:
            npm's exit status (None when it was let go or cancelled before).
        """
        started, self._started = self._started, None
        if started is None:
            return None
        os.close(self._gate)
        self._gate = -1
        if started.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(started.proc.pid, signal.SIGKILL)
        started.proc.wait()
        _remove(started)
        return started.proc.returncode


def hold(
    argv: tuple[str, ...], env: Mapping[str, str], *, out_dir: Path, name: str
) -> HeldRun | None:
    """Start ``argv`` (an npm run) in ``env`` with the gate closed; None when it cannot be."""
    options = _gate_options()
    if options is None:
        return None
    try:
        read_end, write_end = os.pipe()
    except OSError:
        return None
    try:
        gated = {**env, "NODE_OPTIONS": options, "AEGIS_NPM_GATE_FD": str(read_end)}
        # Its own output names: a held run starts before the ledger has made the execution
        # id single-use, so a replayed request's held run (refused later, its output
        # removed) must never open, truncate or remove the output of the run that won.
        own = f"{name}.held-{secrets.token_hex(8)}"
        started = runner.start(argv, env=gated, out_dir=out_dir, name=own, pass_fds=(read_end,))
    except (AegisError, OSError):
        os.close(write_end)
        return None  # run the plain way after the checks, which reports what is wrong
    finally:
        os.close(read_end)
    return HeldRun(started, write_end, argv, dict(env))


def _remove(started: runner.Started) -> None:
    for p in (started.out_path, started.err_path):
        with contextlib.suppress(OSError):
            p.unlink()
