"""Fleets through Ansible: cohorts, one cohort approval, a canary then batches.

Four local hosts, each its own AEGIS_HOME, throwaway root and real aegisd on its own
socket, driven by ansible-core (local connection per host). h3 has aegis-base 1.0
installed, so its delta (an upgrade) is another cohort than the others' (an install):
the one cohort approval must be refused there, and that failure in batch 2 must stop
batch 3. aegisd itself refuses the same approval when a signer embeds it anyway.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from aegis.devtools import fleet_hosts, testrepo
from aegis.sign import keys
from tests.conftest import require_root

from .chain_helpers import AEGIS, AEGISCTL, run_cli
from .conftest import REPO, Daemon, base_env

pytestmark = [pytest.mark.root, pytest.mark.slow]

INTENT = ["apt", "install", "aegis-tool"]


@dataclass
class Fleet:
    dir: Path
    hosts: list[fleet_hosts.LocalHost]
    daemons: dict[str, Daemon]
    ctl_env: dict[str, str]
    inventory: Path
    cohort: str
    """The cohort of h1, h2 and h4 (h3's delta differs)."""
    approval: Path
    alice_pub: str

    def env(self, name: str) -> dict[str, str]:
        host = next(h for h in self.hosts if h.name == name)
        return base_env(host.home, **host.env)

    def installed(self, name: str) -> bool:
        host = next(h for h in self.hosts if h.name == name)
        out = subprocess.run(
            ["dpkg-query", f"--root={host.root.root}", "-W", "-f=${Status}", "aegis-tool"],
            capture_output=True,
            text=True,
            check=False,
        )
        return out.stdout.endswith("installed") and "not-installed" not in out.stdout


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory, test_repo: testrepo.Repo) -> Iterator[Fleet]:
    """Four hosts planned with ``aegis fleet plan``, cohort approved, aegisd running on each."""
    require_root("aegisd installs into the throwaway roots as root")
    d = tmp_path_factory.mktemp("fleet")
    socks = Path(tempfile.mkdtemp(prefix="aegis-fleet-", dir="/tmp"))
    alice, alice_pub = keys.write_keypair(d / "keys", "signer", name="alice")
    bob, _ = keys.write_keypair(d / "keys", "approver", name="bob")
    trusted = {"signers": str(alice.with_suffix(".pub")), "approvers": str(bob.with_suffix(".pub"))}
    hosts = [
        fleet_hosts.make_host(
            d,
            f"h{i}",
            test_repo,
            trusted_pubs=trusted,
            socket_dir=socks,
            preinstall=("aegis-base=1.0",) if i == 3 else (),
        )
        for i in range(1, 5)
    ]
    ctl = d / "ctl"
    ctl.mkdir()
    ctl_env = base_env(ctl)
    hosts_file = fleet_hosts.write_hosts_file(d / "hosts.toml", hosts)
    planned = run_cli(
        [
            *AEGIS,
            "fleet",
            "plan",
            "--hosts",
            str(hosts_file),
            "--no-review",
            "--json",
            "--forks",
            "5",
            "--",
            *INTENT,
        ],
        ctl_env,
    )
    report = json.loads(planned.stdout)
    by_hosts = {tuple(sorted(c["hosts"])): c["cohort_hash"] for c in report["cohorts"]}
    assert set(by_hosts) == {("h1", "h2", "h4"), ("h3",)}, report
    assert {r["decision"] for r in report["hosts"]} == {"require-approval"}
    cohort = by_hosts[("h1", "h2", "h4")]
    approved = json.loads(
        run_cli(
            [
                *AEGISCTL,
                "approve",
                "--cohort",
                cohort,
                "--reason",
                "CHG-15 fleet",
                "--key",
                str(bob),
                "--approver",
                "bob",
                "--json",
            ],
            ctl_env,
        ).stdout
    )
    daemons = {}
    for h in hosts:
        env = base_env(h.home, **h.env)
        daemons[h.name] = Daemon(h.home, h.socket, env, [], d / f"{h.name}-aegisd.log").start()
    py = sys.executable
    inventory = fleet_hosts.write_inventory(
        d / "inventory.json",
        hosts,
        aegis_command=[py, "-m", "aegis"],
        aegisctl_command=[py, "-c", "from aegis.cli.aegisctl import main; main()"],
        aegis_review=False,
    )
    yield Fleet(d, hosts, daemons, ctl_env, inventory, cohort, Path(approved["path"]), alice_pub)
    for daemon in daemons.values():
        daemon.stop()
    shutil.rmtree(socks, ignore_errors=True)


