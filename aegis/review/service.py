"""The review stage at the edge: prompt, model call, record, sign, store.

- :func:`make_review` turns a plan into an UNSIGNED review record: build the
  prompt, call the endpoint (:mod:`aegis.review.client`), parse the answer
  (:mod:`aegis.review.parse`). Every failure becomes a record (timeout, failed,
  invalid); nothing here raises for the model's behaviour. aegis-reviewd and
  ``--direct`` both use it, then sign.
- :func:`review_plan` is what ``aegis review`` asks for: a signed review from the
  daemon (verified on receipt), or with ``direct`` from the endpoint signed with
  the local review key (development), or an unsigned local skip (``no_review``).
- :func:`run_review` records it: ``reviews/<plan_id>.review.json`` (exactly the
  canonical record bytes) and ``analyzed -> reviewed`` with the review artifact. An
  unreachable aegis-reviewd is recorded as a ``failed`` review (policy: approval).

Advisory only: a review never approves; policy decides (and counts the review
only when it verifies against aegis-reviewd's configured key).

Example:
    >>> reviewed = run_review(cfg, Path("plans/p-1.json"), direct=False, no_review=False,
    ...                       actor="alice")
    >>> reviewed.review.status, reviewed.path
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from aegis.bounds import MAX_PLAN_BYTES
from aegis.canonical import loads_strict
from aegis.errors import EnvironmentFailure, InputError, StateError, TrustError
from aegis.model import plan_from_dict, plan_hash, plan_to_dict
from aegis.review.client import chat, endpoint_label
from aegis.review.parse import Rejected, parse_answer, parse_envelope
from aegis.review.prompt import build_prompt
from aegis.review.record import (
    REVIEW_SCHEMA,
    Review,
    ReviewStatus,
    check_review,
    review_bytes,
    review_from_bytes,
    review_from_dict,
    sign_review,
)
from aegis.review.wire import REQUEST_SCHEMA, call
from aegis.sign.keys import load_signing_key, passphrase_from_env
from aegis.workflow import access
from aegis.workflow.files import write_atomic

if TYPE_CHECKING:
    from nacl.signing import SigningKey

    from aegis.config import Config
    from aegis.model import Plan
    from aegis.review.client import ChatResult

REVIEW_KEY_ENV = "AEGIS_REVIEW_KEY"
API_KEY_ENV = "AEGIS_AI_API_KEY"
_PLAN_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}\Z")


@dataclass(frozen=True)
class Reviewed:
    """What :func:`run_review` did."""

    review: Review
    path: Path
    request_id: str
    state: str
    recorded: bool = False
    """True when the request was already reviewed: ``review`` is the stored record."""
    unavailable: str | None = None
    """Why aegis-reviewd could not be asked; the review was recorded as ``failed``."""


def _time(now: datetime) -> str:
    return now.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _record(
    plan: Plan, digest: str, status: ReviewStatus, reason: str, now: datetime, **fields: object
) -> Review:
    base: dict[str, object] = {
        "schema_version": REVIEW_SCHEMA,
        "plan_id": plan.plan_id,
        "plan_hash": digest,
        "status": status,
        "risk": None,
        "flags": (),
        "recommendation": None,
        "summary": "",
        "reason": reason[:400],
        "model": None,
        "endpoint": None,
        "prompt_hash": None,
        "reviewed_at": _time(now),
        "latency_ms": 0,
        "reviewer_public_key_hex": "",
        "signature": "",
    }
    base.update(fields)
    return Review(**base)  # type: ignore[arg-type]


def _skipped(plan: Plan, digest: str, reason: str, now: datetime) -> Review:
    """An unsigned ``skipped`` record (the daemon signs the ones it makes)."""
    return _record(plan, digest, ReviewStatus.SKIPPED, reason, now)


def make_review(
    plan: Plan,
    digest: str,
    *,
    base_url: str,
    model: str | None,
    timeout_s: float,
    max_tokens: int,
    api_key: str | None = None,
    now: Callable[[], datetime] = lambda: datetime.now(UTC),
    reasoning: str = "model",
    observe: Callable[[ChatResult], None] | None = None,
) -> Review:
    """Ask the model about ``plan``; return the unsigned record of whatever happened.

    ``reasoning`` is ``ai_reasoning`` (see :func:`aegis.review.client.reasoning_controls`);
    ``observe`` is given the exchange (which ``response_format`` and reasoning controls
    the answering request carried), for the daemon's log.
    """
    if not model:
        return _skipped(plan, digest, "no model configured (AEGIS_AI_MODEL)", now())
    prompt = build_prompt(plan)
    result = chat(
        base_url,
        model,
        prompt.messages(),
        timeout_s=timeout_s,
        max_tokens=max_tokens,
        api_key=api_key,
        reasoning=reasoning,
    )
    if observe is not None:
        observe(result)
    common: dict[str, object] = {
        "model": model[:200],
        "endpoint": endpoint_label(base_url)[:300],
        "prompt_hash": prompt.prompt_hash,
        "latency_ms": result.latency_ms,
    }
    at = now()
    if result.status == "timeout":
        return _record(plan, digest, ReviewStatus.TIMEOUT, result.reason, at, **common)
    if result.status == "failed":
        return _record(plan, digest, ReviewStatus.FAILED, result.reason, at, **common)
    if result.status == "oversized":
        return _record(plan, digest, ReviewStatus.INVALID, result.reason, at, **common)
    content = parse_envelope(result.body)
    if isinstance(content, Rejected):
        status = ReviewStatus.FAILED if content.failed else ReviewStatus.INVALID
        return _record(plan, digest, status, content.reason, at, **common)
    answer = parse_answer(content.text)
    if isinstance(answer, Rejected):
        return _record(plan, digest, ReviewStatus.INVALID, answer.reason, at, **common)
    return _record(
        plan,
        digest,
        ReviewStatus.VALID,
        "",
        at,
        risk=answer.risk,
        flags=answer.flags,
        recommendation=answer.recommendation,
        summary=answer.summary,
        **common,
    )


def review_key_path(cfg: Config, env: Mapping[str, str] | None = None) -> Path:
    """aegis-reviewd's secret key: ``AEGIS_REVIEW_KEY`` or ``<etc>/keys/review.key``."""
    env = os.environ if env is None else env
    value = env.get(REVIEW_KEY_ENV)
    return Path(value) if value else cfg.keys_dir / "review.key"


