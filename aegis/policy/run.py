"""The policy stage at the edge, where the pure engine meets files and the store.

It reads the plan, the request's review and the policy file, evaluates, writes
``policy/<plan_id>.policy.json`` and advances the request.

This module does the I/O the pure engine may not: files, the store (through
:mod:`aegis.api`) and the clock (``now`` is still an argument so tests and
``--at`` pin it). ``aegis policy`` and ``aegis resume`` call :func:`decide`.

Fail closed: a missing, empty, unreadable or malformed policy file becomes a
:class:`~aegis.policy.config.PolicyUnavailable`, which the engine denies; the
deny is written and recorded like any other decision.

Example:
    >>> outcome = decide(cfg, Path("plans/p-1.json"), now=datetime.now(UTC), actor="alice")
    >>> outcome.result.decision, outcome.path
    (<Effect.ALLOW_WITH_SNAPSHOT: 'allow-with-snapshot'>, PosixPath('.../policy/p-1.policy.json'))
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aegis.bounds import HEX64_RE as _HEX_KEY_RE
from aegis.bounds import MAX_PLAN_BYTES
from aegis.canonical import loads_strict
from aegis.errors import InputError, StateError
from aegis.health.policy import derive_verification
from aegis.model import plan_from_dict, plan_hash
from aegis.policy.config import PolicyConfig, PolicyUnavailable
from aegis.policy.engine import evaluate
from aegis.policy.fields import PolicyConfigError
from aegis.policy.load import load_policy_config
from aegis.policy.result import Effect, result_bytes, result_from_bytes
from aegis.policy.review_gate import parse_review
from aegis.safe_read import read_capped
from aegis.workflow import access
from aegis.workflow.files import write_atomic

if TYPE_CHECKING:
    from aegis.config import Config
    from aegis.health.spec import Verification
    from aegis.model import Plan
    from aegis.policy.result import PolicyResult

REVIEW_KEY_FILE = "review.pub"
_PLAN_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}\Z")


@dataclass(frozen=True)
class Decided:
    """What :func:`decide` did."""

    result: PolicyResult
    path: Path
    """The policy result file written."""
    request_id: str
    state: str
    """The request's state after the transition (``policy`` or ``denied``)."""
    recorded: bool = False
    """True when the request was already decided: ``result`` is the stored decision."""


def parse_plan_bytes(raw: bytes) -> tuple[Plan, str]:
    """Parse plan bytes strictly; return the plan and its hash.

    Raises:
        InputError: too large, malformed, not a plan, or a plan id that is not a plain token.
    """
    plan = plan_from_dict(loads_strict(raw, max_bytes=MAX_PLAN_BYTES))
    if not _PLAN_ID_RE.match(plan.plan_id):
        raise InputError(f"plan id {plan.plan_id[:80]!r} is not a plain token")
    return plan, plan_hash(plan)


def read_plan(path: Path) -> tuple[Plan, str]:
    """Read a plan file strictly; return the plan and its hash.

    Raises:
        InputError: unreadable, too large, malformed, not a plan.
    """
    raw = read_capped(path, MAX_PLAN_BYTES, "plan")
    if len(raw) > MAX_PLAN_BYTES:
        raise InputError(f"plan {path} is larger than {MAX_PLAN_BYTES} bytes")
    return parse_plan_bytes(raw)


def _review_key(cfg: Config) -> tuple[str, ...]:
    """aegis-reviewd's public key from ``<etc>/keys/review.pub``, if present."""
    path = cfg.keys_dir / REVIEW_KEY_FILE
    try:
        text = path.read_text(encoding="ascii").strip().lower()
    except FileNotFoundError:
        return ()
    except (OSError, UnicodeDecodeError):
        return ()  # an unreadable key counts no review: decisions only get stricter
    return (text,) if _HEX_KEY_RE.match(text) else ()


def _with_keys(config: PolicyConfig, keys: tuple[str, ...]) -> PolicyConfig:
    if config.review.public_keys or not keys:
        return config
    return replace(config, review=replace(config.review, public_keys=keys))


