"""An agent (a member of group aegis) plans Go changes but cannot apply them; an outsider
cannot even record a plan.

The member runs the real go planner as uid 65534 on a host layout: its plans land in the
store and nothing changes in its module or the managed GOBIN. Its apply reaches aegisd
(the socket is world-connectable here) and is refused as ``refused:peer``: only root and
the apply group submit.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from aegis.devtools.go_proxy import build_proxy
from tests.integration.execute.conftest import Daemon, base_env

from .conftest import MEMBER, Host

pytestmark = pytest.mark.root
_SUBMIT = (
    "import sys\n"
    "from aegis.execute.protocol import Request, call\n"
    "print(call(sys.argv[1], Request(op='apply', execution_plan='{}')).refusal)\n"
)


def test_an_agent_plans_go_changes_but_cannot_apply_them(host: Host) -> None:
    if shutil.which("go") is None and os.environ.get("CI") != "true":
        pytest.skip("go is not installed (scripts/test installs golang-go)")
    proxy = build_proxy(host.root / "proxy")
    app = host.root / "app"
    app.mkdir()
    (app / "go.mod").write_text("module example.com/app\n\ngo 1.18\n")
    for p in (app, app / "go.mod"):
        os.chown(p, MEMBER, MEMBER)
    got = host.member("go", "get", "example.com/hello@latest", "--module", str(app),
                      "--proxy", proxy.url, "--plan", "--json")  # fmt: skip
    assert got.returncode == 0, got.stderr
    doc = json.loads(got.stdout)
    assert Path(doc["plan_path"]).is_file()
    assert doc["plan"]["command_preview"][-1] == "example.com/hello@v1.1.0"
    assert (app / "go.mod").read_text() == "module example.com/app\n\ngo 1.18\n"
    inst = host.member("go", "install", "example.com/hello@v1.0.0", "--proxy", proxy.url,
                       "--plan")  # fmt: skip
    assert inst.returncode == 0, inst.stderr
    assert not (host.state / "go/bin/hello").exists()
    outsider = host.run_as(MEMBER, "go", "get", "example.com/hello@v1.0.0", "--module", str(app),
                           "--proxy", proxy.url, "--plan")  # fmt: skip
    assert outsider.returncode == 7, outsider.stderr  # not in group aegis: the join hint
    assert f"adduser <user> {host.gid}" in outsider.stderr

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
