"""Shared steps of the apt-parity scenarios: plan through the real CLI, judge with the
real policy engine, and ask the host's real apt what it makes of the same repository.

Every scenario copies a signed test repository, changes it the way the apt test it is
rebuilt from does, and compares Aegis's verdict with apt's (docs/apt-trust.md).
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import subprocess
from datetime import UTC, datetime
from pathlib import Path

from click.testing import CliRunner

from aegis.cli.aegis import cli as aegis_cli
from aegis.config import Config, load_config
from aegis.devtools import testrepo
from aegis.model import Plan, plan_from_dict
from aegis.policy.engine import evaluate
from aegis.policy.result import PolicyResult
from aegis.policy.run import load_policy

_TAIL = '\n[review]\nrequired = false\n\n[rules."vuln.db-missing"]\nenabled = false\n'


def copy_repo(repo: testrepo.Repo, dest: Path) -> testrepo.Repo:
    """A private copy of ``repo`` the scenario may break."""
    shutil.copytree(repo.path, dest)
    return dataclasses.replace(repo, path=dest, uri=dest.as_uri())


def dist(repo: testrepo.Repo) -> Path:
    return repo.path / "dists" / repo.suite


def config(home: Path, root: testrepo.AptRoot) -> Config:
    return load_config(
        {
            "AEGIS_HOME": str(home),
            "AEGIS_APT_CONFIG": str(root.apt_config),
            "AEGIS_HOST_ID": "test-host",
        }
    )


def approve(cfg: Config, *repos: testrepo.Repo, extra: str = "") -> None:
    """A policy file approving ``repos`` as distribution sources, review not required."""
    text = 'format = "aegis.policy-config/1"\nruleset = "aegis.rules/1"\nname = "t"\n\n'
    for i, repo in enumerate(repos):
        text += (
            f'[[sources]]\nname = "t{i}"\nuri = "{repo.uri}"\nsuite = "{repo.suite}"\n'
            f'component = "{repo.component}"\nsigner_fingerprint = "{repo.fingerprint}"\n'
            f"distribution = true\n{extra}\n"
        )
    cfg.policy_path.parent.mkdir(parents=True, exist_ok=True)
    cfg.policy_path.write_text(text + _TAIL, encoding="utf-8")


def cli_plan(cfg: Config, root: testrepo.AptRoot, *args: str) -> Plan:
    """``aegis apt <args> --plan --json`` through the CLI; the recorded plan."""
    env = {
        "AEGIS_HOME": str(cfg.home or ""),
        "AEGIS_APT_CONFIG": str(root.apt_config),
        "AEGIS_HOST_ID": "test-host",
    }
    res = CliRunner().invoke(
        aegis_cli, ["apt", *args, "--plan", "--json", "--no-contents"], env=env
    )
    assert res.exit_code in (0, 3), res.output
    doc = json.loads(res.stdout)
    return plan_from_dict(doc["plan"])


def decide(cfg: Config, plan: Plan) -> PolicyResult:
    return evaluate(plan, None, load_policy(cfg), datetime.now(UTC).replace(microsecond=0))


def fired(result: PolicyResult) -> dict[str, str]:
    return {f.rule_id: f.reason for f in result.fired}


def apt_update(root: testrepo.AptRoot) -> str:
    """Output of the host's ``apt-get update`` in ``root`` (never raises)."""
    proc = subprocess.run(
        ["apt-get", "update"],
        env=testrepo.apt_env(root),
        capture_output=True,
        text=True,
        check=False,
    )
    return proc.stdout + proc.stderr + f"\nexit {proc.returncode}"


def apt_refused(output: str) -> bool:
    return "\nE: " in "\n" + output or "W: GPG error" in output or "\nErr:" in "\n" + output
