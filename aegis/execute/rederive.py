"""aegisd's own view of a signed plan: this host, its re-derivation, and policy on it.

docs/design.md "Trust": evidence in the store is not trusted, so aegisd derives the plan
again from the signed intent with the same analyzer and its own configuration, and
evaluates policy on that derivation (with the review only when it verifies and names
this plan). The checks in :mod:`aegis.execute.apply` compare these with what was signed.

Example:
    >>> derived = derive_plan(cfg, ep, now)
    >>> policy_binding(cfg, ep, derived, now).decision
    'allow-with-snapshot'
"""

from __future__ import annotations

import os
import stat
from datetime import datetime
from typing import TYPE_CHECKING, Any

from aegis.analyze.stamps import this_host as analyzer_host
from aegis.canonical import sha256_hex
from aegis.ecosystems import idle, prefetch
from aegis.errors import AegisError, EnvironmentFailure
from aegis.execute.sightings import trusted_first_seen
from aegis.model import Host, Plan
from aegis.policy.engine import evaluate
from aegis.policy.result import result_hash
from aegis.policy.review_gate import parse_review
from aegis.policy.run import load_policy
from aegis.review.record import MAX_REVIEW_BYTES
from aegis.safe_read import read_capped
from aegis.sign.execution_plan import policy_binding as binding_of
from aegis.workflow import access

if TYPE_CHECKING:
    from aegis.config import Config
    from aegis.sign.execution_plan import ExecutionPlan, PolicyBinding


def this_host(cfg: Config) -> Host:
    """This machine's identity, exactly as the analyzer records it in plans."""
    return analyzer_host(cfg)


def derive_plan(cfg: Config, ep: ExecutionPlan, now: datetime) -> Plan:
    """Analyse the signed intent again, as aegisd, with aegisd's own configuration.

    Raises:
        AegisError: the analyzer could not run.
    """
    try:
        from aegis.ecosystems import for_tool  # noqa: PLC0415 - a missing analyzer is refused
    except ImportError as e:
        raise EnvironmentFailure(f"the analyzer is not available: {e}") from e
    # for_tool refuses a tool this Aegis does not know: aegisd never runs it.
    eco = for_tool(ep.intent.tool)
    # The signed artifacts are fetched while the tool resolves (npm, pip): the planner
    # reads those of the URLs its own resolution names, checked as a fresh download.
    urls = tuple(a.url for a in ep.plan.ecosystem.artifacts) if ep.plan.ecosystem else ()
    if urls and ep.plan.content_inspected:
        idle.queue(lambda: prefetch.fetch_ahead(urls))
    try:
        plan: Plan = eco.plan(cfg, ep.intent, now, inspect_contents=ep.plan.content_inspected)
    finally:
        idle.clear()
        prefetch.clear()
    return plan


def policy_binding(cfg: Config, ep: ExecutionPlan, derived: Plan, now: datetime) -> PolicyBinding:
    """Evaluate aegisd's own policy on its own derivation; return the comparable binding.

    The derivation reproduces the signed plan (checked before), so it is evaluated
    under the signed plan's hash: a review bound to that plan still counts. The
    review bytes come from the store, checked against the signed review hash.
    """
    review = _load_review(cfg, ep)
    # The derivation's first sightings come from the group-writable store (equal to the
    # signed plan's, checked before): policy judges release age by root's own record.
    result = evaluate(
        trusted_first_seen(cfg, derived, now),
        review,
        load_policy(cfg),
        now,
        plan_hash=ep.plan_hash,
        review_hash=ep.review_hash if review is not None else None,
    )
    return binding_from_result(result)


def binding_from_result(result: Any) -> PolicyBinding:
    """The :class:`PolicyBinding` of a policy result (same fields the signer binds)."""
    return binding_of(result, result_hash(result))


def _load_review(cfg: Config, ep: ExecutionPlan) -> Any:
    if ep.review_hash is None:
        return None

    raw: bytes | None = None
    path = cfg.reviews_dir / f"{ep.plan.plan_id}.review.json"
    try:
        # The reviews directory is group-writable: a FIFO or a link to /dev/zero
        # planted there must neither hang nor exhaust aegisd.
        candidate = read_capped(path, MAX_REVIEW_BYTES, "review", follow=False)
        if sha256_hex(candidate) == ep.review_hash:
            raw = candidate
    except AegisError:
        raw = None
    if raw is None:
        if not _plain_store(cfg):
            return None
        try:
            raw = access.load_artifact(cfg, ep.review_hash)
        except (AegisError, OSError):
            return None
    try:
        return parse_review(raw)
    except AegisError:
        return None


def _plain_store(cfg: Config) -> bool:
    """Whether the store is a plain file aegisd may open (it opens it read-write, as root).

    The store directory is group-writable: ``state.db`` may be a link a member planted
    to some root-owned database, which opening would convert to WAL and migrate. No
    store means no review from it, never a new one created by root.
    """
    try:
        st = os.lstat(cfg.store_path)
    except OSError:
        return False
    return stat.S_ISREG(st.st_mode) and st.st_nlink == 1