def load_review_key(cfg: Config, env: Mapping[str, str] | None = None) -> SigningKey:
    """Load aegis-reviewd's signing key (passphrase from ``AEGIS_KEY_PASSPHRASE``).

    Raises:
        InputError: no key file. TrustError: loose permissions, wrong passphrase.
    """
    path = review_key_path(cfg, env)
    if not path.exists():
        raise InputError(
            f"no review signing key at {path}",
            hint=f"aegisctl keygen --role review --out {cfg.keys_dir} (or set {REVIEW_KEY_ENV})",
        )
    return load_signing_key(path, passphrase_from_env(dict(env or os.environ)))


def configured_review_key(cfg: Config) -> str | None:
    """The public key in ``<etc>/keys/review.pub`` (what policy trusts), if present."""
    try:
        text = (cfg.keys_dir / "review.pub").read_text(encoding="ascii").strip().lower()
    except (OSError, UnicodeDecodeError):
        return None
    return text if re.fullmatch(r"[0-9a-f]{64}", text) else None


def _check_received(review: Review, digest: str, cfg: Config) -> Review:
    """Accept a review handed to us only if it is bound to our plan and properly signed.

    Signed by the key it names, and by the configured key when one is configured.
    """
    if review.status is not ReviewStatus.SKIPPED and not review.signature:
        raise TrustError("the reviewer returned an unsigned review")
    expected = configured_review_key(cfg)
    key = expected or review.reviewer_public_key_hex
    why = check_review(review, (key,), digest) if review.signature else None
    if why is None and review.plan_hash != digest:
        why = "the review is bound to another plan"
    if why is not None:
        raise TrustError(f"refusing the review from aegis-reviewd: {why}")
    return review


def _via_daemon(cfg: Config, plan: Plan, digest: str) -> Review:

    request = {"schema_version": REQUEST_SCHEMA, "op": "review", "plan": plan_to_dict(plan)}
    answer = call(cfg.reviewd_socket, request, timeout=cfg.ai_timeout_s + 15)
    if not answer["ok"]:
        error = str(answer.get("error", "refused"))[:400]
        raise EnvironmentFailure(f"aegis-reviewd refused the review: {error}")
    return _check_received(review_from_dict(answer.get("review")), digest, cfg)


