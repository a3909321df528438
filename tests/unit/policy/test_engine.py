"""Engine: fail closed, strictest wins, overrides, shadow mode, result binding, determinism."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from aegis.devtools.policy_plans import change, clean_plan, policy_toml
from aegis.model import Action, plan_hash
from aegis.policy.config import PolicyConfig, PolicyUnavailable, RuleOverride, parse_policy_config
from aegis.policy.engine import check_config, evaluate, is_current, policy_version
from aegis.policy.load import load_policy_config
from aegis.policy.result import (
    POLICY_SCHEMA,
    Effect,
    ReviewStatus,
    result_bytes,
    result_from_bytes,
    result_hash,
)
from aegis.policy.rules import RULESET_VERSION

REPO_ROOT = Path(__file__).resolve().parents[3]


def test_unavailable_policy_denies(now: datetime, neutral_review: Any) -> None:
    result = evaluate(clean_plan(), neutral_review, PolicyUnavailable("no policy file"), now)
    assert result.decision is Effect.DENY
    assert [(f.rule_id, f.reason) for f in result.fired] == [
        ("policy.unavailable", "no policy file")
    ]
    assert result.controls.approval.count == 0
    assert result.controls.snapshot is False


def test_unknown_ruleset_denies(policy: PolicyConfig, now: datetime, neutral_review: Any) -> None:
    result = evaluate(clean_plan(), neutral_review, replace(policy, ruleset="nope/1"), now)
    assert result.decision is Effect.DENY
    assert result.fired[0].rule_id == "policy.unavailable"


def test_empty_active_ruleset_denies(
    policy: PolicyConfig, now: datetime, neutral_review: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # An empty rule set (no rules at all) must deny, never allow by default.
    from aegis.policy import ruleset

    monkeypatch.setitem(ruleset._RULESETS, "empty/1", lambda: ())
    result = evaluate(clean_plan(), neutral_review, replace(policy, ruleset="empty/1"), now)
    assert result.decision is Effect.DENY
    assert result.fired[0].rule_id == "policy.empty-ruleset"


def test_no_allowing_rule_requires_approval(
    policy: PolicyConfig, now: datetime, neutral_review: Any
) -> None:
    off = RuleOverride(enabled=False)
    config = replace(policy, rules={"apt.upgrade-clean": off})
    result = evaluate(clean_plan(), neutral_review, config, now)
    assert result.decision is Effect.REQUIRE_APPROVAL
    assert [f.rule_id for f in result.fired] == ["policy.no-allow", "review.skipped"]
    assert result.controls.approval.count == 1
    assert result.controls.snapshot is True
    why = {n.rule_id: n.why for n in result.not_fired}
    assert why["apt.upgrade-clean"] == "disabled by a [rules] override"


def test_strictest_effect_wins_and_fired_is_ordered(
    policy: PolicyConfig, now: datetime, neutral_review: Any
) -> None:
    plan = clean_plan(
        changes=(
            change("linux-image-amd64"),
            change("pkg0", action=Action.DOWNGRADE, current="2", candidate="1"),
        )
    )
    result = evaluate(plan, neutral_review, policy, now)
    assert result.decision is Effect.DENY
    effects = [f.effect for f in result.fired]
    assert effects == sorted(effects, key=lambda e: ["deny", "require-approval"].index(e.value))
    assert {f.rule_id for f in result.fired} == {"apt.downgrade", "kernel.change", "review.skipped"}


def test_override_tightens_and_sets_approval_controls(
    tmp_path: Path, now: datetime, neutral_review: Any
) -> None:
    path = tmp_path / "policy.toml"
    path.write_text(
        policy_toml(
            extra=(
                '[rules."package.security-sensitive"]\napprovals = 2\nroles = ["security"]\n'
                '[rules."package.essential"]\neffect = "deny"\n'
            )
        ),
        encoding="utf-8",
    )
    config = load_policy_config(path)
    sensitive = evaluate(clean_plan(changes=(change("sudo"),)), neutral_review, config, now)
    assert sensitive.decision is Effect.REQUIRE_APPROVAL
    assert sensitive.controls.approval.count == 2
    assert sensitive.controls.approval.roles == ("approver", "security")
    essential = evaluate(
        clean_plan(changes=(change("base-files", essential=True),)), neutral_review, config, now
    )
    assert essential.decision is Effect.DENY


def test_loosening_override_is_clamped_even_without_check_config(
    policy: PolicyConfig, now: datetime, neutral_review: Any
) -> None:
    # A config built in code that skipped check_config still cannot loosen a deny rule.
    loose = replace(
        policy,
        rules={
            "apt.downgrade": RuleOverride(effect="allow"),
            "command.metachar": RuleOverride(enabled=False),
        },
    )
    plan = clean_plan(
        changes=(change("pkg0", action=Action.DOWNGRADE, current="2", candidate="1"),),
        command_preview=("apt-get", "install", "pkg0=1;id"),
    )
    result = evaluate(plan, neutral_review, loose, now)
    assert result.decision is Effect.DENY
    assert {"apt.downgrade", "command.metachar"} <= {f.rule_id for f in result.fired}


def test_overridable_rule_may_loosen(
    policy: PolicyConfig, now: datetime, neutral_review: Any
) -> None:
    config = replace(policy, rules={"apt.upgrade-clean": RuleOverride(effect="allow")})
    check_config(config)
    result = evaluate(clean_plan(), neutral_review, config, now)
    assert result.decision is Effect.ALLOW
    assert result.controls.snapshot is False


def test_shadow_decision_is_recorded_not_enforced(
    tmp_path: Path, now: datetime, neutral_review: Any
) -> None:
    (tmp_path / "next.toml").write_text(
        policy_toml(extra='[rules."kernel.change"]\neffect = "deny"\n').replace(
            'name = "test"', 'name = "next"'
        ),
        encoding="utf-8",
    )
    path = tmp_path / "policy.toml"
    path.write_text(policy_toml(extra='[shadow]\npath = "next.toml"\n'), encoding="utf-8")
    config = load_policy_config(path)
    result = evaluate(
        clean_plan(changes=(change("linux-image-amd64"),)), neutral_review, config, now
    )
    assert result.decision is Effect.REQUIRE_APPROVAL
    assert result.shadow is not None
    assert result.shadow.config_name == "next"
    assert result.shadow.decision is Effect.DENY
    shadow_fired = {f.rule_id: f.effect for f in result.shadow.fired}
    assert shadow_fired["kernel.change"] is Effect.DENY
    assert result.shadow.policy_version != result.policy_version


def test_result_binds_plan_review_policy_and_time(
    policy: PolicyConfig, now: datetime, neutral_review: Any
) -> None:
    plan = clean_plan()
    result = evaluate(plan, neutral_review, policy, now + timedelta(microseconds=999))
    assert result.schema_version == POLICY_SCHEMA
    assert result.plan_hash == plan_hash(plan)
    assert result.plan_id == plan.plan_id
    assert result.evaluated_at == "2026-01-01T00:10:00Z"
    assert result.ruleset_version == RULESET_VERSION
    assert (result.config_hash, result.policy_version) == policy_version(policy)
    assert result.review.review_hash is None
    assert result.review.status is ReviewStatus.SKIPPED
    # Round trip through the file format, byte-identical.
    data = result_bytes(result)
    assert result_from_bytes(data) == result
    assert result_bytes(result_from_bytes(data)) == data
    assert len(result_hash(result)) == 64


def test_policy_version_changes_with_config(policy: PolicyConfig, now: datetime) -> None:
    other = parse_policy_config(policy_toml(extra="[approval]\ncount = 2\n"))
    assert policy_version(policy) != policy_version(other)
    assert policy_version(policy) == policy_version(parse_policy_config(policy_toml()))
    result = evaluate(clean_plan(), None, policy, now)
    assert is_current(result, policy)
    assert not is_current(result, other)
    assert not is_current(result, PolicyUnavailable("gone"))


def test_missing_review_requires_approval(now: datetime) -> None:
    policy = parse_policy_config(policy_toml(review_required=True))
    result = evaluate(clean_plan(), None, policy, now)
    assert result.decision is Effect.REQUIRE_APPROVAL
    assert result.review.status is ReviewStatus.MISSING
    assert result.review.counted is False
    fired = {f.rule_id: f for f in result.fired}
    assert fired["review.unverified"].reason == "no review record"
    assert fired["review.unverified"].approvals == 1


def test_naive_time_is_a_programming_error(policy: PolicyConfig, neutral_review: Any) -> None:
    with pytest.raises(RuntimeError):
        evaluate(clean_plan(), neutral_review, policy, datetime(2026, 1, 1))


_CHILD = """
import sys
from datetime import datetime
from aegis.devtools import policy_plans as pp
from aegis.policy.config import parse_policy_config
from aegis.policy.engine import evaluate
from aegis.policy.result import result_bytes
from tests_policy_cases import build
plan = build(sys.argv[1])
now = datetime.fromisoformat(pp.NOW.replace("Z", "+00:00"))
config = parse_policy_config(pp.policy_toml())
sys.stdout.buffer.write(result_bytes(evaluate(plan, None, config, now)))
"""

_CASES_MODULE = """
from aegis.devtools import policy_plans as pp
from aegis.model import Action, Finding, Operation, Vulnerability

