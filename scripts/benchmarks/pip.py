"""pip figures (issue 13): planning and applying through Aegis vs raw pip, same index, same run.

A static PEP 503 index on loopback (``aegis.devtools.pypi_index``) serves a small set
(``bench-app`` and two dependencies). Each round uses fresh copies of one venv.

- ``plan``: ``aegis pip install bench-app --venv V --index-url U --plan`` (the CLI: analysis,
  artifact hashes and listing, the request row and the plan file) over pip's own
  ``pip install --dry-run --ignore-installed --report -`` of the same target. Goal <= 1.2x.
- ``apply``: ``aegis.execute.service.apply`` of a signed execution plan through aegisd (its
  checks, its own re-resolution, the run, drift, audit) over running the same derived argv
  directly into an identical venv. Goal: <= 1.3x + 0.3 s.

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
    from aegis.ecosystems import for_tool
    from aegis.ecosystems.pip.resolve import dry_run_argv, pip_env
    from aegis.model import Intent, Operation, Tool

    tmp.mkdir(parents=True)
    venvs = {}
    for side in ("raw", "aegis"):
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
    raw_argv = [a.replace(str(venvs["aegis"]), str(venvs["raw"])) for a in plan.command_preview]
    with aegisd(env, keys) as sock:
        raw_apply = timed(raw_argv, pip_env_, HERE)
        through = through_aegisd(cfg, env, ep_path, keys["spub"], sock)
    return raw_plan, aegis_plan, raw_apply, through


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
    raw_plan, aegis_plan, raw_apply, through = (
        statistics.median(c) for c in zip(*rows, strict=True)
    )
    return {
        "plan_raw_s": round(raw_plan, 3),
        "plan_aegis_s": round(aegis_plan, 3),
        "plan_ratio": round(aegis_plan / raw_plan, 2),
        "plan_goal_met": aegis_plan <= 1.2 * raw_plan,
        **apply_figures("apply", raw_apply, through, net=True),
    }


if __name__ == "__main__":
    print(run())
