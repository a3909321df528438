"""A throwaway root, a policy approving the test repository, and signing helpers."""

from __future__ import annotations

import json
import secrets
import shutil
import subprocess
import sys
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from aegis.config import Config, load_config
from aegis.devtools import testrepo
from aegis.model import Intent, Operation, Plan, Tool

from .conftest import REPO, Keys, base_env


def policy_text(repo: testrepo.Repo) -> str:
    """The default policy plus the test repository as an approved source."""
    default = (Path(__file__).resolve().parents[3] / "aegis/policy/default_policy.toml").read_text()
    return default + (
        f'\n[[sources]]\nname = "test"\nuri = "{repo.uri}"\nsuite = "{repo.suite}"\n'
        f'component = "main"\nsigner_fingerprint = "{repo.fingerprint}"\n'
        'packages = ["aegis-*"]\n'
    )


@dataclass
class Chain:
    """Everything one apply test needs."""

    home: Path
    repo: testrepo.Repo
    root: testrepo.AptRoot
    keys: Keys
    env: dict[str, str]

    @property
    def cfg(self) -> Config:
        return load_config(self.env)

    def plan(self, *targets: str, op: Operation = Operation.INSTALL) -> Plan:
        from aegis.ecosystems.apt.plan import analyze_apt

        intent = Intent(Tool.APT, op, tuple(targets), "tester", "2026-01-01T00:00:00Z")
        return analyze_apt(self.cfg, intent, datetime.now(UTC))

    def sign(
        self,
        plan: Plan,
        *,
        execution_id: str | None = None,
        request_id: str | None = None,
        argv: tuple[str, ...] | None = None,
        relabel: str | None = None,
    ) -> bytes:
        """Evaluate policy, approve with the approver key when required, sign."""
        from aegis.ecosystems.apt.argv import derive_argv
        from aegis.execute.apply import binding_from_result
        from aegis.model import plan_hash
        from aegis.policy.engine import evaluate
        from aegis.policy.result import result_hash
        from aegis.policy.run import load_policy
        from aegis.sign.approvals import build_approval
        from aegis.sign.execution_plan import build_execution_plan, execution_plan_bytes

        now = datetime.now(UTC)
        result = evaluate(plan, None, load_policy(self.cfg), now)
        assert result.decision.value != "deny", [f.rule_id for f in result.fired]
        approvals = ()
        if result.controls.approval.count:
            approvals = (
                build_approval(
                    plan_id=plan.plan_id,
                    plan_hash=plan_hash(plan),
                    policy_hash=result_hash(result),
                    approver_id="bob",
                    role="approver",
                    reason="test change",
                    now=now,
                    expires_in=timedelta(hours=1),
                    key=self.keys.approver,
                ),
            )
        binding = binding_from_result(result)
        if relabel is not None:  # a trusted signer lying about the decision
            from dataclasses import replace

            binding = replace(
                binding, decision=relabel, controls=(), required_approvals=0, required_roles=()
            )
            approvals = ()
        ep = build_execution_plan(
            execution_id=execution_id or secrets.token_hex(16),
            request_id=request_id,
            plan=plan,
            policy=binding,
            review_hash=None,
            approvals=approvals,
            argv=argv or derive_argv(plan, dpkg_root=self.cfg.dpkg_root),
            now=now,
            expires_in=timedelta(hours=1),
            signer_id="alice",
            key=self.keys.signer,
        )
        return execution_plan_bytes(ep)

    def installed(self) -> dict[str, str]:
        from aegis.ecosystems.apt.dpkg import dpkg_status

        return {
            k.split(":")[0]: v[0]
            for k, v in dpkg_status(self.root.root, {}).items()
            if v[1] == "installed"
        }


def make_chain(tmp_path: Path, key_set: Keys, repo: testrepo.Repo | None = None) -> Chain:
    repo = repo or testrepo.build_repo(tmp_path / "repo")
    root = testrepo.make_root(tmp_path / "root", [repo])
    testrepo.apt_update(root)
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    env = base_env(home, AEGIS_APT_CONFIG=str(root.apt_config), AEGIS_DPKG_ROOT=str(root.root))
    chain = Chain(home, repo, root, key_set, env)
    cfg = chain.cfg
    cfg.etc_dir.mkdir(parents=True, exist_ok=True)
    cfg.policy_path.write_text(policy_text(repo))
    return chain