def build(name):
    if name == "clean":
        return pp.clean_plan(packages=50)
    if name == "mixed":
        return pp.clean_plan(
            changes=(pp.change("linux-image-amd64"), pp.change("sudo"),
                     pp.change("x", action=Action.DOWNGRADE, current="2", candidate="1"),
                     pp.change("vendor-a", repo="vendor")),
            findings=(Finding("script.changed", "vendor-a", "postinst", 2, "changed"),),
            vulnerabilities=(Vulnerability("sudo", "sudo", "1.2-1", "CVE-1", "high", None,
                                           False, True),),
        )
    if name == "update":
        return pp.clean_plan(operation=Operation.UPDATE, changes=())
    raise SystemExit(name)
"""


@pytest.mark.parametrize("case", ["clean", "mixed", "update"])
def test_same_inputs_give_same_bytes_in_two_processes(tmp_path: Path, case: str) -> None:
    (tmp_path / "tests_policy_cases.py").write_text(_CASES_MODULE, encoding="utf-8")
    env = {"PYTHONPATH": f"{REPO_ROOT}:{tmp_path}", "PATH": "/usr/bin:/bin"}
    outputs = []
    for seed in ("1", "2"):  # different hash seeds: no dict/set order may leak into bytes
        proc = subprocess.run(
            [sys.executable, "-c", _CHILD, case],
            capture_output=True,
            env={**env, "PYTHONHASHSEED": seed},
            check=True,
            timeout=60,
        )
        outputs.append(proc.stdout)
    assert outputs[0] == outputs[1]
    assert result_from_bytes(outputs[0]).plan_id == "p-0000000000000001"


_ALL_CASES_CHILD = """
import importlib.util, json, sys
from datetime import datetime
from aegis.devtools import policy_plans as pp
from aegis.policy.config import parse_policy_config
from aegis.policy.engine import evaluate
from aegis.policy.result import result_bytes
from aegis.canonical import sha256_hex
spec = importlib.util.spec_from_file_location("table", sys.argv[1])
table = importlib.util.module_from_spec(spec)
sys.modules["table"] = table  # dataclasses look their module up here
spec.loader.exec_module(table)
now = datetime.fromisoformat(pp.NOW.replace("Z", "+00:00"))
config = parse_policy_config(pp.policy_toml())
out = [sha256_hex(result_bytes(evaluate(c.plan, None, config, now))) for c in table.CASES]
print(json.dumps(out))
"""


def test_every_table_fixture_gives_the_same_bytes_in_two_processes(now: datetime) -> None:
    import json

    from aegis.canonical import sha256_hex

    table = Path(__file__).resolve().parent / "test_rule_table.py"
    env = {"PYTHONPATH": str(REPO_ROOT), "PATH": "/usr/bin:/bin"}
    runs = [
        subprocess.run(
            [sys.executable, "-c", _ALL_CASES_CHILD, str(table)],
            capture_output=True,
            env={**env, "PYTHONHASHSEED": seed},
            check=True,
            timeout=120,
        ).stdout
        for seed in ("3", "4")
    ]
    assert runs[0] == runs[1]
    from importlib.util import module_from_spec, spec_from_file_location

    spec = spec_from_file_location("table_in_process", table)
    assert spec is not None
    assert spec.loader is not None
    module = module_from_spec(spec)
    sys.modules["table_in_process"] = module  # dataclasses look their module up here
    try:
        spec.loader.exec_module(module)
    finally:
        del sys.modules["table_in_process"]
    config = parse_policy_config(policy_toml())
    here = [sha256_hex(result_bytes(evaluate(c.plan, None, config, now))) for c in module.CASES]
    assert json.loads(runs[0]) == here
    assert len(here) >= 40
