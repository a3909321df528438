"""pip end to end through the real CLIs and a real aegisd: plan, review, policy, approve,
sign (which re-resolves), apply, audit verify, then ``aegisctl rollback`` through the chain."""

from __future__ import annotations

import json
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from .chain_helpers import AEGIS, AEGISCTL, apply_argv, run_cli
from .conftest import Daemon, base_env

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.integration.ecosystems.pip.pip_fixtures import (
    PipWorld,
    make_venv,
    policy_with_index,
    serve,
)


@pytest.fixture
def world(tmp_path: Path) -> Iterator[PipWorld]:
    yield from serve(tmp_path / "index", make_venv(tmp_path / "venv"))


def _walk(plan: Path, env: dict[str, str], keys: Path) -> Path:
    """review (skipped) -> policy -> approve (bob) -> sign (alice); the new execution plan."""
    run_cli([*AEGIS, "review", str(plan), "--no-review"], env)
    policy = run_cli([*AEGIS, "policy", str(plan)], env, ok=False)
    assert policy.returncode in (0, 8), policy.stderr
    run_cli([*AEGISCTL, "approve", str(plan), "--reason", "e2e", "--key",
             str(keys / "bob.key"), "--approver", "bob"], env)  # fmt: skip
    signed = run_cli([*AEGISCTL, "sign", "--plan", str(plan), "--key", str(keys / "alice.key"),
                      "--signer", "alice", "--json"], env)  # fmt: skip
    return Path(json.loads(signed.stdout)["path"])


def test_pip_chain_applies_audits_and_rolls_back(
    world: PipWorld, tmp_path: Path, sock_dir: Path
) -> None:
    home = tmp_path / "home"
    etc = home / "etc/aegis"
    (etc / "keys/approvers").mkdir(parents=True)
    (etc / "policy.toml").write_text(policy_with_index(world.url))
    env = base_env(home)
    keys = tmp_path / "keys"
    run_cli([*AEGISCTL, "keygen", "--out", str(keys), "--role", "signer", "--name", "alice"], env)
    run_cli([*AEGISCTL, "keygen", "--out", str(keys), "--role", "approver", "--name", "bob"], env)
    shutil.copyfile(keys / "bob.pub", etc / "keys/approvers/bob.pub")
    spub = (keys / "alice.pub").read_text().strip()
    site = next(world.venv.glob("lib/python3*/site-packages"))

    out = run_cli([*AEGIS, "pip", "install", "demo-app", "--venv", str(world.venv),
                   "--index-url", world.url, "--plan", "--json"], env).stdout  # fmt: skip
    doc = json.loads(out)
    ep = _walk(Path(doc["plan_path"]), env, keys)
    daemon = Daemon(
        home, sock_dir / "aegisd.sock", env, ["--public-key-hex", spub], tmp_path / "aegisd.log"
    ).start()
    try:
        applied = json.loads(run_cli(apply_argv(ep, spub, daemon.socket, "--json"), env).stdout)
        assert applied["answer"]["ok"] is True
        assert applied["request_state"] == "audited"
        assert (site / "demo_app-2.0.dist-info").is_dir()
        run_cli([*AEGIS, "audit", "verify"], env)

        rolled = run_cli([*AEGISCTL, "rollback", doc["request_id"], "--json"], env).stdout
        new_request = json.loads(rolled)["request_id"]
        shown = json.loads(run_cli([*AEGIS, "show", new_request, "--json"], env).stdout)
        plan_path = next(Path(a["path"]) for a in shown["artifacts"] if a["kind"] == "plan")
        ep2 = _walk(plan_path, env, keys)
        undone = json.loads(run_cli(apply_argv(ep2, spub, daemon.socket, "--json"), env).stdout)
        assert undone["answer"]["ok"] is True
        assert not list(site.glob("demo_*"))
        run_cli([*AEGIS, "audit", "verify"], env)
    finally:
        daemon.stop()
