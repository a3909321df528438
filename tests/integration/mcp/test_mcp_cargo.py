"""The MCP plan tool reaches the ecosystems registered after pip and npm: a Cargo crate from
a real local registry, planned through the server equals the CLI's ``--json``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mcp import ClientSession
from mcp.types import CallToolResult

from tests.integration.ecosystems.cargo import cargo_fixtures
from tests.integration.mcp.test_mcp_ecosystems import _comparable
from tests.integration.mcp.test_mcp_server import cli_json, error_text, run_session, server_env


def test_a_cargo_plan_through_the_tool_equals_the_cli_and_needs_a_source(tmp_path: Path) -> None:
    reg = cargo_fixtures.build_registry(tmp_path / "registry")
    home = tmp_path / "home"
    (home / "etc/aegis").mkdir(parents=True)
    url = f"file://{reg.root.resolve()}/"
    (home / "etc/aegis/policy.toml").write_text(cargo_fixtures.policy_with_registry(url))
    env = server_env(home, None)
    env["AEGIS_CARGO"] = cargo_fixtures.CARGO or "/usr/bin/cargo"

    async def body(client: ClientSession) -> dict[str, CallToolResult]:
        args: dict[str, Any] = {"ecosystem": "cargo", "targets": ["hello-bin"]}
        return {
            "plan": await client.call_tool("plan", {**args, "registry": str(reg.root)}),
            "no-source": await client.call_tool("plan", args),
            "where": await client.call_tool(
                "plan", {**args, "registry": str(reg.root), "where": "/usr/local"}
            ),
        }

    out = run_session(env, body)
    assert not out["plan"].is_error, out["plan"].content
    doc = out["plan"].structured_content or {}
    assert doc["plan"]["intent"]["registry"] == url
    assert {c["name"] for c in doc["plan"]["changes"]} >= {"hello-bin"}
    assert out["no-source"].is_error
    assert "--registry-dir DIR" in error_text(out["no-source"])
    assert out["where"].is_error  # the managed root only: no place is taken
    code, cli = cli_json(
        env, "cargo", "install", "hello-bin", "--registry-dir", str(reg.root), "--plan"
    )
    assert code == 0
    assert _comparable(cli) == _comparable(doc)
