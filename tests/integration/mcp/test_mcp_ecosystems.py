"""The MCP plan tool reaches every ecosystem the CLI plans, through the same seam dispatch.

Real pip against a PEP 503 index on loopback into a real venv, real npm against a static
registry on loopback into a project; the server is ``python -m aegis mcp`` driven by the
SDK's own client, and each plan equals what the CLI prints with ``--json``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from mcp import ClientSession
from mcp.types import CallToolResult

from aegis import api_agent
from aegis.model import Tool
from tests.integration.ecosystems.npm import npm_fixtures
from tests.integration.ecosystems.pip import pip_fixtures
from tests.integration.mcp.test_mcp_server import cli_json, error_text, run_session, server_env

pytestmark = npm_fixtures.needs_npm


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """A pip index and an npm registry on loopback, a venv, a project, a policy for both."""
    base = tmp_path_factory.mktemp("mcp-eco")
    venv = pip_fixtures.make_venv(base / "venv")
    project = npm_fixtures.new_project(base / "project")
    (base / "target").mkdir()
    home = base / "home"
    home.mkdir()
    for pip_world in pip_fixtures.serve(base / "index", venv):
        for npm_world in npm_fixtures.serve(base / "registry"):
            policy = pip_fixtures.policy_with_index(pip_world.url)
            policy += '\n[[registries]]\nname = "npm-local"\necosystem = "npm"\n'
            policy += f'url = "{npm_world.url}"\n'
            (home / "etc/aegis").mkdir(parents=True)
            (home / "etc/aegis/policy.toml").write_text(policy)
            yield {
                "env": server_env(home, None),
                "venv": str(venv),
                "project": str(project),
                "target": str(base / "target"),
                "index": pip_world.url,
                "registry": npm_world.url,
            }


def _comparable(doc: dict[str, Any]) -> dict[str, Any]:
    """A plan document without what differs between two plannings of the same change."""
    plan = dict(doc["plan"])
    for key in ("plan_id", "created_at", "expires_at"):
        plan.pop(key, None)
    plan["intent"] = {k: v for k, v in plan["intent"].items() if k != "requested_at"}
    return {"plan": plan, "untrusted": doc["untrusted"]}


def test_every_ecosystem_the_cli_plans_is_a_plan_tool_choice(world: dict[str, Any]) -> None:
    async def body(client: ClientSession) -> Any:
        return (await client.list_tools()).tools

    (plan,) = [t for t in run_session(world["env"], body) if t.name == "plan"]
    props = plan.input_schema["properties"]
    # Read from the registration (for_tool), not from a list kept beside it.
    assert props["ecosystem"]["enum"] == sorted(t.value for t in Tool)
    assert set(props) == {"targets", "verb", "ecosystem", "where", "registry", "contents"}
    assert plan.input_schema["required"] == ["targets"]
    for name, spec in api_agent.plannable().items():
        assert set(spec.verbs) <= set(props["verb"]["enum"])
        if spec.where:
            assert f"{name}: {spec.where}" in props["where"]["description"]


def test_pip_and_npm_plans_equal_the_cli_json(world: dict[str, Any]) -> None:
    pip_args = {"where": world["venv"], "registry": world["index"]}
    npm_args = {"where": world["project"], "registry": world["registry"]}

    async def body(client: ClientSession) -> dict[str, CallToolResult]:
        out = {
            "pip": await client.call_tool(
                "plan", {"ecosystem": "pip", "targets": ["demo-app"], **pip_args}
            ),
            "npm": await client.call_tool(
                "plan", {"ecosystem": "npm", "targets": ["top-b@2.0.0"], **npm_args}
            ),
            "pip-target": await client.call_tool(
                "plan",
                {
                    "ecosystem": "pip",
                    "targets": ["demo-lib"],
                    "where": f"target:{world['target']}",
                    "registry": world["index"],
                },
            ),
            "npm-global": await client.call_tool(
                "plan",
                {
                    "ecosystem": "npm",
                    "targets": ["dep-a"],
                    "where": "global",
                    "registry": world["registry"],
                },
            ),
        }
        request = (out["pip"].structured_content or {})["request_id"]
        out["review"] = await client.call_tool("review", {"plan": request, "no_review": True})
        out["policy"] = await client.call_tool("policy", {"plan": request})
        return out

    out = run_session(world["env"], body)
    for name in ("pip", "npm", "pip-target", "npm-global", "review", "policy"):
        assert not out[name].is_error, (name, out[name].content)
    pip_doc = out["pip"].structured_content or {}
    npm_doc = out["npm"].structured_content or {}
    assert pip_doc["plan"]["intent"]["location"] == f"venv:{Path(world['venv']).resolve()}"
    assert [c["name"] for c in pip_doc["plan"]["changes"]] == ["demo-app", "demo-lib"]
    assert npm_doc["plan"]["intent"]["registry"] == world["registry"]
    assert {c["name"] for c in npm_doc["plan"]["changes"]} == {"top-b", "dep-a"}
    assert Path(pip_doc["plan_path"]).is_file()
    # The policy tool decides the pip plan by its request id, as for apt.
    fired = (out["policy"].structured_content or {})["result"]["fired"]
    assert "pip.install" in {f["rule_id"] for f in fired}

    code, cli_pip = cli_json(
        world["env"], "pip", "install", "demo-app", "--venv", world["venv"],
        "--index-url", world["index"], "--plan",
    )  # fmt: skip
    assert code == 0
    code, cli_npm = cli_json(
        world["env"], "npm", "install", "top-b@2.0.0", "--project", world["project"],
        "--registry", world["registry"], "--plan",
    )  # fmt: skip
    assert code == 0
    assert _comparable(cli_pip) == _comparable(pip_doc)
    assert _comparable(cli_npm) == _comparable(npm_doc)
    code, cli_global = cli_json(
        world["env"], "npm", "install", "dep-a", "--global", "--registry", world["registry"],
        "--plan",
    )  # fmt: skip
    assert code == 0
    global_doc = out["npm-global"].structured_content or {}
    assert global_doc["plan"]["intent"]["location"].endswith("/var/lib/aegis/managed/npm")
    assert _comparable(cli_global) == _comparable(global_doc)
    code, cli_target = cli_json(
        world["env"], "pip", "install", "demo-lib", "--target", world["target"], "--index-url",
        world["index"], "--plan",
    )  # fmt: skip
    assert code == 0
    target_doc = out["pip-target"].structured_content or {}
    assert target_doc["plan"]["intent"]["location"] == f"target:{world['target']}"
    assert _comparable(cli_target) == _comparable(target_doc)


REFUSED = [
    ({"ecosystem": "brew", "targets": ["x"]}, "unknown ecosystem 'brew'"),
    ({"ecosystem": "pip", "targets": ["demo-app"]}, "--venv DIR is required"),
    ({"ecosystem": "npm", "targets": ["top-b"]}, "--project DIR is required"),
    ({"ecosystem": "pip", "targets": ["demo-app"], "where": "/usr"}, "not a virtual environment"),
    (
        {"ecosystem": "pip", "targets": ["x"], "where": "target:/usr/lib/python3"},
        "system directory",
    ),
    (
        {"ecosystem": "pip", "targets": ["x"], "where": "managed:../../etc"},
        "bad managed venv name",
    ),
    ({"ecosystem": "pip", "verb": "uninstall", "targets": ["x"]}, "does not plan pip"),
    ({"ecosystem": "pip", "targets": ["x @ https://evil.example/x.whl"]}, "exit 3"),
    ({"ecosystem": "npm", "targets": ["git+https://evil.example/x.git"]}, "exit 3"),
    ({"ecosystem": "npm", "targets": ["--registry=http://evil.example/"]}, "exit 3"),
    ({"ecosystem": "pip", "targets": ["x"], "registry": "file:///srv/wheels"}, "exit 3"),
    ({"ecosystem": "pip", "targets": ["x"], "contents": False}, "contents=false is refused"),
    ({"ecosystem": "apt", "targets": ["aegis-tool"], "where": "/srv"}, "no place"),
    ({"ecosystem": "apt", "targets": ["aegis-tool"], "registry": "https://x/"}, "no registry"),
]


def test_refusals_are_tool_errors_and_record_nothing(world: dict[str, Any]) -> None:
    async def body(client: ClientSession) -> tuple[CallToolResult, ...]:
        before = await client.call_tool("requests", {})
        results = [await client.call_tool("plan", args) for args, _ in REFUSED]
        return before, *results, await client.call_tool("requests", {})

    before, *results, after = run_session(world["env"], body)
    for (args, expected), result in zip(REFUSED, results, strict=True):
        text = error_text(result)
        assert expected in text, (args, text)
        assert "exit 3 (input rejected)" in text, (args, text)
    # Refused before any work: none of them recorded a request.
    listed = [[r["id"] for r in (x.structured_content or {})["requests"]] for x in (before, after)]
    assert listed[0] == listed[1]
