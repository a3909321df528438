"""An agent (a member of group aegis) plans npm changes into its project and the managed
prefix and pip changes into a --target directory and a managed venv, but cannot apply them.

The member runs the real npm and pip planners as uid 65534 on a host layout; its plans land
in the store, the managed prefix and venv are not created and the target stays empty. Its apply
reaches aegisd (the socket is world-connectable here) and is refused as ``refused:peer``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tests.integration.ecosystems.npm.npm_fixtures import needs_npm, serve
from tests.integration.ecosystems.pip import pip_fixtures
from tests.integration.execute.conftest import Daemon, base_env

from .conftest import MEMBER, Host
from .test_go_member import _SUBMIT

pytestmark = [pytest.mark.root, needs_npm]


def test_an_agent_plans_into_managed_places_but_cannot_apply(host: Host) -> None:
    for world in serve(host.root / "registry"):
        # A project of its own: the CLI starts npm before click loads, ends without teardown.
        project = host.root / "app"
        project.mkdir()
        (project / "package.json").write_text('{"name": "app", "version": "1.0.0"}\n')
        for p in (project, project / "package.json"):
            os.chown(p, MEMBER, MEMBER)
        own = host.member("npm", "install", "top-b", "--project", str(project), "--registry",
                          world.url, "--plan")  # fmt: skip
        assert own.returncode == 0, own.stderr
        assert "request: r-" in own.stdout
        assert sorted(p.name for p in project.iterdir()) == ["package.json"]
        got = host.member("npm", "install", "top-b", "--global", "--registry", world.url,
                          "--plan", "--json")  # fmt: skip
        assert got.returncode == 0, got.stderr
        doc = json.loads(got.stdout)
        assert Path(doc["plan_path"]).is_file()
        assert doc["plan"]["intent"]["location"] == f"global:{host.state}/managed/npm"
        assert doc["plan"]["command_preview"][:2] == ["/usr/bin/npm", "ci"]
        assert not (host.state / "managed").exists()  # only aegisd's apply creates it
    target = host.root / "app-lib"
    target.mkdir()
    os.chown(target, MEMBER, MEMBER)
    idx = pip_fixtures.build_index(host.root / "index")
    with idx.serve() as url:
        pip = host.member("pip", "install", "demo-lib", "--target", str(target),
                          "--index-url", url, "--plan", "--json")  # fmt: skip
        managed = host.member("pip", "install", "demo-lib", "--managed", "tools",
                              "--index-url", url, "--plan", "--json")  # fmt: skip
    assert managed.returncode == 0, managed.stderr
    venv_plan = json.loads(managed.stdout)["plan"]
    assert venv_plan["intent"]["location"] == f"managed:{host.state}/managed/python/tools"
    assert venv_plan["ecosystem"]["owner"] == "0:0"  # aegisd creates it, root's alone
    assert not (host.state / "managed").exists()  # planning never creates the venv
    assert pip.returncode == 0, pip.stderr
    plan = json.loads(pip.stdout)["plan"]
    assert plan["ecosystem"]["owner"] == f"{MEMBER}:{MEMBER}"  # the apply runs as the owner
    assert plan["command_preview"][0] == "/usr/bin/setpriv"
    assert list(target.iterdir()) == []

    (host.etc / "aegisd.toml").write_text('apply_group = "users"\nsocket_mode = "0666"\n')
    sock = host.root / "aegisd.sock"
    env = {**host.env, "PYTHONPATH": base_env(host.root)["PYTHONPATH"]}
    d = Daemon(host.root, sock, env, [], host.root / "aegisd.log").start()
    try:
        refused = host.run_as(MEMBER, str(sock), groups=(host.gid,), python=("-c", _SUBMIT))
    finally:
        d.stop()
    assert refused.returncode == 0, refused.stderr
    assert refused.stdout.strip() == "refused:peer"
