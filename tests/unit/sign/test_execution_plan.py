"""Execution plans: build, strict parse, and each ordered check with the attack it stops."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import timedelta
from typing import Any

import pytest

from aegis.ed25519 import sign_canonical
from aegis.errors import InputError, PolicyDenied
from aegis.model import Finding, Host, plan_hash
from aegis.sign.checks import (
    check_approvals,
    check_argv,
    check_execution_id,
    check_host,
    check_policy,
    check_rederivation,
    check_signature,
    check_time_window,
    verified,
    verify_offline,
)
from aegis.sign.execution_plan import (
    MAX_TTL,
    execution_plan_body,
    execution_plan_bytes,
    parse_execution_plan,
)
from aegis.sign.refusals import (
    CHECK_ORDER,
    CheckStep,
    MalformedExecutionPlanError,
    RefusalCode,
    RefusedError,
)


def _resign(ep: Any, key: Any) -> Any:
    """What a trusted but rogue signer could do: change a field and sign again."""
    return replace(ep, signature_hex=sign_canonical(execution_plan_body(ep), key))


def test_round_trip(build: Any) -> None:
    ep = build()
    data = execution_plan_bytes(ep)
    assert parse_execution_plan(data) == ep
    assert parse_execution_plan(data.rstrip(b"\n")) == ep


def test_build_binds_design_fields(build: Any, plan: Any, sx: Any) -> None:
    ep = build()
    assert ep.plan_hash == plan_hash(plan)
    assert ep.host == sx.host
    assert ep.intent == plan.intent
    assert [f"{t.name}={t.version}" for t in ep.targets] == ["aegis-base=1.2", "aegis-tool=1.0"]
    assert ep.created_at == "2026-11-26T12:00:00Z"
    assert ep.expires_at == "2026-11-26T13:00:00Z"


def test_expiry_capped_by_first_approval(build: Any, approve: Any) -> None:
    ep = build(approvals=(approve(expires_in=timedelta(minutes=20)),), expires_in=MAX_TTL)
    assert ep.expires_at == "2026-11-26T12:20:00Z"


@pytest.mark.parametrize("ttl", [timedelta(0), MAX_TTL + timedelta(seconds=1)], ids=["0", "25h"])
def test_ttl_out_of_range(build: Any, ttl: timedelta) -> None:
    with pytest.raises(InputError, match="expires-in"):
        build(expires_in=ttl)


def test_deny_never_built(build: Any, sx: Any) -> None:
    with pytest.raises(PolicyDenied):
        build(policy=sx.binding(decision="deny"))


def test_every_changed_byte_refused(build: Any, keys: Any) -> None:
    """Flip each byte of the document: parse or signature refuses every one."""
    data = execution_plan_bytes(build())
    trusted = {keys.pub("signer")}
    codes: set[RefusalCode] = set()
    for i in range(len(data)):
        changed = bytearray(data)
        changed[i] ^= 0x01
        try:
            ep = parse_execution_plan(bytes(changed))
        except RefusedError as e:
            codes.add(e.refusal.code)
            continue
        refusal = check_signature(ep, trusted)
        assert refusal is not None, f"byte {i} changed and still accepted"
        codes.add(refusal.code)
    assert codes == {RefusalCode.MALFORMED, RefusalCode.SIGNATURE}


def _doc(build: Any) -> dict[str, Any]:
    return json.loads(execution_plan_bytes(build()))


@pytest.mark.parametrize(
    ("mutate", "code", "message"),
    [
        (
            lambda d: d.replace(b'"argv":', b'"argv":["/bin/sh"],"argv":', 1),
            "malformed",
            "duplicate",
        ),
        (lambda d: d.replace(b"{", b'{"zz":1,', 1), "malformed", "unknown key"),
        (lambda d: d + b" ", "malformed", "canonical"),
        (lambda d: d.replace(b'"failure":null,', b"", 1), "malformed", "canonical"),
        (lambda d: json.dumps(json.loads(d), indent=1).encode(), "malformed", "canonical"),
        (lambda d: d.replace(b'"plan_hash":"', b'"plan_hash":1.5,"x":"', 1), "malformed", "float"),
        (lambda d: b"[]", "malformed", "not an execution plan"),
        (lambda d: d[:-40], "malformed", "malformed JSON"),
        (lambda d: d + b" " * (5 * 1024 * 1024), "oversized", "bytes"),
    ],
    ids=[
        "duplicate-key",
        "unknown-key",
        "trailing-space",
        "omitted-default",
        "reindented",
        "float",
        "not-object",
        "truncated",
        "oversized",
    ],
)
def test_parse_refuses(build: Any, mutate: Any, code: str, message: str) -> None:
    with pytest.raises(MalformedExecutionPlanError, match=message) as info:
        parse_execution_plan(mutate(execution_plan_bytes(build())))
    assert info.value.refusal.code == f"refused:{code}"
    assert info.value.exit_code == 3


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("plan_hash", "1" * 64, "plan_hash"),
        ("host", Host("1" * 32, "web1"), "host"),
        ("package_state_hash", "2" * 64, "package_state_hash"),
        ("targets", (), "targets"),
        ("execution_id", "not-hex", "execution_id"),
    ],
    ids=["plan-hash", "host", "state-hash", "targets", "exec-id"],
)
def test_self_contradiction_is_malformed(
    build: Any, keys: Any, field: str, value: Any, message: str
) -> None:
    """Even a trusted signer cannot bind fields that disagree with the embedded plan."""
    ep = _resign(replace(build(), **{field: value}), keys.signer)
    with pytest.raises(MalformedExecutionPlanError, match=message):
        parse_execution_plan(execution_plan_bytes(ep))


def test_signature_checks(build: Any, keys: Any) -> None:
    ep = build()
    assert check_signature(ep, {keys.pub("signer")}) is None
    assert check_signature(ep, {keys.pub("signer").upper()}) is None
    untrusted = build(key=keys.stranger)
    refusal = check_signature(untrusted, {keys.pub("signer")})
    assert refusal is not None
    assert refusal.code == RefusalCode.SIGNATURE
    assert "not trusted" in refusal.detail
    empty = check_signature(ep, set())
    assert empty is not None
    assert "no trusted" in empty.detail
    # A valid signature of another document pasted in.
    forged = replace(ep, signature_hex=build(execution_id="aa" * 16).signature_hex)
    refusal = check_signature(forged, {keys.pub("signer")})
    assert refusal is not None
    assert refusal.code == RefusalCode.SIGNATURE


def test_host(build: Any, sx: Any) -> None:
    ep = build()
    assert check_host(ep, sx.host) is None
    for other in (Host(sx.host.machine_id, "db1"), Host("f" * 32, sx.host.hostname)):
        refusal = check_host(ep, other)
        assert refusal is not None
        assert refusal.code == RefusalCode.HOST


@pytest.mark.parametrize(
    ("offset", "code"),
    [
        (timedelta(0), None),
        (timedelta(minutes=59), None),
        (timedelta(hours=1), RefusalCode.EXPIRED),
        (timedelta(days=3), RefusalCode.EXPIRED),
        (-timedelta(seconds=59), None),
        (-timedelta(minutes=2), RefusalCode.NOT_YET_VALID),
    ],
    ids=["now", "almost-expired", "expired", "long-expired", "skew", "future"],
)
def test_time_window(build: Any, sx: Any, offset: timedelta, code: Any) -> None:
    refusal = check_time_window(build(), sx.now + offset)
    assert (refusal.code if refusal else None) == code


def test_ttl_over_cap_refused(build: Any, sx: Any) -> None:
    ep = build(expires_in=timedelta(hours=3), approvals=())
    refusal = check_time_window(ep, sx.now, max_ttl=timedelta(hours=2))
    assert refusal is not None
    assert refusal.code == RefusalCode.EXPIRED


def test_execution_id(build: Any) -> None:
    ep = build()
    assert check_execution_id(ep, used=False, revoked=False) is None
    used = check_execution_id(ep, used=True, revoked=False)
    assert used is not None
    assert used.code == RefusalCode.REPLAYED
    assert used.error().exit_code == 6
    revoked = check_execution_id(ep, used=True, revoked=True)
    assert revoked is not None
    assert revoked.code == RefusalCode.REVOKED


def test_approvals_attacks(build: Any, approve: Any, keys: Any, sx: Any, plan: Any) -> None:
    trusted = {keys.pub("approver"), keys.pub("signer")}
    assert check_approvals(build(), trusted, sx.now) is None
    cases = {
        "signer-key": build(approvals=(approve(key=keys.signer),)),
        "other-plan": build(approvals=(approve(plan_hash="7" * 64),)),
        "untrusted-key": build(approvals=(approve(key=keys.stranger),)),
        "missing": build(approvals=()),
    }
    for name, ep in cases.items():
        refusal = check_approvals(ep, trusted, sx.now)
        assert refusal is not None, name
        assert refusal.code == RefusalCode.APPROVALS
        assert (name if name != "missing" else "0 approval(s)") in refusal.detail
    # Approved, but the approval expired before aegisd got to run it.
    refusal = check_approvals(build(), trusted, sx.now + timedelta(hours=5))
    assert refusal is not None
    assert "expired" in refusal.detail
    # A required role nobody covered.
    refusal = check_approvals(build(), trusted, sx.now, required_roles=("security",))
    assert refusal is not None
    assert "security" in refusal.detail


def test_rederivation(build: Any, sx: Any) -> None:
    ep = build()
    same_later = sx.make_plan(plan_id="p-9999", created_at="2026-11-26T12:30:00Z")
    assert check_rederivation(ep, same_later) is None
    finding = Finding("script.download-exec", "aegis-tool", "postinst", 3, "hostile")
    # The signed plan lacks a finding that aegisd's own analysis finds (deleted in the store).
    refusal = check_rederivation(ep, sx.make_plan(findings=(finding,)))
    assert refusal is not None
    assert refusal.code == RefusalCode.REDERIVATION
    assert "findings" in refusal.detail
    moved = check_rederivation(ep, sx.make_plan(package_state_hash="9" * 64))
    assert moved is not None
    assert "package state moved" in moved.detail


def test_policy(build: Any, sx: Any, keys: Any) -> None:
    ep = build()
    assert check_policy(ep) is None
    assert check_policy(ep, sx.binding()) is None
    assert check_policy(ep, sx.binding(decision="allow")) is None
    cases = {
        "deny": sx.binding(decision="deny"),
        "stricter": sx.binding(
            decision="require-approval", controls=("approval",), required_approvals=2
        ),
        "version": sx.binding(policy_version="v2"),
        "controls": sx.binding(controls=("approval", "snapshot", "reboot")),
    }
    for name, reeval in cases.items():
        refusal = check_policy(ep, reeval)
        assert refusal is not None, name
        assert refusal.code == RefusalCode.POLICY
        assert refusal.error().exit_code == 5
    # A denied decision re-labelled allow by a rogue signer: re-evaluation says deny.
    relabelled = _resign(replace(ep, policy=sx.binding(decision="allow")), keys.signer)
    refusal = check_policy(relabelled, sx.binding(decision="deny"))
    assert refusal is not None
    assert "deny" in refusal.detail
    # A signed deny (forged past build) is refused without re-evaluation.
    forged = _resign(replace(ep, policy=sx.binding(decision="deny")), keys.signer)
    assert check_policy(forged) is not None


def test_argv(build: Any, sx: Any, plan: Any) -> None:
    ep = build()
    derived = sx.derive_argv(plan)
    assert check_argv(ep, derived) is None
    extra_o = build(argv=(*derived[:3], "-o", "APT::Get::AllowUnauthenticated=true", *derived[3:]))
    refusal = check_argv(extra_o, derived)
    assert refusal is not None
    assert refusal.code == RefusalCode.ARGV
    assert "AllowUnauthenticated" in refusal.detail
    swapped = build(argv=("/usr/bin/apt-get", "install", "-y", "--", "aegis-hostile=1.0"))
    assert check_argv(swapped, derived) is not None
    reordered = build(argv=(*derived[:4], derived[5], derived[4]))
    assert check_argv(reordered, derived) is not None


def test_verified_needs_every_step(build: Any, keys: Any, sx: Any) -> None:
    data = execution_plan_bytes(build())
    ep, results = verify_offline(
        data,
        trusted_signer_keys={keys.pub("signer")},
        trusted_approver_keys={keys.pub("approver")},
        now=sx.now,
        host=sx.host,
        derive_argv=sx.derive_argv,
    )
    assert ep is not None
    assert [r.step for r in results] == list(CHECK_ORDER)
    assert all(r.ok is not False for r in results)
    with pytest.raises(RuntimeError, match="execution-id"):
        verified(ep, results)
    full = [replace(r, ok=True) for r in results]
    assert verified(ep, full).plan == ep


def test_verify_offline_reports_every_problem(build: Any, keys: Any, sx: Any) -> None:
    data = execution_plan_bytes(build(key=keys.stranger, approvals=(approve_none := ())))
    assert approve_none == ()
    _, results = verify_offline(
        data,
        trusted_signer_keys={keys.pub("signer")},
        trusted_approver_keys={keys.pub("approver")},
        now=sx.now + timedelta(hours=2),
        host=Host("f" * 32, "db9"),
        derive_argv=lambda p: ("/usr/bin/true",),
    )
    failed = {r.step for r in results if r.ok is False}
    assert failed == {
        CheckStep.SIGNATURE,
        CheckStep.HOST,
        CheckStep.TIME_WINDOW,
        CheckStep.APPROVALS,
        CheckStep.ARGV,
    }


def test_verify_offline_malformed(sx: Any) -> None:
    ep, results = verify_offline(
        b'{"a":1,"a":2}',
        trusted_signer_keys=(),
        trusted_approver_keys=(),
        now=sx.now,
        host=None,
        derive_argv=None,
    )
    assert ep is None
    assert results[0].refusal is not None
    assert results[0].refusal.code == RefusalCode.MALFORMED


def test_parsed_plan_keeps_its_signed_body_and_copies_do_not(build: Any, keys: Any) -> None:
    # parse_execution_plan keeps the signed body's bytes for check_signature; they must be
    # the canonical bytes of the body, and a record derived from the parsed one (a changed
    # field, even a re-signed one) must be checked over its own body, never the kept one.
    from aegis.canonical import canonical_bytes
    from aegis.sign.execution_plan import execution_plan_body_bytes

    ep = build()
    parsed = parse_execution_plan(execution_plan_bytes(ep))
    assert execution_plan_body_bytes(parsed) == canonical_bytes(execution_plan_body(ep))
    assert check_signature(parsed, {keys.pub("signer")}) is None
    changed = replace(parsed, argv=(*parsed.argv, "extra"))
    refusal = check_signature(changed, {keys.pub("signer")})
    assert refusal is not None
    assert refusal.code == RefusalCode.SIGNATURE
    forged = replace(parsed, signature_hex=build(execution_id="bb" * 16).signature_hex)
    assert check_signature(forged, {keys.pub("signer")}) is not None


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (
            lambda b: b.replace(b'"execution_id":', b'"execution_id":"x","execution_id":', 1),
            "duplicate",
        ),
        (
            lambda b: b.replace(b'"required_approvals":', b'"required_approvals":0.0,"x":', 1),
            "duplicate|float",
        ),
        (lambda b: b"\xef\xbb\xbf" + b, "BOM"),
        (lambda b: b.replace(b"{", b"{ ", 1), "canonical"),
        (lambda b: b.rstrip(b"\n") + b"\n\n", "canonical"),
    ],
    ids=["duplicate-key", "float", "bom", "whitespace", "two-newlines"],
)
def test_the_fast_reader_never_accepts_what_the_strict_one_refuses(
    build: Any, mutate: Any, message: str
) -> None:
    # parse_execution_plan reads canonical documents with a lenient parser first; what
    # that parser would let through (a repeated key keeps the last value, 0.0 reads as a
    # number) must still be refused, with the strict parser's reason.
    data = execution_plan_bytes(build())
    mutated = mutate(data)
    assert mutated != data
    with pytest.raises(MalformedExecutionPlanError, match=message):
        parse_execution_plan(mutated)
