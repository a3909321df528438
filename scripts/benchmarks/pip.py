"""pip figures (issue 13): planning and applying through Aegis vs raw pip, same index, same run.

A static PEP 503 index on loopback (``aegis.devtools.pypi_index``) serves a small set
(``bench-app`` and two dependencies). Each round uses fresh copies of one venv.

- ``plan``: ``aegis pip install bench-app --venv V --index-url U --plan`` (the CLI: analysis,
  artifact hashes and listing, the request row and the plan file) over pip's own
  ``pip install --dry-run --ignore-installed --report -`` of the same target. Goal <= 1.2x.
- ``apply``: ``aegis.execute.service.apply`` of a signed execution plan through aegisd (its
  checks, its own re-resolution, the run, drift, audit) over the goal's baseline: what an
  agent would have run without Aegis, pip's ordinary ``pip install bench-app`` with the same
  index option into an identical fresh venv, fresh cache (resolution included: aegisd's
  apply resolves again before it installs). Goal: <= 1.3x + 0.3 s.
- ``apply_vs_locked_*`` (reference only, not the goal): the same apply over the derived
  argv (``--no-deps --require-hashes`` of the signed set) run directly into an identical
  venv, i.e. the install step alone.

Medians over ROUNDS.
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import HERE, aegisd, apply_figures, env_for, keyset, sign, through_aegisd, timed

ROUNDS = 3


def _round(tmp: Path, template: Path, url: str, keys: dict[str, Any]) -> tuple[float, ...]:
    from aegis.config import load_config
    from aegis.early.pip_tool import dry_run_argv, pip_env
    from aegis.ecosystems import for_tool
    from aegis.model import Intent, Operation, Tool

    tmp.mkdir(parents=True)
    venvs = {}
    for side in ("raw", "aegis", "raw-locked", "raw-install"):
        venvs[side] = tmp / side
        subprocess.run(["cp", "-a", str(template), str(venvs[side])], check=True)
    home = tmp / "home"
    env = env_for(home)
    cfg = load_config(env)
    cfg.etc_dir.mkdir(parents=True, exist_ok=True)
    policy = (HERE / "aegis/policy/default_policy.toml").read_text()
    cfg.policy_path.write_text(
        policy + f'\n[[registries]]\nname = "bench"\necosystem = "pip"\nurl = "{url}"\n'
    )
    pip_env_ = {**pip_env(str(tmp)), "PATH": os.environ.get("PATH", "/usr/bin:/bin")}
    raw_plan = timed(dry_run_argv(str(venvs["raw"]), url, ("bench-app",)), pip_env_, HERE)
    aegis_plan = timed(
        [sys.executable, "-m", "aegis", "pip", "install", "bench-app", "--venv",
         str(venvs["aegis"]), "--index-url", url, "--plan"],
        env, HERE,
    )  # fmt: skip
    intent = Intent(Tool.PIP, Operation.INSTALL, ("bench-app",), "bench", "2026-01-01T00:00:00Z",
                    location=f"venv:{venvs['aegis']}", registry=url)  # fmt: skip
    plan = for_tool(Tool.PIP).plan(cfg, intent, datetime.now(UTC))
    ep_path = tmp / "ep.json"
    ep_path.write_bytes(sign(cfg, plan, keys["signer"], keys["approver"]))
    locked_argv = [
        a.replace(str(venvs["aegis"]), str(venvs["raw-locked"])) for a in plan.command_preview
    ]
    # The ordinary install; its own HOME, so a fresh cache (the version check would go online).
    install_env = {**pip_env_, "HOME": str(tmp / "pip-home")}
    install_argv = [str(venvs["raw-install"] / "bin/python"), "-m", "pip", "install",
                    "--disable-pip-version-check", "--index-url", url, "bench-app"]  # fmt: skip
    with aegisd(env, keys) as sock:
        raw_locked = timed(locked_argv, pip_env_, HERE)
        raw_install = timed(install_argv, install_env, HERE)
        through = through_aegisd(cfg, env, ep_path, keys["spub"], sock)
    return raw_plan, aegis_plan, raw_install, raw_locked, through


def run() -> dict[str, Any]:
    """Medians of both sides of both figures, their ratios and whether the goals hold."""
    from aegis.devtools.pypi_index import PypiIndex

    base = Path(tempfile.mkdtemp(prefix="aegis-bench-pip-"))
    try:
        idx = PypiIndex(base / "index")
        idx.add_wheel("bench-core", "1.0")
        idx.add_wheel("bench-util", "1.0", requires=("bench-core",))
        idx.add_wheel("bench-app", "1.0", requires=("bench-util", "bench-core"))
        template = base / "venv"
        subprocess.run(["/usr/bin/python3", "-m", "venv", str(template)], check=True)
        keys = keyset(base / "keys")
        rows = []
        with idx.serve() as url:
            for i in range(ROUNDS):
                rows.append(_round(base / f"r{i}", template, url, keys))
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
