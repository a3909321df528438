"""npm figures (issue 13): planning and applying through Aegis vs raw npm, same registry, same run.

A static registry on loopback (``aegis.devtools.npm_registry``) serves ``bench-app`` and two
dependencies. Each round uses fresh projects.

- ``plan``: ``aegis npm install bench-app --project P --registry U --plan`` (the CLI: a scratch
  copy, the resolution, tarball integrity and manifests, the request row and the plan file)
  over npm's own ``npm install --package-lock-only --ignore-scripts`` of the same target in
  an identical project. Goal <= 1.2x.
- ``apply``: ``aegis.execute.service.apply`` of a signed execution plan through aegisd (its
  checks, its own re-resolution, the files, ``npm ci --ignore-scripts``, drift, audit; the
  ``npm ci`` starts beside the re-resolution and waits at aegisd's gate before its command
  until every check passed, aegis/execute/npm_gate.py: its start-up is in the figure, beside
  the re-resolution) over the goal's baseline: what an agent would have run without Aegis,
  npm's ordinary ``npm install bench-app --ignore-scripts`` in an identical fresh project
  with a fresh cache, same registry (resolution included: aegisd's apply resolves again
  before it installs). Both runs have npm's audit and funding requests off, as aegisd's
  own npm runs do.
  Goal: <= 1.3x + 0.3 s.
- ``apply_vs_locked_*`` (reference only, not the goal): the same apply over ``npm ci`` run
  directly on an identical project holding the signed lockfile, i.e. the install step alone.

Medians over ROUNDS.
"""

from __future__ import annotations

import os
import shutil
import statistics
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import HERE, aegisd, apply_figures, env_for, keyset, sign, through_aegisd, timed

ROUNDS = 3


def _project(path: Path) -> Path:
    path.mkdir(parents=True)
    (path / "package.json").write_text('{"name": "bench", "version": "1.0.0"}\n')
    return path


def _round(tmp: Path, url: str, keys: dict[str, Any]) -> tuple[float, ...]:
    from aegis.config import load_config
    from aegis.early.npm_tool import NO_GLOBAL_CONFIG, NPM, lock_only_argv, npm_env
    from aegis.ecosystems import for_tool
    from aegis.model import Intent, Operation, Tool

    raw, aegis_p, raw_ci, raw_inst = (
        _project(tmp / n) for n in ("raw", "aegis", "raw-ci", "raw-install")
    )
    home = tmp / "home"
    env = env_for(home)
    cfg = load_config(env)
    cfg.etc_dir.mkdir(parents=True, exist_ok=True)
    policy = (HERE / "aegis/policy/default_policy.toml").read_text()
    cfg.policy_path.write_text(
        policy + f'\n[[registries]]\nname = "bench"\necosystem = "npm"\nurl = "{url}"\n'
    )
    nenv = npm_env(str(tmp))
    raw_plan = timed(lock_only_argv(url, str(tmp / "c1"), ("bench-app",)), nenv, raw)
    aegis_plan = timed(
        [sys.executable, "-m", "aegis", "npm", "install", "bench-app", "--project",
         str(aegis_p), "--registry", url, "--plan"],
        env, HERE,
    )  # fmt: skip
    intent = Intent(Tool.NPM, Operation.INSTALL, ("bench-app",), "bench", "2026-01-01T00:00:00Z",
                    location=f"project:{aegis_p}", registry=url)  # fmt: skip
    plan = for_tool(Tool.NPM).plan(cfg, intent, datetime.now(UTC))
    assert plan.ecosystem is not None
    for f in plan.ecosystem.files:
        (raw_ci / f.name).write_text(f.after)
    ep_path = tmp / "ep.json"
    ep_path.write_bytes(sign(cfg, plan, keys["signer"], keys["approver"]))
    ci_argv = [a if a != str(aegis_p) else str(raw_ci) for a in plan.command_preview]
    ci_argv[ci_argv.index("--cache") + 1] = str(tmp / "c2")
    install_argv = [NPM, "install", "--ignore-scripts", "--no-audit", "--no-fund", "--userconfig",
                    os.devnull, "--globalconfig", NO_GLOBAL_CONFIG, "--registry", url, "--cache",
                    str(tmp / "c3"), "--", "bench-app"]  # fmt: skip
    with aegisd(env, keys) as sock:
        raw_locked = timed(ci_argv, nenv, raw_ci)
        raw_install = timed(install_argv, nenv, raw_inst)
        through = through_aegisd(cfg, env, ep_path, keys["spub"], sock)
    return raw_plan, aegis_plan, raw_install, raw_locked, through


def run() -> dict[str, Any]:
    """Medians of both sides of both figures, their ratios and whether the goals hold."""
    from aegis.devtools.npm_registry import NpmRegistry

    base = Path(tempfile.mkdtemp(prefix="aegis-bench-npm-"))
    try:
        reg = NpmRegistry(base / "registry")
        reg.add("bench-core", "1.0.0")
        reg.add("bench-util", "1.0.0", dependencies={"bench-core": "^1.0.0"})
        reg.add("bench-app", "1.0.0", dependencies={"bench-util": "^1.0.0"})
        keys = keyset(base / "keys")
        rows = []
        with reg.serve() as url:
            for i in range(ROUNDS):
                rows.append(_round(base / f"r{i}", url, keys))
    finally:
        shutil.rmtree(base, ignore_errors=True)
    raw_plan, aegis_plan, raw_install, raw_locked, through = (
        statistics.median(c) for c in zip(*rows, strict=True)
    )
    return {
        "plan_raw_s": round(raw_plan, 3),
        "plan_aegis_s": round(aegis_plan, 3),
        "plan_ratio": round(aegis_plan / raw_plan, 2),
        "plan_goal_met": aegis_plan <= 1.2 * raw_plan,
        **apply_figures("apply", raw_install, through, net=True),
        "apply_vs_locked_raw_s": round(raw_locked, 3),
        "apply_vs_locked_ratio": round(through / raw_locked, 2),
    }


if __name__ == "__main__":
    print(run())