def _playbook(fleet: Fleet, name: str, extra: dict[str, Any]) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AEGIS_", "ANSIBLE_"))}
    env.update(
        ANSIBLE_COLLECTIONS_PATH=str(REPO),
        ANSIBLE_HOME=str(fleet.dir / "ansible-home"),
        ANSIBLE_LOCAL_TEMP=str(fleet.dir / "ansible-tmp"),
        ANSIBLE_NOCOLOR="1",
        PYTHONPATH=str(REPO),
    )
    argv = [str(Path(sys.executable).with_name("ansible-playbook")), "-i", str(fleet.inventory)]
    return subprocess.run(
        [*argv, "-f", "5", f"aegis.ops.{name}", "-e", json.dumps(extra)],
        env=env,
        cwd=fleet.dir,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_canary_then_batches_stop_at_the_host_whose_state_differs(fleet: Fleet) -> None:
    report = fleet.dir / "rollout.jsonl"
    run = _playbook(
        fleet,
        "rollout",
        {
            "aegis_intent": INTENT,
            "aegis_serial": [1, 2, 1],
            "aegis_report": str(report),
            "aegis_signer_key": str(fleet.dir / "keys/alice.key"),
            "aegis_signer": "alice",
            "aegis_cohort_approvals": [str(fleet.approval)],
        },
    )
    assert run.returncode != 0, run.stdout
    rows = [json.loads(line) for line in report.read_text().splitlines()]
    by_host = {r["host"]: r for r in rows}
    # The canary ran alone and first; batch 2 (h2, h3) ran; batch 3 (h4) never started.
    assert rows[0]["host"] == "h1"
    assert set(by_host) == {"h1", "h2", "h3"}, run.stdout
    for name in ("h1", "h2"):
        row = by_host[name]
        assert row["ok"] is True
        assert row["state"] == "audited"
        assert row["cohort_hash"] == fleet.cohort
        assert row["request_id"].startswith("r-")
        assert row["audit_head"]["seq"] >= 1
        assert len(row["audit_head"]["hash"]) == 64
        assert fleet.installed(name)
    refused = by_host["h3"]
    assert refused["ok"] is False
    assert refused["refusal"] == "refused:cohort"
    assert refused["state"] == "policy"
    assert refused["cohort_hash"] != fleet.cohort
    assert not any(fleet.installed(n) for n in ("h3", "h4"))


def test_aegisd_refuses_a_cohort_approval_embedded_for_another_delta(fleet: Fleet) -> None:
    # A signer who holds the cohort approval signs h3's plan with it anyway, not through
    # aegisctl sign (which refuses): aegisd's check of h3's own delta must refuse it.
    from aegis.config import load_config
    from aegis.ecosystems import for_tool
    from aegis.fleet.service import read_cohort_approvals
    from aegis.sign.context import load_context
    from aegis.sign.execution_plan import build_execution_plan, execution_plan_bytes, policy_binding

    env = fleet.env("h3")
    planned = json.loads(
        run_cli([*AEGIS, "fleet", "plan", "--no-review", "--json", "--", *INTENT], env).stdout
    )
    assert planned["cohort_hash"] != fleet.cohort
    cfg = load_config(env)
    ctx = load_context(cfg, request_id=planned["request_id"])
    ep = build_execution_plan(
        execution_id=secrets.token_hex(16),
        request_id=ctx.request.id,
        plan=ctx.plan,
        policy=policy_binding(ctx.policy, ctx.policy_hash),
        review_hash=ctx.policy.review.review_hash,
        approvals=(),
        argv=for_tool(ctx.plan.intent.tool).derive_argv(ctx.plan, cfg),
        now=datetime.now(UTC),
        expires_in=timedelta(hours=1),
        signer_id="alice",
        key=keys.load_signing_key(fleet.dir / "keys/alice.key"),
        cohort_approvals=tuple(read_cohort_approvals([fleet.approval])),
    )
    path = fleet.dir / "forged-h3.json"
    path.write_bytes(execution_plan_bytes(ep))
    daemon = fleet.daemons["h3"]
    # Straight to aegisd's socket: aegisctl apply would also stop at the request's state.
    answer = daemon.submit(path.read_bytes())
    assert answer.ok is False
    assert answer.refusal == "refused:cohort", answer
    refused = [e for e in daemon.audit_events() if e.get("kind") == "apply-refused"]
    assert refused[-1]["decision"]["rule_ids"] == ["refused:cohort"], refused[-1]
    assert refused[-1]["actor"]["cohort"] == [fleet.cohort]
    assert not fleet.installed("h3")