def review_plan(cfg: Config, plan: Plan, *, direct: bool, no_review: bool) -> Review:
    """A review of ``plan``: unsigned local skip, direct (dev key) or from aegis-reviewd.

    Raises:
        EnvironmentFailure: the daemon is unreachable (exit 7).
        TrustError: the daemon's review does not verify (exit 4).
        InputError: ``direct`` without a local review key.
    """
    digest = plan_hash(plan)
    now = datetime.now(UTC)
    if no_review:
        return _skipped(plan, digest, "skipped by configuration (--no-review)", now)
    if not cfg.review_enabled:
        return _skipped(plan, digest, "skipped by configuration (AEGIS_REVIEW=off)", now)
    if not direct:
        return _via_daemon(cfg, plan, digest)
    key = load_review_key(cfg)
    unsigned = make_review(
        plan,
        digest,
        base_url=cfg.ai_base_url,
        model=cfg.ai_model,
        timeout_s=cfg.ai_timeout_s,
        max_tokens=cfg.ai_max_tokens,
        api_key=os.environ.get(API_KEY_ENV),
        reasoning=cfg.ai_reasoning,
    )
    return sign_review(unsigned, key)


def read_plan(path: Path) -> tuple[Plan, str, bytes]:
    """Read a plan file strictly; return (plan, hash, raw bytes).

    Raises:
        InputError: unreadable, too large, malformed, not a plan, unsafe plan id.
    """
    try:
        with path.open("rb") as f:
            raw = f.read(MAX_PLAN_BYTES + 1)
    except OSError as e:
        raise InputError(f"cannot read plan {path}: {e.strerror}") from e
    if len(raw) > MAX_PLAN_BYTES:
        raise InputError(f"plan {path} is larger than {MAX_PLAN_BYTES} bytes")
    plan = plan_from_dict(loads_strict(raw, max_bytes=MAX_PLAN_BYTES))
    if not _PLAN_ID_RE.match(plan.plan_id):
        raise InputError("plan id is not a plain token")
    return plan, plan_hash(plan), raw


def write_review(cfg: Config, review: Review) -> tuple[Path, bytes]:
    """Write ``reviews/<plan_id>.review.json`` (temp file + os.replace); return path, bytes."""
    if not _PLAN_ID_RE.match(review.plan_id):
        raise InputError("plan id is not a plain token")
    data = review_bytes(review)
    path = cfg.reviews_dir / f"{review.plan_id}.review.json"
    write_atomic(path, data, host_install=cfg.home is None, mode=0o640)
    return path, data


def run_review(
    cfg: Config, plan_path: Path, *, direct: bool, no_review: bool, actor: str
) -> Reviewed:
    """Review the plan at ``plan_path`` for its request and record it (analyzed -> reviewed).

    A request already past ``analyzed`` shows its recorded review (idempotent).

    aegis-reviewd unreachable, or refusing or garbling its answer, is recorded as a
    ``failed`` review (``Reviewed.unavailable`` says why); policy then requires approval.

    Raises:
        InputError (3), TrustError (4: a review that does not verify), StateError (6: no
        request, wrong state), EnvironmentFailure (7: cannot write).
    """
    plan, digest, _ = read_plan(plan_path)
    request = access.find_request_by_plan(cfg, digest)
    if request is None:
        raise StateError(
            f"no change request is bound to plan {plan.plan_id!r} (sha256 {digest[:16]}...)",
            hint="plan the change with 'aegis apt ... --plan' and use the plan file it prints",
        )
    if request.state != "analyzed":
        stored = access.latest_artifact(cfg, request.id, "review")
        if stored is None:
            raise StateError(f"request {request.id} is {request.state!r}; nothing to review")
        ref, body = stored
        recorded = review_from_bytes(body)
        path = Path(ref.path) if ref.path else cfg.reviews_dir / f"{plan.plan_id}.review.json"
        return Reviewed(recorded, path, request.id, request.state, recorded=True)
    unavailable = None
    try:
        review = review_plan(cfg, plan, direct=direct, no_review=no_review)
    except EnvironmentFailure as e:
        # The operator asked for a review and the reviewer is down or refused: record a
        # failed review (fail closed: policy then requires approval) instead of leaving
        # the request stuck in analyzed. ``aegis resume`` still retries instead.
        unavailable = e.message
        review = _record(plan, digest, ReviewStatus.FAILED, e.message, datetime.now(UTC))
    path, data = write_review(cfg, review)
    record = access.advance(
        cfg,
        request.id,
        "review",
        actor,
        artifact_kind="review",
        artifact=data,
        artifact_path=str(path),
    )
    return Reviewed(review, path, request.id, record.state, unavailable=unavailable)