AEGISCTL = [sys.executable, "-c", "from aegis.cli.aegisctl import main; main()"]
AEGIS = [sys.executable, "-m", "aegis"]


def apply_argv(execution_plan: Path, signer_pub: str, socket: Path, *extra: str) -> list[str]:
    """``aegisctl apply`` of ``execution_plan`` over ``socket``, trusting ``signer_pub``."""
    return [
        *AEGISCTL,
        "apply",
        "--execution-plan",
        str(execution_plan),
        "--public-key-hex",
        signer_pub,
        "--socket",
        str(socket),
        *extra,
    ]


def run_cli(
    argv: list[str], env: dict[str, str], ok: bool = True
) -> subprocess.CompletedProcess[str]:
    """Run a CLI as a subprocess; assert exit 0 when ``ok``."""
    proc = subprocess.run(
        argv, env=env, capture_output=True, text=True, cwd=REPO, timeout=120, check=False
    )
    if ok:
        assert proc.returncode == 0, (argv, proc.stdout, proc.stderr)
    return proc


def newest(directory: Path) -> Path:
    """The most recently written file of a directory."""
    return max(directory.glob("*.json"), key=lambda p: p.stat().st_mtime_ns)


def approve_and_sign(plan: Path, env: dict[str, str], keys: Path) -> None:
    """approve (bob) then sign (alice) through the CLIs."""
    run_cli(
        [
            *AEGISCTL,
            "approve",
            str(plan),
            "--reason",
            "test",
            "--key",
            str(keys / "bob.key"),
            "--approver",
            "bob",
        ],
        env,
    )
    run_cli(
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


@dataclass
class SignedRequest:
    """A request walked to ``signed`` through the real CLIs."""

    home: Path
    root: testrepo.AptRoot
    env: dict[str, str]
    request_id: str
    plan: Path
    execution_plan: Path
    signer_pub: str
    keys: Path


def signed_request(
    tmp_path: Path,
    target: str = "aegis-tool",
    preinstall: tuple[str, ...] = (),
    before_plan: Any = None,
    policy_extra: str = "",
) -> SignedRequest:
    """plan -> review --no-review -> policy -> approve -> sign, via the CLIs."""
    repo = testrepo.build_repo(tmp_path / "repo")
    root = testrepo.make_root(tmp_path / "root", [repo])
    testrepo.apt_update(root)
    if preinstall:
        testrepo.run_apt(root, "install", "-y", *preinstall)
    if before_plan is not None:
        before_plan(root)
    home = tmp_path / "home"
    etc = home / "etc/aegis"
    (etc / "keys/approvers").mkdir(parents=True)
    (etc / "policy.toml").write_text(policy_text(repo) + policy_extra)
    (etc / "aegis.toml").write_text(
        f'apt_config = "{root.apt_config}"\ndpkg_root = "{root.root}"\n'
    )
    env = base_env(home)
    keys = tmp_path / "keys"
    doc = json.loads(run_cli([*AEGIS, "apt", "install", target, "--plan", "--json"], env).stdout)
    plan = Path(doc["plan_path"])
    run_cli([*AEGIS, "review", str(plan), "--no-review"], env)
    assert run_cli([*AEGIS, "policy", str(plan)], env, ok=False).returncode in (0, 8)
    run_cli([*AEGISCTL, "keygen", "--out", str(keys), "--role", "signer", "--name", "alice"], env)
    run_cli([*AEGISCTL, "keygen", "--out", str(keys), "--role", "approver", "--name", "bob"], env)
    shutil.copyfile(keys / "bob.pub", etc / "keys/approvers/bob.pub")
    run_cli(
        [
            *AEGISCTL,
            "approve",
            str(plan),
            "--reason",
            "test",
            "--key",
            str(keys / "bob.key"),
            "--approver",
            "bob",
        ],
        env,
    )
    run_cli(
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
    ep = newest(home / "var/lib/aegis/execution-plans")
    return SignedRequest(
        home, root, env, doc["request_id"], plan, ep, (keys / "alice.pub").read_text().strip(), keys
    )
