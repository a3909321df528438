"""``aegis mcp``: serve Aegis's agent tools over the Model Context Protocol (stdio).

Thin: the server is :mod:`aegis.mcp_server`, its tools call :mod:`aegis.api_agent`.
"""

from __future__ import annotations

import click


@click.command(
    "mcp",
    help=(
        "Serve Aegis as MCP tools on stdin/stdout, for an agent runtime to start.\n\n"
        "Tools: plan, review, policy, show, requests, explain_rule, guard_check, doctor,\n"
        "audit_verify, sources; each returns what the CLI prints with --json. It runs as\n"
        "the calling user with that user's rights; no tool signs, approves or applies.\n"
        "It exits 0 when the client closes stdin. See docs/agents.md.\n\n"
        "Example:\n\n"
        "  aegis mcp\n\n"
        "  aegis mcp --list-tools --json"
    ),
)
@click.option("--list-tools", is_flag=True, help="Print the tools and their schemas; serve none.")
@click.option("--json", "as_json", is_flag=True, help="With --list-tools: print them as JSON.")
def mcp_cmd(list_tools: bool, as_json: bool) -> None:
    """Serve, or list the tools."""
    from aegis.errors import EnvironmentFailure

    try:
        from aegis import mcp_server
    except ImportError as e:
        raise EnvironmentFailure(
            f"the MCP SDK is not installed ({e.name})",
            hint="reinstall Aegis (packaging/install-native.sh); it depends on mcp>=2.3",
        ) from e
    if not list_tools:
        mcp_server.serve()
        return
    tools = mcp_server.tool_listing()
    if as_json:
        from aegis.cli.render import emit_json

        emit_json({"tools": tools})
        return
    from aegis.cli.render import print_table

    print_table(
        "aegis mcp tools",
        ["tool", "read-only", "description"],
        [
            [
                t["name"],
                "yes" if t.get("annotations", {}).get("readOnlyHint") else "no",
                mcp_server.TOOLS[t["name"]],
            ]
            for t in tools
        ],
    )