def load_policy(cfg: Config) -> PolicyConfig | PolicyUnavailable:
    """The policy in force: ``cfg.policy_path`` parsed, or the reason it is unavailable.

    When the file names no review key, ``<etc>/keys/review.pub`` is used.
    """
    try:
        config = load_policy_config(cfg.policy_path)
    except PolicyConfigError as e:
        return PolicyUnavailable(f"no usable policy: {e.message}")
    keys = _review_key(cfg)
    config = _with_keys(config, keys)
    if config.shadow is not None:
        config = replace(config, shadow=_with_keys(config.shadow, keys))
    return config


def _request_review(cfg: Config, request_id: str) -> tuple[Any, str | None]:
    """The newest review artifact of the request, parsed, and its stored hash."""
    found = access.latest_artifact(cfg, request_id, "review")
    if found is None:
        return None, None
    ref, body = found
    return parse_review(body), ref.sha256


def write_result(cfg: Config, plan_id: str, data: bytes) -> Path:
    """Write ``policy/<plan_id>.policy.json`` through a temp file and ``os.replace``."""
    path = cfg.policy_dir / f"{plan_id}.policy.json"
    return write_atomic(path, data, host_install=cfg.home is None, mode=0o640)


def evaluate_plan_file(
    cfg: Config, plan_path: Path, *, now: datetime
) -> tuple[PolicyResult, str, str]:
    """Evaluate the plan at ``plan_path`` for its request, without recording anything.

    Returns:
        (result, request id, request state)

    Raises:
        InputError: the plan file is malformed.
        StateError: no request is bound to this plan.
    """
    plan, digest = read_plan(plan_path)
    request = access.find_request_by_plan(cfg, digest)
    if request is None:
        raise StateError(
            f"no change request is bound to plan {plan.plan_id!r} (sha256 {digest[:16]}...)",
            hint="plan the change with 'aegis apt ... --plan' and use the plan file it prints",
        )
    review, review_hash = _request_review(cfg, request.id)
    result = evaluate(
        plan, review, load_policy(cfg), now, plan_hash=digest, review_hash=review_hash
    )
    return result, request.id, request.state


def decide(cfg: Config, plan_path: Path, *, now: datetime, actor: str) -> Decided:
    """Evaluate and record: write the result file, then ``decide`` or ``deny`` the request.

    Raises:
        InputError: the plan file is malformed (exit 3).
        StateError: no request for this plan, or it is not ``reviewed`` (exit 6).
        EnvironmentFailure: the result file cannot be written (exit 7).
    """
    result, request_id, state = evaluate_plan_file(cfg, plan_path, now=now)
    stored = access.latest_artifact(cfg, request_id, "policy") if state != "reviewed" else None
    if stored is not None:
        # Idempotent: a decided request shows its recorded decision (hash-checked by the
        # store, parsed strictly), never a fresh one that nothing recorded.
        ref, body = stored
        recorded = result_from_bytes(body)
        path = Path(ref.path) if ref.path else cfg.policy_dir / f"{recorded.plan_id}.policy.json"
        return Decided(recorded, path, request_id, state, recorded=True)
    if state != "reviewed":
        hint = (
            "run 'aegis review <plan.json>' first (or 'aegis review --no-review <plan.json>')"
            if state in ("intent", "analyzed")
            else f"see 'aegis show {request_id}'"
        )
        raise StateError(
            f"request {request_id} is {state!r}; policy decides only reviewed requests",
            hint=hint,
        )
    data = result_bytes(result)
    path = write_result(cfg, result.plan_id, data)
    trigger = "deny" if result.decision is Effect.DENY else "decide"
    record = access.advance(
        cfg,
        request_id,
        trigger,
        actor,
        artifact_kind="policy",
        artifact=data,
        artifact_path=str(path),
    )
    return Decided(result=result, path=path, request_id=request_id, state=record.state)


def verification_for(cfg: Config, plan: Plan) -> Verification | None:
    """:func:`~aegis.health.policy.derive_verification` with the policy file in force.

    None when the policy is unusable.
    """
    policy = load_policy(cfg)
    return derive_verification(policy if isinstance(policy, PolicyConfig) else None, plan)
