"""The end-to-end chain through the real CLIs and a real aegisd over its socket.

plan -> review (--no-review) -> policy -> approve -> sign -> apply through aegisd ->
the package really installed (dpkg --root ... -l) -> audit verified -> request audited.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from aegis.devtools import testrepo

from .chain_helpers import apply_argv, policy_text
from .conftest import REPO, Daemon, base_env

pytestmark = pytest.mark.root

AEGISCTL = [sys.executable, "-c", "from aegis.cli.aegisctl import main; main()"]
AEGIS = [sys.executable, "-m", "aegis"]


def _run(argv: list[str], env: dict[str, str], ok: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        argv, env=env, capture_output=True, text=True, cwd=REPO, timeout=120, check=False
    )
    if ok:
        assert proc.returncode == 0, (argv, proc.stdout, proc.stderr)
    return proc


def test_full_chain_installs_audits_and_refuses_replay(tmp_path: Path, sock_dir: Path) -> None:
    repo = testrepo.build_repo(tmp_path / "repo")
    root = testrepo.make_root(tmp_path / "root", [repo])
    testrepo.apt_update(root)
    home = tmp_path / "home"
    etc = home / "etc/aegis"
    (etc / "keys/approvers").mkdir(parents=True)
    (etc / "policy.toml").write_text(policy_text(repo))
    (etc / "aegis.toml").write_text(
        f'apt_config = "{root.apt_config}"\ndpkg_root = "{root.root}"\n'
    )
    env = base_env(home)
    keys = tmp_path / "keys"

    out = _run([*AEGIS, "apt", "install", "aegis-tool", "--plan", "--json"], env).stdout
    plan_doc = json.loads(out)
    plan = Path(plan_doc["plan_path"])
    request_id = plan_doc["request_id"]
    _run([*AEGIS, "review", str(plan), "--no-review"], env)
    policy = _run([*AEGIS, "policy", str(plan)], env, ok=False)
    assert policy.returncode in (0, 8), policy.stderr
    _run([*AEGISCTL, "keygen", "--out", str(keys), "--role", "signer", "--name", "alice"], env)
    _run([*AEGISCTL, "keygen", "--out", str(keys), "--role", "approver", "--name", "bob"], env)
    shutil.copyfile(keys / "bob.pub", etc / "keys/approvers/bob.pub")
    spub = (keys / "alice.pub").read_text().strip()
    _run(
        [
            *AEGISCTL,
            "approve",
            str(plan),
            "--reason",
            "e2e",
            "--key",
            str(keys / "bob.key"),
            "--approver",
            "bob",
        ],
        env,
    )
    _run(
        [
            *AEGISCTL,
            "sign",
            "--plan",
            str(plan),
            "--key",
            str(keys / "alice.key"),
            "--signer",
            "alice",
        ],
        env,
    )
    [ep] = sorted((home / "var/lib/aegis/execution-plans").glob("*.json"))

    daemon = Daemon(
        home, sock_dir / "aegisd.sock", env, ["--public-key-hex", spub], tmp_path / "aegisd.log"
    ).start()
    try:
        applied = _run(
            apply_argv(ep, spub, daemon.socket, "--json"),
            env,
        )
        result = json.loads(applied.stdout)
        assert result["answer"]["ok"] is True
        assert result["request_state"] == "audited"
        listing = subprocess.run(
            ["dpkg", f"--root={root.root}", "-l", "aegis-tool"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        assert "ii  aegis-tool" in listing
        _run([*AEGIS, "audit", "verify"], env)
        shown = json.loads(_run([*AEGIS, "show", request_id, "--json"], env).stdout)
        assert json.dumps(shown).count('"audited"') >= 1
        # The same execution plan again: refused (replay), exit 6, nothing runs.
        again = _run(
            apply_argv(ep, spub, daemon.socket),
            env,
            ok=False,
        )
        assert again.returncode == 6, again.stderr
    finally:
        daemon.stop()
