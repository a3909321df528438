"""Cargo through aegisd: real cargo, a local registry, one real (compiling) install;
re-derived, staged by cksum, offline, audited; a moved crate is refused; rollback removes."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from aegis.config import load_config
from aegis.devtools.cargo_registry import CargoRegistry
from aegis.ecosystems import for_tool
from aegis.ecosystems.cargo.names import registry_dir_url, root_location
from aegis.model import Intent, Operation, Plan, Tool

from .conftest import Keys, base_env, sign_plan

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.integration.ecosystems.cargo.cargo_fixtures import (
    CARGO,
    MAIN,
    needs_cargo,
    policy_with_registry,
)

pytestmark = needs_cargo


def _world(tmp_path: Path) -> tuple[CargoRegistry, Path]:
    reg = CargoRegistry(tmp_path / "registry")
    reg.add("tiny-dep", "1.0.0", lib="pub fn one() -> u32 { 1 }\n")
    reg.add("hello-bin", "1.0.0", deps={"tiny-dep": "1.0.0"}, main=MAIN)
    reg.add("other-bin", "1.0.0", main="fn main() {}\n")
    home = tmp_path / "home"
    (home / "etc/aegis").mkdir(parents=True)
    (home / "etc/aegis/policy.toml").write_text(
        policy_with_registry(registry_dir_url(str(reg.root)))
    )
    # A dpkg root of its own: aegisd takes dpkg's locks for every apply, and a cargo test
    # has no business holding (or waiting for) the host's.
    dpkg = tmp_path / "dpkg-root"
    (dpkg / "var/lib/dpkg").mkdir(parents=True)
    (dpkg / "var/lib/dpkg/status").write_text("")
    (home / "etc/aegis/aegis.toml").write_text(f'cargo = "{CARGO}"\ndpkg_root = "{dpkg}"\n')
    return reg, home


def _plan(reg: CargoRegistry, home: Path, target: str, op: Operation = Operation.INSTALL) -> Plan:
    cfg = load_config(base_env(home))
    intent = Intent(Tool.CARGO, op, (target,), "tester", "2026-01-01T00:00:00Z",
                    location=root_location(str(cfg.cargo_root)),
                    registry=registry_dir_url(str(reg.root)))  # fmt: skip
    return for_tool(Tool.CARGO).plan(cfg, intent, datetime.now(UTC))


def _sign(home: Path, plan: Plan, key_set: Keys) -> bytes:
    from aegis.execute.apply import binding_from_result
    from aegis.model import plan_hash
    from aegis.policy.engine import evaluate
    from aegis.policy.result import result_hash
    from aegis.policy.run import load_policy
    from aegis.sign.approvals import build_approval

    cfg = load_config(base_env(home))
    now = datetime.now(UTC)
    result = evaluate(plan, None, load_policy(cfg), now)
    assert result.decision.value != "deny", [f.rule_id for f in result.fired]
    approval = build_approval(plan_id=plan.plan_id, plan_hash=plan_hash(plan),
                              policy_hash=result_hash(result), approver_id="bob",
                              role="approver", reason="test", now=now,
                              expires_in=timedelta(hours=1), key=key_set.approver)  # fmt: skip
    return sign_plan(cfg, plan, key_set.signer,
                     argv=for_tool(Tool.CARGO).derive_argv(plan, cfg),
                     policy=binding_from_result(result),
                     approvals=(approval,) if result.controls.approval.count else ())  # fmt: skip


def test_apply_installs_the_locked_crate_offline_and_rollback_removes_it(
    tmp_path: Path, key_set: Keys, make_daemon: Any
) -> None:
    from aegis.ecosystems.cargo.rollback import rollback_intent

    reg, home = _world(tmp_path)
    cfg = load_config(base_env(home))
    plan = _plan(reg, home, "hello-bin")
    d = make_daemon(home=home)
    answer = d.submit(_sign(home, plan, key_set))
    assert answer.ok, (answer.message, answer.result)
    assert answer.result is not None
    assert answer.result["drift"] == []
    binary = cfg.cargo_root / "bin/hello-bin"
    out = subprocess.run([str(binary)], capture_output=True, text=True, check=True)
    assert out.stdout == "hello 1\n"
    finished = [e for e in d.audit_events() if e["kind"] == "apply-finished"]
    assert finished
    assert "--locked" in finished[-1]["argv"]
    assert "--offline" in finished[-1]["argv"]

    # Rollback of a fresh install: the chain again, cargo uninstall (nothing compiles).
    intent = rollback_intent(plan, "r-0000000000000001", "tester", "2026-01-01T00:00:00Z")
    back = for_tool(Tool.CARGO).plan(cfg, intent, datetime.now(UTC))
    assert [(c.name, c.action.value) for c in back.changes] == [("hello-bin", "remove")]
    answer = d.submit(_sign(home, back, key_set))
    assert answer.ok, (answer.result or {}).get("stderr_tail")
    assert not binary.exists()


def test_a_crate_that_moved_since_signing_is_refused_and_nothing_installs(
    tmp_path: Path, key_set: Keys, make_daemon: Any
) -> None:
    reg, home = _world(tmp_path)
    plan = _plan(reg, home, "other-bin")
    data = _sign(home, plan, key_set)
    crate = reg.root / "other-bin-1.0.0.crate"
    crate.write_bytes(crate.read_bytes() + b"\0")  # same version, other bytes
    answer = make_daemon(home=home).submit(data)
    assert not answer.ok
    assert answer.refusal == "refused:rederivation"
    assert not (load_config(base_env(home)).cargo_root / "bin/other-bin").exists()


def test_a_newer_version_published_since_signing_is_refused(
    tmp_path: Path, key_set: Keys, make_daemon: Any
) -> None:
    reg, home = _world(tmp_path)
    plan = _plan(reg, home, "other-bin")  # no version: the newest release, 1.0.0
    data = _sign(home, plan, key_set)
    reg.add("other-bin", "1.1.0", main="fn main() {}\n")
    answer = make_daemon(home=home).submit(data)
    assert answer.refusal == "refused:rederivation"
    assert "other-bin" in answer.message
    assert "1.1.0" in answer.message


def test_a_plan_for_another_root_gets_no_argv(tmp_path: Path) -> None:
    reg, home = _world(tmp_path)
    plan = _plan(reg, home, "other-bin")
    other = load_config(base_env(tmp_path / "elsewhere"))
    assert for_tool(Tool.CARGO).derive_argv(plan, other) == ()
