"""An agent (a member of group aegis, not of the apply group) plans a crate but cannot apply it.

The member runs the public copy of ``aegis cargo install --plan`` against a world-readable
local registry with real cargo (its ``--version`` is evidence): the plan and request are
recorded. Root signs that plan; the member's ``aegisctl apply`` cannot open aegisd's socket
(``root:<apply group>`` 0660), and even through a socket anyone may open aegisd refuses the
peer; nothing is installed or staged. An outsider cannot even plan (exit 7).
"""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from aegis.config import load_config
from aegis.ecosystems import for_tool
from aegis.model import Tool, plan_from_dict
from aegis.sign import keys
from tests.integration.ecosystems.cargo.cargo_fixtures import CARGO, MAIN, needs_cargo
from tests.integration.ecosystems.cargo.cargo_fixtures import policy_with_registry as policy_text
from tests.integration.execute.conftest import _RUNNING, Daemon, sign_plan

from .conftest import MEMBER, OTHER_MEMBER, Host

pytestmark = [pytest.mark.root, needs_cargo]
AEGISCTL = ("-c", "from aegis.cli.aegisctl import main; main()")


@pytest.fixture
def public_base() -> Iterator[Path]:
    base = Path(tempfile.mkdtemp(prefix="aegis-cargo-agent-", dir="/tmp"))
    base.chmod(0o755)
    yield base
    for daemon in list(_RUNNING):
        daemon.stop()
    shutil.rmtree(base, ignore_errors=True)


def _free(gid: int) -> bool:
    import grp

    try:
        grp.getgrgid(gid)
    except KeyError:
        return True
    return False


def _world_readable(base: Path) -> None:
    for path in [base, *base.rglob("*")]:
        path.chmod(0o755 if path.is_dir() or path.name == "cargo" else 0o644)


def test_an_agent_plans_a_crate_but_cannot_apply_it(host: Host, public_base: Path) -> None:
    from aegis.devtools.cargo_registry import CargoRegistry

    reg = CargoRegistry(public_base / "registry")
    reg.add("tiny-dep", "1.0.0", lib="pub fn one() -> u32 { 1 }\n")
    reg.add("hello-bin", "1.0.0", deps={"tiny-dep": "1.0.0"}, main=MAIN)
    cargo = CARGO or "/usr/bin/cargo"
    if not cargo.startswith("/usr/"):  # rustup's toolchain under /root: a readable copy
        (public_base / "bin").mkdir()
        cargo = str(shutil.copy2(cargo, public_base / "bin" / "cargo"))
    _world_readable(public_base)
    url = f"file://{reg.root}/"
    (host.etc / "policy.toml").write_text(policy_text(url))
    (host.etc / "aegis.toml").write_text(f'cargo = "{cargo}"\n')
    apply_gid = next(g for g in range(host.gid + 1, host.gid + 100) if _free(g))
    (host.etc / "aegisd.toml").write_text(f'apply_group = "{apply_gid}"\n')

    planned = host.member("cargo", "install", "hello-bin", "--registry-dir", str(reg.root),
                          "--plan", "--json")  # fmt: skip
    assert planned.returncode == 0, planned.stderr
    doc = json.loads(planned.stdout)
    assert doc["request_id"]
    plan = plan_from_dict(doc["plan"])
    assert plan.failure is None
    assert plan.ecosystem is not None
    assert plan.ecosystem.tool_version.startswith("cargo ")
    no_plan = host.member("cargo", "install", "hello-bin", "--registry-dir", str(reg.root))
    assert no_plan.returncode == 3
    outsider = host.run_as(OTHER_MEMBER, "cargo", "install", "hello-bin", "--registry-dir",
                           str(reg.root), "--plan")  # fmt: skip
    assert outsider.returncode == 7, outsider.stderr

    cfg = load_config(host.env)
    signer_path, signer_pub = keys.write_keypair(public_base / "keys", "signer")
    ep = public_base / "ep.json"
    ep.write_bytes(sign_plan(cfg, plan, keys.load_signing_key(signer_path),
                             argv=for_tool(Tool.CARGO).derive_argv(plan, cfg)))  # fmt: skip
    ep.chmod(0o644)
    sock = public_base / "run" / "aegisd.sock"
    d = Daemon(public_base, sock, host.env, ["--public-key-hex", signer_pub],
               public_base / "aegisd.log").start()  # fmt: skip
    apply_argv = ("apply", "--execution-plan", str(ep), "--public-key-hex", signer_pub,
                  "--socket", str(sock))  # fmt: skip
    denied = host.run_as(MEMBER, *apply_argv, groups=(host.gid,), python=AEGISCTL)
    assert denied.returncode != 0
    assert "not readable" in denied.stderr  # the socket is root:<apply group> 0660
    # Even through a socket anyone may open, aegisd itself refuses the peer: the member
    # talks to it directly, past aegisctl's own store checks.
    d.stop()
    (host.etc / "aegisd.toml").write_text(f'apply_group = "{apply_gid}"\nsocket_mode = "0666"\n')
    d.start()
    direct = (
        "import sys; from aegis.execute.protocol import Request, call; "
        "a = call(sys.argv[1], Request(op='apply', execution_plan=open(sys.argv[2]).read()), "
        "timeout_s=30); print(a.ok, a.refusal, a.message)"
    )
    refused = host.run_as(MEMBER, sock.as_posix(), str(ep), groups=(host.gid,),
                          python=("-c", direct))  # fmt: skip
    assert refused.stdout.startswith("False"), refused.stdout + refused.stderr
    assert f"neither root nor in group {apply_gid}" in refused.stdout
    assert not (cfg.cargo_root / "bin/hello-bin").exists()
    assert not list(cfg.aegisd_dir.glob("cargo"))  # aegisd staged nothing
