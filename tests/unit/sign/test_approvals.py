"""Signed approvals: which count, and the named reason for each that does not."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from typing import Any

import pytest

from aegis.errors import InputError
from aegis.model import plan_hash
from aegis.sign.approvals import (
    DEFAULT_ROLE,
    MAX_REASON_CHARS,
    RejectReason,
    approval_bytes,
    approver_grants,
    parse_approval,
    verify_approvals,
)


def _verify(sx: Any, keys: Any, plan: Any, approvals: list[Any], **kw: Any) -> Any:
    args: dict[str, Any] = {
        "plan_hash": plan_hash(plan),
        "policy_hash": "d" * 64,
        "trusted_approver_keys": {keys.pub("approver"), keys.pub("approver2")},
        "signer_key_hex": keys.pub("signer"),
        "now": sx.now,
    }
    args.update(kw)
    return verify_approvals(approvals, **args)


def test_valid_approval_counts(sx: Any, keys: Any, plan: Any, approve: Any) -> None:
    verdict = _verify(sx, keys, plan, [approve()])
    assert len(verdict.counted) == 1
    assert verdict.rejected == ()
    assert verdict.roles == {"approver"}


def test_round_trip_bytes(approve: Any) -> None:
    a = approve()
    assert parse_approval(approval_bytes(a)) == a


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        ("signer-own-key", RejectReason.SIGNER_KEY),
        ("signer-key-also-trusted", RejectReason.SIGNER_KEY),
        ("untrusted-key", RejectReason.UNTRUSTED_KEY),
        ("other-plan", RejectReason.OTHER_PLAN),
        ("other-policy", RejectReason.OTHER_POLICY),
        ("expired", RejectReason.EXPIRED),
        ("future", RejectReason.NOT_YET_VALID),
        ("tampered-reason", RejectReason.BAD_SIGNATURE),
        ("swapped-key", RejectReason.BAD_SIGNATURE),
    ],
    ids=str,
)
def test_attacks_do_not_count(
    case: str, expected: RejectReason, sx: Any, keys: Any, plan: Any, approve: Any
) -> None:
    trusted = {keys.pub("approver")}
    if case == "signer-own-key":
        a = approve(key=keys.signer)
    elif case == "signer-key-also-trusted":
        a = approve(key=keys.signer)
        trusted.add(keys.pub("signer"))
    elif case == "untrusted-key":
        a = approve(key=keys.stranger)
    elif case == "other-plan":
        a = approve(plan_hash=plan_hash(sx.make_plan(plan_id="p-other")))
    elif case == "other-policy":
        a = approve(policy_hash="9" * 64)
    elif case == "expired":
        a = approve(now=sx.now - timedelta(hours=5))
    elif case == "future":
        a = approve(now=sx.now + timedelta(hours=1))
    elif case == "tampered-reason":
        a = replace(approve(), reason="approved by the CISO")
    else:  # another trusted key pasted over the approval's own
        a = replace(approve(), public_key_hex=keys.pub("approver2"))
        trusted.add(keys.pub("approver2"))
    verdict = _verify(sx, keys, plan, [a], trusted_approver_keys=trusted)
    assert verdict.counted == ()
    assert [r.reason for r in verdict.rejected] == [expected]


def test_same_key_counts_once(sx: Any, keys: Any, plan: Any, approve: Any) -> None:
    verdict = _verify(sx, keys, plan, [approve(), approve(reason="again", approver_id="bob2")])
    assert len(verdict.counted) == 1
    assert [r.reason for r in verdict.rejected] == [RejectReason.DUPLICATE]


def test_two_approvers_count(sx: Any, keys: Any, plan: Any, approve: Any) -> None:
    trusted = {keys.pub("approver"): (), keys.pub("approver2"): ("security",)}
    verdict = _verify(
        sx,
        keys,
        plan,
        [approve(), approve(key=keys.approver2, role="security")],
        trusted_approver_keys=trusted,
    )
    assert len(verdict.counted) == 2
    assert verdict.roles == {"approver", "security"}


def test_a_role_counts_only_when_the_key_is_granted_it(
    sx: Any, keys: Any, plan: Any, approve: Any
) -> None:
    # Attack: a trusted approver types --role security to meet a policy that wants one.
    claimed = approve(key=keys.approver2, role="security")
    verdict = _verify(sx, keys, plan, [claimed])  # plain keys: each holds "approver" only
    assert verdict.counted == ()
    [rejected] = verdict.rejected
    assert rejected.reason == RejectReason.ROLE_NOT_GRANTED
    assert "not trusted for role 'security'" in rejected.detail
    assert "approver" not in verdict.roles
    # Granted to the other key only: still not this one.
    other = {keys.pub("approver"): ("security",), keys.pub("approver2"): ()}
    verdict = _verify(sx, keys, plan, [claimed], trusted_approver_keys=other)
    assert [r.reason for r in verdict.rejected] == [RejectReason.ROLE_NOT_GRANTED]
    # Granted: it counts, and so does the default role for the same key's other approvals.
    granted = {keys.pub("approver2"): ("security",)}
    verdict = _verify(sx, keys, plan, [claimed], trusted_approver_keys=granted)
    assert verdict.roles == {"security"}


def test_approver_grants_normalise_both_forms(keys: Any) -> None:
    upper = keys.pub("approver").upper()
    assert approver_grants([upper]) == {keys.pub("approver"): frozenset({DEFAULT_ROLE})}
    assert approver_grants({upper: ["security"]}) == {
        keys.pub("approver"): frozenset({DEFAULT_ROLE, "security"})
    }


def test_clock_skew_tolerated(sx: Any, keys: Any, plan: Any, approve: Any) -> None:
    a = approve(now=sx.now + timedelta(seconds=30))
    assert len(_verify(sx, keys, plan, [a]).counted) == 1


@pytest.mark.parametrize(
    ("kw", "message"),
    [
        ({"reason": ""}, "non-empty"),
        ({"reason": "x" * (MAX_REASON_CHARS + 1)}, "at most"),
        ({"approver_id": "Bob; rm"}, "identity"),
        ({"approver_id": "../etc"}, "identity"),
        ({"expires_in": timedelta(days=8)}, "validity"),
        ({"expires_in": timedelta(0)}, "validity"),
        ({"plan_hash": "zz"}, "plan_hash"),
    ],
    ids=[
        "empty-reason",
        "long-reason",
        "bad-id",
        "path-id",
        "ttl-too-long",
        "ttl-zero",
        "bad-hash",
    ],
)
def test_bad_input_refused(kw: dict[str, Any], message: str, approve: Any) -> None:
    with pytest.raises(InputError, match=message):
        approve(**kw)


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda b: b.replace(b'"role":', b'"role":"x","role":', 1), "duplicate"),
        (lambda b: b.replace(b"{", b'{"extra":1,', 1), "unknown key"),
        (lambda b: b.replace(b"aegis.approval/1", b"aegis.approval/2"), "schema"),
        (lambda b: b + b" " * 70000, "bytes"),
        (lambda b: b"\xff" + b, "UTF-8"),
    ],
    ids=["duplicate-key", "unknown-key", "schema", "oversized", "not-utf8"],
)
def test_parse_refuses(mutate: Any, message: str, approve: Any) -> None:
    with pytest.raises(InputError, match=message):
        parse_approval(mutate(approval_bytes(approve())))
