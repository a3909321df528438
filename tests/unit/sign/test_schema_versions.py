"""Execution-plan schema 2: targets bind integrity; version 1 is read for apt only.

Real Ed25519 throughout: every plan here is correctly signed by the trusted signer key,
so what refuses it is the schema rule or the re-derivation, never the signature.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from aegis.model import Intent, Operation, Plan, Tool
from aegis.sign.checks import check_rederivation, check_signature, verify_offline
from aegis.sign.execution_plan import (
    EXECUTION_PLAN_SCHEMA,
    EXECUTION_PLAN_SCHEMA_V1,
    execution_plan_body,
    execution_plan_bytes,
    parse_execution_plan,
)
from aegis.sign.keys import sign_canonical
from aegis.sign.refusals import CheckStep, MalformedExecutionPlanError, RefusalCode


def _old_analysis(plan: Plan) -> Plan:
    """The plan as the analyzer made it before changes carried integrity."""
    return replace(plan, changes=tuple(replace(c, integrity="") for c in plan.changes))


def _as_v1(build: Any, keys: Any, plan: Plan) -> bytes:
    """A version 1 execution plan of ``plan``, signed by the trusted signer key."""
    ep = replace(build(plan=_old_analysis(plan)), schema_version=EXECUTION_PLAN_SCHEMA_V1)
    ep = replace(ep, signature_hex=sign_canonical(execution_plan_body(ep), keys.signer))
    data = execution_plan_bytes(ep)
    assert b'"integrity"' not in data  # byte for byte what version 1 signers wrote
    return data


def _npm_plan(sx: Any) -> Plan:
    intent = Intent(
        Tool.NPM,
        Operation.INSTALL,
        ("left-pad@1.3.0",),
        "alice",
        "2026-11-26T11:59:00Z",
        location="project:/srv/app",
        registry="https://registry.npmjs.org/",
    )
    return sx.make_plan(intent=intent, command_preview=("/usr/bin/npm", "ci"))


def test_new_plans_are_version_2_and_targets_carry_the_changes_integrity(
    build: Any, plan: Plan
) -> None:
    ep = parse_execution_plan(execution_plan_bytes(build()))
    assert ep.schema_version == EXECUTION_PLAN_SCHEMA == "aegis.execution-plan/2"
    by_name = {p.package: p.sha256 for p in plan.provenance}
    assert [t.integrity for t in ep.targets] == [f"sha256:{by_name[t.name]}" for t in ep.targets]
    assert [c.integrity for c in ep.plan.changes] == [t.integrity for t in ep.targets]


def test_a_version_1_apt_plan_still_parses_verifies_and_rederives(
    build: Any, keys: Any, plan: Plan
) -> None:
    ep = parse_execution_plan(_as_v1(build, keys, plan))
    assert ep.schema_version == EXECUTION_PLAN_SCHEMA_V1
    assert all(t.integrity is None for t in ep.targets)
    assert check_signature(ep, {keys.pub("signer")}) is None
    # aegisd's own derivation now records integrity; for a version 1 plan that is not a move.
    assert check_rederivation(ep, plan) is None
    # ... but the .deb it binds still is (provenance's SHA-256).
    swapped = replace(plan, provenance=(replace(plan.provenance[0], sha256="9" * 64),))
    refusal = check_rederivation(ep, swapped)
    assert refusal is not None
    assert refusal.code == RefusalCode.REDERIVATION


@pytest.mark.parametrize("tool", [Tool.NPM, Tool.PIP])
def test_a_correctly_signed_version_1_plan_of_another_ecosystem_is_refused(
    build: Any, keys: Any, sx: Any, tool: Tool
) -> None:
    plan = _npm_plan(sx)
    plan = replace(plan, intent=replace(plan.intent, tool=tool))
    data = _as_v1(build, keys, plan)
    with pytest.raises(MalformedExecutionPlanError, match="apt only") as info:
        parse_execution_plan(data)
    assert info.value.refusal.code == RefusalCode.MALFORMED
    assert info.value.exit_code == 3
    ep, results = verify_offline(
        data,
        trusted_signer_keys={keys.pub("signer")},
        trusted_approver_keys={},
        now=sx.now,
        host=None,
        derive_argv=None,
    )
    assert ep is None
    assert (results[0].step, results[0].ok) == (CheckStep.PARSE, False)
    # The same plan signed as version 2 parses (the rule is the version, not the tool).
    assert parse_execution_plan(execution_plan_bytes(build(plan=plan))).plan.intent.tool is tool


def test_a_version_2_plan_whose_target_integrity_moved_is_refused_naming_it(
    build: Any, plan: Plan
) -> None:
    ep = parse_execution_plan(execution_plan_bytes(build()))
    first = plan.changes[0]
    republished = replace(first, integrity="sha256:" + "7" * 64)
    derived = replace(plan, changes=(republished, *plan.changes[1:]))
    refusal = check_rederivation(ep, derived)
    assert refusal is not None
    assert refusal.code == RefusalCode.REDERIVATION
    assert f"{first.name}:{first.arch} {first.candidate_version} integrity" in refusal.detail
    assert f"{first.integrity} -> sha256:{'7' * 64}" in refusal.detail


def test_signing_a_plan_stored_before_integrity_asks_to_plan_again(plan: Plan) -> None:
    """Not "changed after analysis": the stored plan is only older than the field."""
    from aegis.errors import StateError, TrustError
    from aegis.sign.rechecks import check_reproduces

    with pytest.raises(StateError, match="before changes recorded their artifact integrity"):
        check_reproduces(_old_analysis(plan), plan)
    # An integrity that differs in a plan that has them is still an edit of the store.
    edited = replace(plan, changes=(replace(plan.changes[0], integrity="sha256:" + "7" * 64),))
    edited = replace(edited, changes=(*edited.changes, *plan.changes[1:]))
    with pytest.raises(TrustError, match="integrity"):
        check_reproduces(edited, plan)
