"""Cohort hashes and cohort approvals, each check with the attack it stops."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest

from aegis.devtools import signing
from aegis.fleet.cohort import cohort_document, cohort_hash
from aegis.model import Action, Host, PackageChange
from aegis.sign.checks import check_approvals, check_cohort
from aegis.sign.cohort_approval import (
    build_cohort_approval,
    cohort_approval_bytes,
    parse_cohort_approval,
)
from aegis.sign.execution_plan import execution_plan_bytes, parse_execution_plan
from aegis.sign.refusals import RefusalCode

NEEDS_ONE = {"decision": "require-approval", "controls": ("approval",), "required_approvals": 1}


def _plan(**kw):  # type: ignore[no-untyped-def]
    return signing.make_plan(**kw)


def _approval(key, digest, **kw):  # type: ignore[no-untyped-def]
    return build_cohort_approval(
        cohort_hash=digest,
        approver_id=kw.pop("approver_id", "bob"),
        role=kw.pop("role", "approver"),
        reason="CHG-7 fleet window",
        now=kw.pop("now", signing.NOW),
        expires_in=kw.pop("expires_in", timedelta(hours=4)),
        key=key,
    )


def test_host_specific_facts_leave_the_cohort_unchanged() -> None:
    binding = signing.binding(**NEEDS_ONE)
    base = _plan()
    other_host = replace(
        base,
        plan_id="p-9999",
        created_at="2026-11-27T00:00:00Z",
        host=Host(machine_id="f" * 32, hostname="web2"),
        package_state_hash="d" * 64,
        intent=replace(base.intent, requested_by="carol", requested_at="2026-11-27T00:00:00Z"),
    )
    relabelled = replace(binding, result_hash="9" * 64)
    assert cohort_hash(base, binding) == cohort_hash(other_host, relabelled)


@pytest.mark.parametrize("what", ["version", "from", "decision", "rules"])
def test_a_different_delta_or_decision_is_another_cohort(what: str) -> None:
    binding = signing.binding(**NEEDS_ONE)
    base = _plan()
    plan, other = base, binding
    if what == "version":
        changes = (base.changes[0], replace(base.changes[1], candidate_version="1.1"))
        plan = replace(base, changes=changes)
    elif what == "from":
        upgrade = PackageChange(
            "aegis-base", "all", Action.UPGRADE, "1.0", "1.2", "aegis-base", "1.2", "r1"
        )
        plan = replace(base, changes=(upgrade, base.changes[1]))
    elif what == "decision":
        other = replace(binding, decision="allow", controls=(), required_approvals=0)
    else:
        other = replace(binding, rule_ids=(*binding.rule_ids, "content.hostile"))
    assert cohort_hash(plan, other) != cohort_hash(base, binding)


def test_cohort_document_names_no_host() -> None:
    doc = cohort_document(_plan(), signing.binding(**NEEDS_ONE))
    text = str(doc)
    assert "web1" not in text
    assert signing.HOST.machine_id not in text
    assert "c" * 64 not in text
    assert [c["name"] for c in doc["changes"]] == ["aegis-base", "aegis-tool"]


def test_cohort_approval_parses_back_and_refuses_a_changed_byte(keys) -> None:  # type: ignore[no-untyped-def]
    a = _approval(keys.approver, "a" * 64)
    assert parse_cohort_approval(cohort_approval_bytes(a)) == a
    forged = replace(a, cohort_hash="b" * 64)
    ep = signing.make_execution_plan(
        _plan(), keys.signer, approvals=(), cohort_approvals=(forged,), policy=signing.binding()
    )
    refusal = check_approvals(ep, [keys.pub("approver")], signing.NOW)
    assert refusal is not None
    assert refusal.code is RefusalCode.APPROVALS
    assert "bad-signature" in refusal.detail


def _signed_with(keys, plan, approval, **kw):  # type: ignore[no-untyped-def]
    return signing.make_execution_plan(
        plan,
        keys.signer,
        approvals=(),
        cohort_approvals=(approval,),
        policy=signing.binding(**NEEDS_ONE),
        **kw,
    )


def test_a_matching_cohort_approval_counts_and_survives_parsing(keys) -> None:  # type: ignore[no-untyped-def]
    plan = _plan()
    a = _approval(keys.approver, cohort_hash(plan, signing.binding(**NEEDS_ONE)))
    ep = _signed_with(keys, plan, a)
    again = parse_execution_plan(execution_plan_bytes(ep))
    assert again.cohort_approvals == (a,)
    assert check_approvals(again, [keys.pub("approver")], signing.NOW) is None
    assert check_cohort(again, plan, signing.binding(**NEEDS_ONE)) is None


def test_a_plan_without_cohort_approvals_keeps_its_bytes(keys) -> None:  # type: ignore[no-untyped-def]
    ep = signing.make_execution_plan(_plan(), keys.signer, approvals=())
    assert b"cohort_approvals" not in execution_plan_bytes(ep)


def test_another_cohorts_approval_is_refused_as_cohort(keys) -> None:  # type: ignore[no-untyped-def]
    # The attack: a signer holding the approval of cohort A embeds it in the plan of a
    # host whose delta differs (it upgrades aegis-base from 1.0 instead of installing it).
    cohort_a = cohort_hash(_plan(), signing.binding(**NEEDS_ONE))
    upgrade = PackageChange(
        "aegis-base", "all", Action.UPGRADE, "1.0", "1.2", "aegis-base", "1.2", "r1"
    )
    base = _plan()
    differs = replace(base, changes=(upgrade, base.changes[1]))
    ep = _signed_with(keys, differs, _approval(keys.approver, cohort_a))
    refusal = check_approvals(ep, [keys.pub("approver")], signing.NOW)
    assert refusal is not None
    assert refusal.code is RefusalCode.COHORT
    assert refusal.error().exit_code == 4
    # aegisd's own derivation of that host is judged the same way after policy.
    again = check_cohort(ep, differs, signing.binding(**NEEDS_ONE))
    assert again is not None
    assert again.code is RefusalCode.COHORT


@pytest.mark.parametrize("who", ["signer", "stranger", "expired"])
def test_a_cohort_approval_that_does_not_count_is_refused(keys, who: str) -> None:  # type: ignore[no-untyped-def]
    plan = _plan()
    digest = cohort_hash(plan, signing.binding(**NEEDS_ONE))
    key = keys.signer if who == "signer" else keys.stranger if who == "stranger" else keys.approver
    now = signing.NOW - timedelta(hours=5) if who == "expired" else signing.NOW
    a = _approval(key, digest, now=now)
    ep = _signed_with(keys, plan, a, now=signing.NOW - timedelta(hours=2))
    refusal = check_approvals(ep, [keys.pub("approver"), keys.pub("signer")], signing.NOW)
    assert refusal is not None
    assert refusal.code is RefusalCode.APPROVALS
