"""The ecosystem seam: exhaustive dispatch, unknown tools fail closed, apt documents unchanged."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from typing import Any

import pytest

from aegis.codec import to_dict
from aegis.devtools import policy_plans
from aegis.devtools.sample_plans import sample_plan
from aegis.ecosystems import for_tool
from aegis.errors import InputError
from aegis.model import (
    Action,
    Artifact,
    EcosystemEvidence,
    Intent,
    Operation,
    PackageChange,
    Plan,
    Tool,
    plan_from_dict,
    plan_to_dict,
)
from aegis.policy.config import parse_policy_config
from aegis.policy.engine import evaluate
from aegis.policy.result import Effect

NOW = datetime.fromisoformat(policy_plans.NOW.replace("Z", "+00:00"))
SHA = "a" * 64


@pytest.mark.parametrize("tool", list(Tool))
def test_every_tool_has_its_ecosystem(tool: Tool) -> None:
    assert for_tool(tool).tool is tool


@pytest.mark.parametrize("bogus", ["gem", "npm", "", "APT"])
def test_an_unknown_tool_fails_closed(bogus: str) -> None:
    with pytest.raises(InputError):
        for_tool(bogus)  # type: ignore[arg-type]


def test_a_plan_of_an_unknown_tool_does_not_parse() -> None:
    data = plan_to_dict(sample_plan("plan-0123456789abcdef0123"))
    data["intent"] = {**data["intent"], "tool": "gem"}
    with pytest.raises(InputError):
        plan_from_dict(data)


def test_policy_denies_a_plan_whose_tool_no_ecosystem_knows() -> None:
    plan = sample_plan("plan-0123456789abcdef0123")
    bogus: Any = "gem"
    plan = replace(plan, intent=replace(plan.intent, tool=bogus))
    result = evaluate(plan, None, parse_policy_config(policy_plans.policy_toml()), NOW)
    assert result.decision is Effect.DENY
    assert [f.rule_id for f in result.fired] == ["ecosystem.unsupported"]


def test_apt_documents_carry_none_of_the_new_fields() -> None:
    data = plan_to_dict(sample_plan("plan-0123456789abcdef0123"))
    assert "ecosystem" not in data
    assert "location" not in data["intent"]
    assert "registry" not in data["intent"]
    assert plan_from_dict(data) == sample_plan("plan-0123456789abcdef0123")
    assert "registries" not in to_dict(parse_policy_config(policy_plans.policy_toml()))


def _pip_plan(owner: str = "0:0", **art: Any) -> Plan:
    base = sample_plan("plan-0123456789abcdef0123")
    a = Artifact(
        **{
            "name": "demo-lib",
            "version": "1.0",
            "kind": "wheel",
            "url": "https://files.example/demo_lib-1.0-py3-none-any.whl",
            "sha256": SHA,
            "size": 10,
            "requested": True,
            **art,
        }
    )
    index = "https://idx.example/simple/"
    intent = Intent(Tool.PIP, Operation.INSTALL, ("demo-lib",), "t", policy_plans.NOW,
                    location="venv:/srv/app/.venv", registry=index)  # fmt: skip
    change = PackageChange("demo-lib", "", Action.INSTALL, None, "1.0", "demo-lib", "1.0", None)
    eco = EcosystemEvidence("pip", intent.location or "", "https://idx.example/simple/", "pip",
                            (), (a,), owner=owner)  # fmt: skip
    return replace(base, intent=intent, changes=(change,), ecosystem=eco, repositories=())


def test_pip_argv_names_every_artifact_by_hash() -> None:
    argv = for_tool(Tool.PIP).derive_argv(_pip_plan(), None)  # type: ignore[arg-type]
    assert argv[0] == "/srv/app/.venv/bin/python"
    assert argv[-1] == f"demo-lib@https://files.example/demo_lib-1.0-py3-none-any.whl#sha256={SHA}"


def test_pip_runs_as_the_venv_owner_never_root() -> None:
    argv = for_tool(Tool.PIP).derive_argv(_pip_plan("1000:1001"), None)  # type: ignore[arg-type]
    assert argv[:5] == ("/usr/bin/setpriv", "--reuid=1000", "--regid=1001", "--clear-groups", "--")
    for bad in ("", "x:y", "1000", "-1:0", "0:0 --x"):
        assert for_tool(Tool.PIP).derive_argv(_pip_plan(bad), None) == ()  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "art",
    [
        {"sha256": ""},
        {"version": "1.1"},
        {"url": "https://files.example/x.whl --index-url http://evil"},
        {"url": "https://files.example/x.whl#sha256=" + "b" * 64},
        {"url": "file:///tmp/x.whl"},
        {"url": "https://files.example/$(id).whl"},
    ],
)
def test_pip_argv_is_empty_when_anything_is_off(art: dict[str, str]) -> None:
    assert for_tool(Tool.PIP).derive_argv(_pip_plan(**art), None) == ()  # type: ignore[arg-type]


def _npm_plan(**art: Any) -> Plan:
    from aegis.model import ProjectFile

    base = sample_plan("plan-0123456789abcdef0123")
    registry = "https://registry.example/"
    a = Artifact(
        **{
            "name": "left-pad",
            "version": "1.3.0",
            "kind": "tarball",
            "url": f"{registry}left-pad/-/left-pad-1.3.0.tgz",
            "sha256": "",
            "size": 0,
            "requested": True,
            "integrity": "sha512-" + "A" * 86 + "==",
            **art,
        }
    )
    intent = Intent(Tool.NPM, Operation.INSTALL, ("left-pad",), "t", policy_plans.NOW,
                    location="project:/srv/app", registry=registry)  # fmt: skip
    change = PackageChange("left-pad", "", Action.INSTALL, None, "1.3.0", "left-pad", "1.3.0",
                           registry)  # fmt: skip
    files = (ProjectFile("package.json", "{}", "{}"), ProjectFile("package-lock.json", None, "{}"))
    eco = EcosystemEvidence("npm", "project:/srv/app", registry, "npm", (), (a,), files)
    return replace(base, intent=intent, changes=(change,), ecosystem=eco, repositories=())


def test_npm_argv_is_npm_ci_without_scripts_or_user_config() -> None:
    from aegis.config import load_config

    argv = for_tool(Tool.NPM).derive_argv(_npm_plan(), load_config({"AEGIS_HOME": "/x"}))
    assert argv[:3] == ("/usr/bin/npm", "ci", "--ignore-scripts")
    assert argv[argv.index("--userconfig") + 1] == "/dev/null"
    assert argv[-2:] == ("--prefix", "/srv/app")


@pytest.mark.parametrize(
    "art",
    [
        {"integrity": ""},
        {"integrity": "sha1-abc"},
        {"url": "https://elsewhere.example/left-pad/-/left-pad-1.3.0.tgz"},
    ],
)
def test_npm_argv_is_empty_when_anything_is_off(art: dict[str, str]) -> None:
    from aegis.config import load_config

    plan = _npm_plan(**art)
    assert for_tool(Tool.NPM).derive_argv(plan, load_config({"AEGIS_HOME": "/x"})) == ()


def test_every_plan_field_is_core_or_one_ecosystems_evidence() -> None:
    """A new Plan field must say which it is (docs/ecosystems.md "The plan: core and evidence")."""
    from dataclasses import fields

    from aegis.model import APT_EVIDENCE, PLAN_CORE, Plan

    names = {f.name for f in fields(Plan)}
    assert not PLAN_CORE & APT_EVIDENCE
    assert names == PLAN_CORE | APT_EVIDENCE | {"ecosystem"}
    change = {f.name for f in fields(PackageChange)}
    assert {"name", "action", "current_version", "candidate_version", "integrity"} <= change
