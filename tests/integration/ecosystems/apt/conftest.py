"""Helpers for live analyzer tests: a Config pointing at a throwaway apt root."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest

from aegis.config import Config, load_config
from aegis.devtools import testrepo
from aegis.model import Intent, Operation, Plan, Tool

NOW = datetime.now(UTC).replace(microsecond=0)


def cfg_for(root: testrepo.AptRoot, home: Path) -> Config:
    return load_config(
        {
            "AEGIS_HOME": str(home),
            "AEGIS_APT_CONFIG": str(root.apt_config),
            "AEGIS_HOST_ID": "test-host",
        }
    )


def write_policy(cfg: Config, sources: list[dict[str, object]]) -> None:
    """A policy file approving ``sources`` ([[sources]] of aegis/policy/config.py)."""
    lines = ['format = "aegis.policy-config/1"', 'ruleset = "aegis.rules/1"', ""]
    for s in sources:
        lines.append("[[sources]]")
        for k, v in s.items():
            if isinstance(v, bool):
                lines.append(f"{k} = {'true' if v else 'false'}")
            elif isinstance(v, list):
                lines.append(f"{k} = [{', '.join(repr(x).replace(chr(39), chr(34)) for x in v)}]")
            else:
                lines.append(f'{k} = "{v}"')
        lines.append("")
    cfg.policy_path.parent.mkdir(parents=True, exist_ok=True)
    cfg.policy_path.write_text("\n".join(lines))


def approve(
    cfg: Config,
    repo: testrepo.Repo,
    *,
    distribution: bool = True,
    packages: list[str] | None = None,
    name: str = "test",
) -> dict[str, object]:
    entry: dict[str, object] = {
        "name": name,
        "uri": repo.uri,
        "suite": repo.suite,
        "component": repo.component,
        "signer_fingerprint": repo.fingerprint,
    }
    if distribution:
        entry["distribution"] = True
    else:
        entry["packages"] = packages or []
    return entry


Analyze = Callable[..., Plan]


@pytest.fixture
def analyze(apt_root: testrepo.AptRoot, aegis_home: Path) -> Analyze:
    """analyze(op, *targets, contents=False, root=apt_root) -> Plan."""
    from aegis.ecosystems.apt.plan import analyze_apt

    def run(
        op: str,
        *targets: str,
        contents: bool = False,
        root: testrepo.AptRoot | None = None,
        cfg: Config | None = None,
    ) -> Plan:
        c = cfg or cfg_for(root or apt_root, aegis_home)
        intent = Intent(Tool.APT, Operation(op), targets, "tester", "2026-01-01T00:00:00Z")
        # The time of the call: the session's test repository may be built minutes after
        # this module was imported, and a Release Date ahead by more than the clock skew
        # (60 s) is a problem.
        now = datetime.now(UTC).replace(microsecond=0)
        return analyze_apt(c, intent, now=now, inspect_contents=contents)

    return run
