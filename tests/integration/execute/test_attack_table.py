"""Issue 5's attack table against a real aegisd and a real throwaway root.

Every row is a plan built by the real analyzer for a root that already holds a
package, then attacked. Each must be refused with its named code AND its reason,
both in the answer and in an ``apply-refused`` audit event, with nothing run: no
ledger row for its execution id, no ``apply-started`` event, and the root's dpkg
status file byte for byte as before.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from contextlib import closing
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from aegis.devtools import testrepo
from aegis.execute.ledger import Ledger
from aegis.model import Host, Plan
from aegis.sign.execution_plan import parse_execution_plan

from .chain_helpers import AEGISCTL, Chain, apply_argv, make_chain, run_cli, signed_request
from .conftest import Daemon

pytestmark = pytest.mark.root


@pytest.fixture
def chain(tmp_path: Path, key_set):  # type: ignore[no-untyped-def]
    c = make_chain(tmp_path, key_set)
    # A non-empty root, so "dpkg state unchanged" compares real package records.
    testrepo.run_apt(c.root, "install", "-y", "aegis-base=1.0")
    return c


def _daemon(make_daemon, chain: Chain, *extra_args: str) -> Daemon:  # type: ignore[no-untyped-def]
    env = {k: v for k, v in chain.env.items() if k in ("AEGIS_APT_CONFIG", "AEGIS_DPKG_ROOT")}
    d: Daemon = make_daemon(env_extra=env, home=chain.home, extra_args=extra_args)
    return d


def sign(
    chain: Chain,
    plan: Plan,
    *,
    key: Any = None,
    now: datetime | None = None,
    approver: Any = None,
    approve_plan: Plan | None = None,
    argv: tuple[str, ...] | None = None,
    relabel: str | None = None,
    execution_id: str | None = None,
) -> bytes:
    """What a signer holding ``key`` could produce: policy evaluated, approved, signed."""
    import secrets

    from aegis.ecosystems.apt.argv import derive_argv
    from aegis.execute.apply import binding_from_result
    from aegis.model import plan_hash
    from aegis.policy.engine import evaluate
    from aegis.policy.result import result_hash
    from aegis.policy.run import load_policy
    from aegis.sign.approvals import build_approval
    from aegis.sign.execution_plan import build_execution_plan, execution_plan_bytes

    evaluated_at = datetime.now(UTC)  # policy is current; only the signing time is moved
    now = now or evaluated_at
    policy = load_policy(chain.cfg)
    result = evaluate(plan, None, policy, evaluated_at)
    binding = binding_from_result(result)
    approvals: tuple[Any, ...] = ()
    if result.controls.approval.count:
        approved = approve_plan or plan
        approved_result = evaluate(approved, None, policy, evaluated_at)
        approvals = (
            build_approval(
                plan_id=approved.plan_id,
                plan_hash=plan_hash(approved),
                policy_hash=result_hash(approved_result),
                approver_id="bob",
                role="approver",
                reason="test change",
                now=now,
                expires_in=timedelta(hours=1),
                key=approver or chain.keys.approver,
            ),
        )
    if relabel is not None:  # a trusted signer lying about the decision
        binding = replace(
            binding, decision=relabel, controls=(), required_approvals=0, required_roles=()
        )
        approvals = ()
    ep = build_execution_plan(
        execution_id=execution_id or secrets.token_hex(16),
        request_id=None,
        plan=plan,
        policy=binding,
        review_hash=None,
        approvals=approvals,
        argv=argv or derive_argv(plan, dpkg_root=chain.cfg.dpkg_root),
        now=now,
        expires_in=timedelta(hours=1),
        signer_id="alice",
        key=key or chain.keys.signer,
    )
    return execution_plan_bytes(ep)


def _without_findings(plan: Plan) -> Plan:
    assert plan.findings, "the hostile fixture must carry findings"
    return replace(plan, findings=())


def _other_host(plan: Plan) -> Plan:
    return replace(plan, host=Host("f" * 32, "elsewhere.example"))


def _extra_o(chain: Chain, plan: Plan) -> tuple[str, ...]:
    from aegis.ecosystems.apt.argv import derive_argv

    argv = derive_argv(plan, dpkg_root=chain.cfg.dpkg_root)
    return (argv[0], "-o", "APT::Get::AllowUnauthenticated=true", *argv[1:])


Attack = Callable[[Chain], bytes]
NOW = datetime.now


ATTACKS: list[tuple[str, Attack, str, str]] = [
    (
        "changed-byte",
        lambda c: sign(c, c.plan("aegis-tool")).replace(b'"alice"', b'"alicf"', 1),
        "refused:signature",
        "signature does not verify",
    ),
    (
        "duplicate-json-key",
        lambda c: sign(c, c.plan("aegis-tool")).replace(
            b'{"approvals":', b'{"approvals":[],"approvals":', 1
        ),
        "refused:malformed",
        "duplicate",
    ),
    (
        "untrusted-signer-key",
        lambda c: sign(c, c.plan("aegis-tool"), key=c.keys.other),
        "refused:signature",
        "is not trusted",
    ),
    (
        # The signer key is ALSO configured as an approver key: it still never counts.
        "approval-by-signers-own-key",
        lambda c: sign(c, c.plan("aegis-tool"), approver=c.keys.signer),
        "refused:approvals",
        "signed by the execution signer's own key",
    ),
    (
        "approval-for-another-plan",
        lambda c: sign(c, c.plan("aegis-tool"), approve_plan=c.plan("aegis-benign")),
        "refused:approvals",
        "not this one",
    ),
    (
        # Someone deleted the hostile findings from the stored plan before signing.
        "plan-edited-finding-deleted",
        lambda c: sign(c, _without_findings(c.plan("aegis-hostile"))),
        "refused:rederivation",
        "differs in findings",
    ),
    (
        "expired",
        lambda c: sign(c, c.plan("aegis-tool"), now=NOW(UTC) - timedelta(hours=2)),
        "refused:expired",
        "expired at",
    ),
    (
        "from-the-future",
        lambda c: sign(c, c.plan("aegis-tool"), now=NOW(UTC) + timedelta(hours=2)),
        "refused:not-yet-valid",
        "in the future",
    ),
    (
        "another-host",
        lambda c: sign(c, _other_host(c.plan("aegis-tool"))),
        "refused:host",
        "signed for another machine-id",
    ),
    (
        "argv-not-derived",
        lambda c: sign(
            c,
            c.plan("aegis-tool"),
            argv=("/usr/bin/apt-get", "-y", "install", "--", "aegis-tool"),
        ),
        "refused:argv",
        "signed argv differs from the derived argv",
    ),
    (
        "extra-o-option",
        lambda c: sign(c, c.plan("aegis-tool"), argv=_extra_o(c, c.plan("aegis-tool"))),
        "refused:argv",
        "'APT::Get::AllowUnauthenticated=true'",
    ),
    (
        # aegis-hostile is denied by the rules; a trusted signer relabels it allow.
        "denied-decision-relabelled-allow",
        lambda c: sign(c, c.plan("aegis-hostile"), relabel="allow"),
        "refused:policy",
        "policy re-evaluated on this host says deny",
    ),
]


def _status(chain: Chain) -> bytes:
    return chain.root.status.read_bytes()


def assert_refused_and_nothing_ran(
    d: Daemon, chain: Chain, data: bytes, code: str, reason: str, before: bytes
) -> None:
    """Submit ``data``; check the named refusal, its audit event, and an untouched root."""
    events_before = len(d.audit_events())
    answer = d.submit(data)
    assert answer.ok is False, answer
    assert answer.refusal == code, answer
    assert reason in answer.message, answer
    new = d.audit_events()[events_before:]
    assert [e["kind"] for e in new] == ["apply-refused"], new
    [event] = new
    assert event["decision"]["outcome"] == "refused"
    assert event["decision"]["rule_ids"] == [code]
    assert any(reason in r for r in event["decision"]["reasons"]), event
    assert event["actor"]["uid"] == 0
    assert event["actor"]["pid"] > 0
    try:
        xid = parse_execution_plan(data).execution_id
    except Exception:  # malformed documents never reach the ledger lookup
        xid = None
    if xid is not None and code not in ("refused:replayed", "refused:revoked"):
        assert Ledger(d.cfg.ledger_path).lookup(xid) is None
    assert _status(chain) == before, "dpkg state changed"


@pytest.mark.parametrize(
    ("attack", "code", "reason"),
    [(a[1], a[2], a[3]) for a in ATTACKS],
    ids=[a[0] for a in ATTACKS],
)
def test_attack_is_refused_by_name_audited_and_nothing_runs(  # type: ignore[no-untyped-def]
    make_daemon, chain: Chain, key_set, attack: Attack, code: str, reason: str
) -> None:
    d = _daemon(make_daemon, chain, "--approval-public-key-hex", key_set.signer_pub)
    data = attack(chain)
    before = _status(chain)
    assert_refused_and_nothing_ran(d, chain, data, code, reason, before)
    assert Ledger(d.cfg.ledger_path).entries() == []
    assert chain.installed() == {"aegis-base": "1.0"}


def test_a_changed_byte_anywhere_is_refused_and_nothing_runs(make_daemon, chain: Chain) -> None:  # type: ignore[no-untyped-def]
    d = _daemon(make_daemon, chain)
    data = sign(chain, chain.plan("aegis-tool"))
    before = _status(chain)
    # Spread over the whole document: keys, values, hashes, argv, approvals, signature.
    positions = sorted({*range(0, len(data), max(1, len(data) // 60)), len(data) - 2})
    for i in positions:
        old = data[i : i + 1]
        new = b"1" if old == b"0" else b"0" if old.isalnum() else b"x"
        tampered = data[:i] + new + data[i + 1 :]
        events_before = len(d.audit_events())
        answer = d.submit(tampered)
        assert answer.ok is False, (i, answer)
        assert answer.refusal in ("refused:malformed", "refused:signature"), (i, answer)
        [event] = d.audit_events()[events_before:]
        assert event["kind"] == "apply-refused"
        assert event["decision"]["rule_ids"] == [answer.refusal]
    assert Ledger(d.cfg.ledger_path).entries() == []
    assert _status(chain) == before
    # The untouched document still runs: the refusals were about the changed bytes.
    assert d.submit(data).ok


def test_package_state_moved_after_signing(make_daemon, chain: Chain) -> None:  # type: ignore[no-untyped-def]
    d = _daemon(make_daemon, chain)
    data = sign(chain, chain.plan("aegis-tool"))
    testrepo.run_apt(chain.root, "install", "-y", "aegis-benign")
    before = _status(chain)
    assert_refused_and_nothing_ran(
        d, chain, data, "refused:rederivation", "package state moved since signing", before
    )
    assert "aegis-tool" not in chain.installed()


def test_replayed_id_refused_also_after_restart(make_daemon, chain: Chain) -> None:  # type: ignore[no-untyped-def]
    d = _daemon(make_daemon, chain)
    data = sign(chain, chain.plan("aegis-tool"))
    assert d.submit(data).ok
    after_first = _status(chain)
    assert chain.installed() == {"aegis-base": "1.2", "aegis-tool": "2.0"}
    assert_refused_and_nothing_ran(
        d, chain, data, "refused:replayed", "was already used", after_first
    )
    d.stop()
    d.start()
    assert_refused_and_nothing_ran(
        d, chain, data, "refused:replayed", "was already used", after_first
    )
    assert len([e for e in d.audit_events() if e["kind"] == "apply-started"]) == 1


def test_revoked_id_refused_through_aegisctl_revoke(make_daemon, chain: Chain) -> None:  # type: ignore[no-untyped-def]
    d = _daemon(make_daemon, chain)
    data = sign(chain, chain.plan("aegis-tool"))
    xid = parse_execution_plan(data).execution_id
    out = run_cli(
        [*AEGISCTL, "revoke", xid, "--reason", "window closed", "--socket", str(d.socket)],
        chain.env,
    ).stdout
    assert "revoked" in out
    assert_refused_and_nothing_ran(d, chain, data, "refused:revoked", "was revoked", _status(chain))
    assert "aegis-tool" not in chain.installed()


def _edit_store(store: Path, request_id: str) -> None:
    """What a member of group aegis may do to the (group-writable) request store."""
    with closing(sqlite3.connect(store, isolation_level=None)) as db:
        triggers = [r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='trigger'")]
        for name in triggers:
            db.execute(f'DROP TRIGGER "{name}"')
        db.execute(
            "DELETE FROM history WHERE request_id = ? AND to_state IN "
            "('applying', 'applied', 'audited', 'failed', 'interrupted')",
            (request_id,),
        )
        db.execute(
            "DELETE FROM request_artifacts WHERE request_id = ? AND kind = 'executor-result'",
            (request_id,),
        )
        db.execute("UPDATE requests SET state = 'signed' WHERE id = ?", (request_id,))
    db.close()


def test_replay_after_restart_and_neighbour_store_edited(tmp_path: Path, sock_dir: Path) -> None:
    sr = signed_request(tmp_path, preinstall=("aegis-base=1.0",))
    d = Daemon(
        sr.home, sock_dir / "a.sock", sr.env, ["--public-key-hex", sr.signer_pub], tmp_path / "log"
    ).start()
    apply = apply_argv(sr.execution_plan, sr.signer_pub, d.socket)
    run_cli(apply, sr.env)
    status_after = sr.root.status.read_bytes()
    d.stop()
    cfg = d.cfg
    _edit_store(cfg.store_path, sr.request_id)
    d.start()
    # Straight to the socket, as the editor would: aegisd never asks the store.
    from aegis.execute.protocol import Request, call

    again = call(
        str(d.socket),
        Request(op="apply", execution_plan=sr.execution_plan.read_text(), request_id=sr.request_id),
    )
    assert (again.ok, again.refusal) == (False, "refused:replayed"), again
    *_, last, checkpoint = d.audit_events()
    assert (last["kind"], last["decision"]["rule_ids"]) == ("apply-refused", ["refused:replayed"])
    assert checkpoint["kind"] == "checkpoint"
    assert len([e for e in d.audit_events() if e["kind"] == "apply-started"]) == 1
    [row] = Ledger(cfg.ledger_path).entries()
    assert row.state == "finished"
    assert sr.root.status.read_bytes() == status_after
    d.stop()
