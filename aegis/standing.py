"""A request's standing: does the evidence its state claims verify, here and now?

The store is writable by group ``aegis`` and its row hashes are unkeyed, so a member can
append a correctly chained history row (``denied -> policy``) or a forged policy artifact
and the chain still verifies. The chain says what was written, not that it was true.
Before a read command presents a request as waiting for a human's approval or a signer's
key, the state's evidence is checked again from what cannot be forged by the group:

- ``policy``: the latest policy result binds the request's latest plan by hash, is not a
  deny, and re-evaluating the recorded plan (and review) under the policy file in force, at
  the recorded evaluation time, gives the same decision, policy version and controls.
- ``signed``: an execution plan is on record, binds that plan and that decision, and its
  signature verifies; when ``<etc>/keys/signers/`` holds keys, by one of them. (aegisd
  checks it again against its own configuration before anything runs.)

A request that fails is reported as corrupted (exit 4, :class:`CorruptStoreError`), as
``aegis requests`` already reports rows whose hashes fail. Other states carry no claim a
human acts on and are not re-checked here.

Example:
    >>> "policy" in CHECKED_STATES
    True
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from aegis.errors import AegisError
from aegis.workflow.records import CorruptStoreError

if TYPE_CHECKING:
    from aegis.config import Config
    from aegis.workflow.records import HistoryRecord, RequestRecord
    from aegis.workflow.store import Store

CHECKED_STATES = frozenset({"policy", "signed"})


def _latest(store: Store, history: list[HistoryRecord], kind: str) -> tuple[str, bytes] | None:
    for item in reversed(history):
        for ref in reversed(item.artifacts):
            if ref.kind == kind:
                return ref.sha256, store.load_artifact(ref.sha256)
    return None


def _bad(rec: RequestRecord, problem: str) -> CorruptStoreError:
    return CorruptStoreError(
        f"request {rec.id!r} is in state {rec.state!r} but {problem}",
        hint="do not approve or sign it; plan the change again, and run 'aegis doctor'",
    )


def check_standing(
    cfg: Config, store: Store, rec: RequestRecord, history: list[HistoryRecord]
) -> None:
    """Raise unless the evidence ``rec``'s state claims re-verifies.

    Raises:
        CorruptStoreError: the state's evidence is missing, forged or no longer agrees.
    """
    if rec.state not in CHECKED_STATES:
        return
    try:
        _check(cfg, store, rec, history)
    except CorruptStoreError:
        raise
    except AegisError as e:
        raise _bad(rec, f"its evidence does not verify: {e.message}") from e


def _check(cfg: Config, store: Store, rec: RequestRecord, history: list[HistoryRecord]) -> None:
    from aegis.policy.engine import evaluate
    from aegis.policy.result import Effect, result_from_bytes
    from aegis.policy.review_gate import parse_review
    from aegis.policy.run import load_policy, parse_plan_bytes

    plan_found = _latest(store, history, "plan")
    policy_found = _latest(store, history, "policy")
    if plan_found is None or policy_found is None:
        raise _bad(rec, "no plan or policy result is on record")
    plan, digest = parse_plan_bytes(plan_found[1])
    recorded = result_from_bytes(policy_found[1])
    if recorded.plan_hash != digest:
        raise _bad(rec, "its policy result was made for another plan")
    if recorded.decision is Effect.DENY:
        raise _bad(rec, "its recorded policy decision is deny")
    review_found = _latest(store, history, "review")
    review = parse_review(review_found[1]) if review_found is not None else None
    fresh = evaluate(
        plan,
        review,
        load_policy(cfg),
        _as_datetime(recorded.evaluated_at),
        plan_hash=digest,
        review_hash=review_found[0] if review_found is not None else None,
    )
    if fresh.policy_version != recorded.policy_version:
        raise _bad(rec, "the policy in force is not the one that decided it")
    if fresh.decision != recorded.decision or fresh.controls != recorded.controls:
        raise _bad(
            rec,
            f"its recorded decision ({recorded.decision.value}) does not re-verify: the "
            f"recorded plan under the recorded policy gives {fresh.decision.value}",
        )
    if rec.state == "signed":
        _check_signed(cfg, store, rec, history, plan_digest=digest, policy=policy_found[0])


def _check_signed(
    cfg: Config,
    store: Store,
    rec: RequestRecord,
    history: list[HistoryRecord],
    *,
    plan_digest: str,
    policy: str,
) -> None:
    from aegis.sign.checks import check_signature
    from aegis.sign.execution_plan import parse_execution_plan
    from aegis.sign.files import SIGNERS_DIR, trusted_keys

    found = _latest(store, history, "execution-plan")
    if found is None:
        raise _bad(rec, "no signed execution plan is on record")
    ep = parse_execution_plan(found[1])
    if ep.plan_hash != plan_digest or ep.policy.result_hash != policy:
        raise _bad(rec, "its execution plan binds another plan or decision")
    trusted = trusted_keys(cfg.keys_dir / SIGNERS_DIR) or {ep.signer_public_key_hex}
    refused = check_signature(ep, trusted)
    if refused is not None:
        raise _bad(rec, f"its execution plan does not verify ({refused.code.value})")


def _as_datetime(text: str) -> datetime:
    # Policy results carry second precision with a Z suffix; the store's own format differs.
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError as e:
        raise _bad_time(text) from e


def _bad_time(text: str) -> AegisError:
    from aegis.errors import InputError

    return InputError(f"not a timestamp: {text[:40]!r}")
