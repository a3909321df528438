"""``aegis mcp`` as the agent's own user: a member of group aegis plans, an outsider gets 7.

The server is the public copy of Aegis run through ``setpriv`` (as the other host-layout
tests run the CLI), driven by the MCP SDK's own client over stdio. Planning runs real apt
in a world-readable throwaway root, as the agent would on a host.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client

from aegis.devtools import testrepo
from aegis.mcp_server import TOOLS

from .conftest import MEMBER, SYSTEM_PYTHON, Host


@pytest.fixture(scope="module")
def apt_world() -> Iterator[testrepo.AptRoot]:
    base = Path(tempfile.mkdtemp(prefix="aegis-mcp-apt-", dir="/tmp"))
    try:
        repo = testrepo.build_repo(base / "repo")
        root = testrepo.make_root(base / "root", [repo])
        testrepo.apt_update(root)
        for path in [base, *base.rglob("*")]:
            if not path.is_symlink():
                path.chmod(0o755 if path.is_dir() else 0o644)
        yield root
    finally:
        shutil.rmtree(base, ignore_errors=True)


def _params(host: Host, uid: int | None, groups: tuple[int, ...]) -> StdioServerParameters:
    env = {
        **host.env,
        "PATH": "/usr/sbin:/usr/bin:/sbin:/bin",
        "PYTHONPATH": f"{host.public / 'site'}:{host.public / 'src'}",
        "PYTHONDONTWRITEBYTECODE": "1",
        "HOME": "/",
    }
    argv = [SYSTEM_PYTHON, "-m", "aegis", "mcp"]
    if uid is None:
        return StdioServerParameters(command=argv[0], args=argv[1:], env=env, cwd="/")
    group_opt = f"--groups={','.join(map(str, groups))}" if groups else "--clear-groups"
    args = [f"--reuid={uid}", f"--regid={uid}", group_opt, *argv]
    return StdioServerParameters(command="setpriv", args=args, env=env, cwd="/")


def _session(params: StdioServerParameters, calls: list[tuple[str, dict[str, Any]]]) -> list[Any]:
    async def main() -> list[Any]:
        with open(os.devnull, "w") as errlog:
            async with (
                stdio_client(params, errlog=errlog) as (read, write),
                ClientSession(read, write) as client,
            ):
                await client.initialize()
                out: list[Any] = [await client.list_tools()]
                for name, args in calls:
                    result = await client.call_tool(name, args)
                    out.append(result)
                    if name == "plan" and not result.is_error:
                        plan = result.structured_content["plan_path"]
                        calls_after = [
                            ("review", {"plan": plan, "no_review": True}),
                            ("policy", {"plan": plan}),
                            ("show", {"request": result.structured_content["request_id"]}),
                        ]
                        out.extend([await client.call_tool(n, a) for n, a in calls_after])
                return out

    return anyio.run(main)


def _policy(host: Host, root: testrepo.AptRoot) -> None:
    repo = root.repos[0]
    host.etc.joinpath("policy.toml").write_text(
        'format = "aegis.policy-config/1"\nruleset = "aegis.rules/1"\n\n[[sources]]\n'
        f'name = "test"\nuri = "{repo.uri}"\nsuite = "{repo.suite}"\n'
        f'component = "{repo.component}"\nsigner_fingerprint = "{repo.fingerprint}"\n'
        "distribution = true\n"
    )
    host.etc.joinpath("policy.toml").chmod(0o644)


def test_member_plans_reviews_decides_and_reads(host: Host, apt_world: testrepo.AptRoot) -> None:
    _policy(host, apt_world)
    host.env["AEGIS_APT_CONFIG"] = str(apt_world.apt_config)
    out = _session(
        _params(host, MEMBER, (host.gid,)),
        [("plan", {"targets": ["aegis-tool"], "contents": False}), ("requests", {})],
    )
    tools, planned, reviewed, decided, shown, listed = out
    assert {t.name for t in tools.tools} == set(TOOLS)
    for result in (planned, reviewed, decided, shown, listed):
        assert not result.is_error, result.content
    last = planned.structured_content["plan"]["command_preview"][-1]  # the verified .deb
    assert Path(last).name.startswith("aegis-tool_2.0_all_"), last
    assert reviewed.structured_content["review"]["status"] == "skipped"
    assert decided.structured_content["result"]["decision"] in (
        "allow",
        "allow-with-snapshot",
        "require-approval",
    )
    assert shown.structured_content["request"]["state"] in ("policy", "denied")
    assert [r["id"] for r in listed.structured_content["requests"]] == [
        planned.structured_content["request_id"]
    ]
    # Written as the member, group aegis: the same files the CLI would write.
    plan_file = Path(planned.structured_content["plan_path"])
    assert plan_file.stat().st_uid == MEMBER
    assert plan_file.stat().st_gid == host.gid


def test_outsider_gets_exit_7_from_every_tool(host: Host, apt_world: testrepo.AptRoot) -> None:
    host.env["AEGIS_APT_CONFIG"] = str(apt_world.apt_config)
    calls: list[tuple[str, dict[str, Any]]] = [
        ("requests", {}),
        ("show", {"request": "r-0123456789abcdef"}),
        ("plan", {"targets": ["aegis-tool"], "contents": False}),
    ]
    out = _session(_params(host, MEMBER, ()), calls)
    for (name, _), result in zip(calls, out[1:], strict=True):
        assert result.is_error, (name, result)
        text = result.content[0].text
        assert "exit 7 (environment)" in text, (name, text)
        assert f"adduser <user> {host.gid}" in text, (name, text)
    doctor = _session(_params(host, MEMBER, ()), [("doctor", {})])[1]
    assert doctor.meta["aegis/exit_code"] == 7
    checks = {c["name"]: c["status"] for c in doctor.structured_content["checks"]}
    assert checks["group"] == "fail"


def test_root_session_lists_the_same_tools(host: Host) -> None:
    tools = _session(_params(host, None, ()), [])[0]
    assert {t.name for t in tools.tools} == set(TOOLS)
