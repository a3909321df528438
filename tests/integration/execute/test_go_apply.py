"""Go through aegisd: real go, a ``file://`` GOPROXY; re-derived, exact, audited, rolled back."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from aegis.config import load_config
from aegis.ecosystems import for_tool
from aegis.model import Intent, Operation, Plan, Tool

from .conftest import Keys, base_env, sign_plan

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.integration.ecosystems.go.go_fixtures import (
    GoProxy,
    build_proxy,
    needs_go,
    new_module,
    policy_with_proxy,
)

pytestmark = needs_go


def _home(tmp_path: Path, proxy: GoProxy) -> Path:
    home = tmp_path / "home"
    (home / "etc/aegis").mkdir(parents=True, exist_ok=True)
    (home / "etc/aegis/policy.toml").write_text(policy_with_proxy(proxy.url))
    # aegisd's one-change-at-a-time lock is dpkg's: a throwaway root's, never the host's.
    (tmp_path / "root/var/lib/dpkg").mkdir(parents=True, exist_ok=True)
    (home / "etc/aegis/aegis.toml").write_text(f'dpkg_root = "{tmp_path / "root"}"\n')
    return home


def _plan(proxy: GoProxy, home: Path, location: str, *targets: str) -> Plan:
    intent = Intent(Tool.GO, Operation.INSTALL, targets, "tester", "2026-01-01T00:00:00Z",
                    location=location, registry=proxy.url)  # fmt: skip
    return for_tool(Tool.GO).plan(load_config(base_env(home)), intent, datetime.now(UTC))


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
    return sign_plan(cfg, plan, key_set.signer, argv=for_tool(Tool.GO).derive_argv(plan, cfg),
                     policy=binding_from_result(result),
                     approvals=(approval,) if result.controls.approval.count else ())  # fmt: skip


def _apply(d: Any, home: Path, plan: Plan, key_set: Keys) -> dict[str, Any]:
    answer = d.submit(_sign(home, plan, key_set))
    assert answer.ok, (answer.message, answer.result)
    assert answer.result is not None
    assert answer.result["drift"] == [], answer.result
    return dict(answer.result)


def test_go_get_applies_the_signed_files_exactly_and_rolls_back(
    tmp_path: Path, key_set: Keys, make_daemon: Any
) -> None:
    from aegis.ecosystems.go.rollback import rollback_intent

    proxy = build_proxy(tmp_path / "proxy")
    home = _home(tmp_path, proxy)
    module = new_module(tmp_path / "app")
    original = (module / "go.mod").read_text()
    d = make_daemon(home=home)
    plan = _plan(proxy, home, f"gomod:{module}", "example.com/hello@latest")
    _apply(d, home, plan, key_set)
    assert plan.ecosystem is not None
    signed = {f.name: f.after for f in plan.ecosystem.files}
    assert (module / "go.mod").read_text() == signed["go.mod"]
    assert (module / "go.sum").read_text() == signed["go.sum"]
    assert "example.com/hello v1.1.0" in signed["go.mod"]
    [event] = [e for e in d.audit_events() if e["kind"] == "apply-finished"]
    argv = event["payload"]["argv"] if "payload" in event else event["argv"]
    assert argv[-1] == "example.com/hello@v1.1.0"  # derived: exact, never @latest
    assert "GOFLAGS=-mod=readonly" in argv

    intent = rollback_intent(plan, "r-0000000000000001", "tester", "2026-01-01T00:00:00Z")
    back = for_tool(Tool.GO).plan(load_config(base_env(home)), intent, datetime.now(UTC))
    assert {c.action.value for c in back.changes} == {"remove"}
    _apply(d, home, back, key_set)
    assert (module / "go.mod").read_text() == original


@pytest.mark.parametrize("move", ["new-release", "tampered-zip"])
def test_a_moved_resolution_or_moved_sums_are_refused_and_nothing_is_written(
    tmp_path: Path, key_set: Keys, make_daemon: Any, move: str
) -> None:
    proxy = build_proxy(tmp_path / "proxy")
    home = _home(tmp_path, proxy)
    module = new_module(tmp_path / "app")
    original = (module / "go.mod").read_text()
    plan = _plan(proxy, home, f"gomod:{module}", "example.com/greet@latest")
    data = _sign(home, plan, key_set)
    if move == "new-release":
        proxy.add("example.com/greet", "v1.2.0", {"greet.go": "package greet\n"})
    else:  # the proxy now serves other bytes for the same version
        proxy.tamper("example.com/greet", "v1.1.0", "greet.go", "package greet // evil\n")
    answer = make_daemon(home=home).submit(data)
    assert not answer.ok
    assert answer.refusal == "refused:rederivation", answer.message
    assert (module / "go.mod").read_text() == original
    assert not (module / "go.sum").exists()


def test_go_install_builds_into_the_managed_gobin_and_rolls_back(
    tmp_path: Path, key_set: Keys, make_daemon: Any
) -> None:
    from aegis.ecosystems.go.names import gobin_dir
    from aegis.ecosystems.go.rollback import rollback_intent

    proxy = build_proxy(tmp_path / "proxy")
    home = _home(tmp_path, proxy)
    cfg = load_config(base_env(home))
    gobin = gobin_dir(cfg)
    d = make_daemon(home=home)
    _apply(d, home, _plan(proxy, home, f"gobin:{gobin}", "example.com/hello@v1.0.0"), key_set)
    binary = Path(gobin) / "hello"
    assert subprocess.run([binary], capture_output=True, text=True, check=True).stdout == "hi\n"
    second = _plan(proxy, home, f"gobin:{gobin}", "example.com/hello@latest")
    assert [(c.current_version, c.candidate_version) for c in second.changes] == [
        ("v1.0.0", "v1.1.0")
    ]
    _apply(d, home, second, key_set)
    assert subprocess.run([binary], capture_output=True, text=True, check=True).stdout == "hello\n"

    intent = rollback_intent(second, "r-0000000000000002", "tester", "2026-01-01T00:00:00Z")
    back = for_tool(Tool.GO).plan(cfg, intent, datetime.now(UTC))
    assert [c.action.value for c in back.changes] == ["downgrade"]
    _apply(d, home, back, key_set)
    assert subprocess.run([binary], capture_output=True, text=True, check=True).stdout == "hi\n"
