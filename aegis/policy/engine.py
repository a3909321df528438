"""The policy engine: ``evaluate(plan, review, policy_config, now) -> PolicyResult``.

Pure: the plan, the review record, the config and the time are arguments; nothing
is read from disk, clock or environment, so the same inputs give the same bytes
(``result_bytes``). Order of a decision:

1. No usable policy (:class:`PolicyUnavailable`, unknown rule set) or an empty
   active rule set: deny (fail closed).
2. Every enabled rule runs; overrides from ``[rules."<id>"]`` apply (stricter only,
   unless the rule is overridable).
3. The strictest fired effect is the decision; when no rule allows, approval is
   required (``policy.no-allow``).
4. The review enters through ONE call, :func:`aegis.policy.review_gate.merge_review`,
   which calls the review stage's tighten-only :func:`aegis.review.merge.merge`.
5. Controls are derived from the decision and the fired rules.
6. The shadow config, if any, is evaluated the same way and recorded, not enforced.

Example:
    >>> result = evaluate(plan, review, load_policy_config(path), datetime.now(UTC))
    >>> result.decision, result.controls.snapshot
    (<Effect.ALLOW_WITH_SNAPSHOT: 'allow-with-snapshot'>, True)
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from aegis.canonical import canonical_hash
from aegis.codec import to_dict
from aegis.ecosystems.rulesets import ecosystem_rules
from aegis.errors import InputError
from aegis.model import Plan, Tool
from aegis.model import plan_hash as compute_plan_hash
from aegis.policy.config import (
    ApprovalSettings,
    PolicyConfig,
    PolicyUnavailable,
    ReviewSettings,
)
from aegis.policy.fields import PolicyConfigError
from aegis.policy.result import (
    POLICY_SCHEMA,
    STRICTNESS,
    ApprovalControl,
    Controls,
    Effect,
    FiredRule,
    NotFiredRule,
    PolicyResult,
    ShadowResult,
    stricter,
)
from aegis.policy.review_gate import ReviewAssessment, assess_review, merge_review
from aegis.policy.rules import RULESET_VERSION, Facts, Hit, Rule
from aegis.policy.ruleset import ruleset

NO_ALLOW_ID = "policy.no-allow"
UNAVAILABLE_ID = "policy.unavailable"
EMPTY_ID = "policy.empty-ruleset"
_ALLOWING = (Effect.ALLOW, Effect.ALLOW_WITH_SNAPSHOT)
_NO_APPROVAL = ApprovalControl(count=0, roles=())


def format_time(now: datetime) -> str:
    """UTC ISO-8601 with second precision and a ``Z`` suffix.

    Raises:
        RuntimeError: ``now`` is naive (a programming error: time must be explicit UTC).
    """
    if now.tzinfo is None:
        raise RuntimeError("evaluate() needs an aware datetime")
    return now.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def policy_version(config: PolicyConfig | PolicyUnavailable) -> tuple[str, str]:
    """Return (config hash, policy version) where the version covers rule set and config."""
    body: dict[str, Any]
    if isinstance(config, PolicyUnavailable):
        body = {"unavailable": config.reason}
        ruleset_version = RULESET_VERSION
    else:
        body = to_dict(config)
        if body.get("automation") is None:
            # A policy without [automation] keeps the version it had before the table existed.
            body.pop("automation", None)
        ruleset_version = config.ruleset
    config_hash = canonical_hash(body)
    return config_hash, canonical_hash({"ruleset": ruleset_version, "config": config_hash})


def is_current(result: PolicyResult, config: PolicyConfig | PolicyUnavailable) -> bool:
    """Whether ``result`` was decided under exactly this rule set and config."""
    return result.policy_version == policy_version(config)[1]


def check_config(config: PolicyConfig) -> None:
    """Refuse a config the rule set cannot honour, or whose overrides would loosen.

    Raises:
        PolicyConfigError: unknown rule set or rule id; an override that disables,
            loosens or lowers the approvals of a rule not marked overridable.
    """
    rules = ruleset(config.ruleset)
    if rules is None:
        raise PolicyConfigError(
            f"unknown ruleset {config.ruleset!r}; this Aegis knows {RULESET_VERSION!r}"
        )
    by_id = {r.id: r for r in rules}
    # Each ecosystem's own rules may be overridden too (``go.sumdb-off`` for a mirror,
    # ``apt.held-back``); apt's need the generic ones to be placed among.
    for tool in Tool:
        by_id.update({r.id: r for r in ecosystem_rules(tool, rules) if r.id not in by_id})
    for rule_id, override in config.rules.items():
        rule = by_id.get(rule_id)
        if rule is None:
            raise PolicyConfigError(f'rules."{rule_id}": no such rule in {config.ruleset}')
        if rule.overridable:
            continue
        if not override.enabled:
            raise PolicyConfigError(f'rules."{rule_id}": this rule cannot be disabled')
        if (
            override.effect is not None
            and STRICTNESS[Effect(override.effect)] < STRICTNESS[rule.effect]
        ):
            raise PolicyConfigError(
                f'rules."{rule_id}": effect {override.effect} is looser than {rule.effect.value};'
                " overrides may only make this rule stricter"
            )
        if override.approvals is not None and override.approvals < config.approval.count:
            raise PolicyConfigError(
                f'rules."{rule_id}": approvals {override.approvals} is fewer than the default '
                f"{config.approval.count}; overrides may only make this rule stricter"
            )


def _fire(rule: Rule, hit: Hit, config: PolicyConfig) -> FiredRule:
    """Apply the rule's override to one hit and build the fired record."""
    effect = hit.effect or rule.effect
    count, roles = config.approval.count, config.approval.roles
    override = config.rules.get(rule.id)
    if override is not None:
        if override.effect is not None:
            wanted = Effect(override.effect)
            # Non-overridable rules only tighten, even if a config skipped check_config.
            effect = wanted if rule.overridable else stricter(effect, wanted)
        if override.approvals is not None:
            count = override.approvals if rule.overridable else max(count, override.approvals)
        if override.roles:
            # Roles each must be represented among the approvers: adding roles tightens,
            # replacing them could drop one, which only an overridable rule may do.
            roles = (
                override.roles
                if rule.overridable
                else tuple(dict.fromkeys((*roles, *override.roles)))
            )
    approval = effect is Effect.REQUIRE_APPROVAL
    return FiredRule(
        rule_id=rule.id,
        effect=effect,
        reason=hit.reason,
        contract=rule.contract if effect is Effect.DENY else None,
        subjects=hit.subjects,
        approvals=count if approval else 0,
        roles=tuple(roles) if approval else (),
    )


def _controls(
    decision: Effect, fired: tuple[FiredRule, ...], changes: bool, default: ApprovalSettings
) -> Controls:
    if decision is Effect.DENY:
        return Controls(approval=_NO_APPROVAL, snapshot=False)
    approval = _NO_APPROVAL
    if decision is Effect.REQUIRE_APPROVAL:
        needing = [f for f in fired if f.effect is Effect.REQUIRE_APPROVAL and f.approvals]
        if not needing:  # only a neutral entry says approval: the policy's default applies
            approval = ApprovalControl(count=default.count, roles=tuple(sorted(default.roles)))
        else:
            # The strictest requirement of every rule: most approvers, every role named.
            count = max(f.approvals for f in needing)
            roles = tuple(sorted({role for f in needing for role in f.roles}))
            approval = ApprovalControl(count=count, roles=roles)
    snapshot = changes and decision in (Effect.ALLOW_WITH_SNAPSHOT, Effect.REQUIRE_APPROVAL)
    return Controls(approval=approval, snapshot=snapshot)


def _sorted(fired: list[FiredRule]) -> tuple[FiredRule, ...]:
    return tuple(sorted(fired, key=lambda f: (-STRICTNESS[f.effect], f.rule_id)))


UNSUPPORTED_ID = "ecosystem.unsupported"


def _ecosystem_rules(plan: Plan, generic: tuple[Rule, ...]) -> tuple[Rule, ...] | None:
    """The generic rules plus the plan's ecosystem's own; none for a tool nobody knows."""
    try:
        return ecosystem_rules(plan.intent.tool, generic)
    except InputError:
        return None


def _decide(
    plan: Plan,
    assessed: ReviewAssessment,
    config: PolicyConfig | PolicyUnavailable,
    now: datetime,
) -> tuple[Effect, Controls, tuple[FiredRule, ...], tuple[NotFiredRule, ...]]:
    """Steps 1-5 of the module docstring for one config."""
    if isinstance(config, PolicyUnavailable):
        deny = FiredRule(UNAVAILABLE_ID, Effect.DENY, config.reason, None, ())
        return Effect.DENY, _controls(Effect.DENY, (), False, ApprovalSettings()), (deny,), ()
    rules = ruleset(config.ruleset)
    if rules is None:
        reason = f"unknown rule set {config.ruleset!r}: nothing can be evaluated"
        deny = FiredRule(UNAVAILABLE_ID, Effect.DENY, reason, None, ())
        return Effect.DENY, _controls(Effect.DENY, (), False, ApprovalSettings()), (deny,), ()
    eco_rules = _ecosystem_rules(plan, rules)
    if eco_rules is None:
        reason = f"no rules for package tool {str(plan.intent.tool)[:40]!r} (fail closed)"
        deny = FiredRule(UNSUPPORTED_ID, Effect.DENY, reason, None, ())
        return Effect.DENY, _controls(Effect.DENY, (), False, ApprovalSettings()), (deny,), ()
    rules = eco_rules
    facts = Facts(plan, config, now)
    fired: list[FiredRule] = []
    not_fired: list[NotFiredRule] = []
    active = 0
    for rule in rules:
        override = config.rules.get(rule.id)
        if override is not None and not override.enabled and rule.overridable:
            not_fired.append(NotFiredRule(rule.id, "disabled by a [rules] override"))
            continue
        active += 1
        outcome = rule.check(facts)
        if isinstance(outcome, Hit):
            fired.append(_fire(rule, outcome, config))
        else:
            not_fired.append(NotFiredRule(rule.id, outcome.why))
    if active == 0:
        deny = FiredRule(EMPTY_ID, Effect.DENY, "the active rule set is empty", None, ())
        return (
            Effect.DENY,
            _controls(Effect.DENY, (), False, ApprovalSettings()),
            (deny,),
            tuple(not_fired),
        )
    decision = Effect.ALLOW
    for f in fired:
        decision = stricter(decision, f.effect)
    if (
        not any(f.effect in _ALLOWING for f in fired)
        and STRICTNESS[decision] < STRICTNESS[Effect.REQUIRE_APPROVAL]
    ):
        fired.append(
            _fire(
                Rule(NO_ALLOW_ID, Effect.REQUIRE_APPROVAL, "", lambda _f: Hit("")),
                Hit("no rule allows this plan: approval required (fail closed)"),
                config,
            )
        )
        decision = Effect.REQUIRE_APPROVAL
    # The one place the review touches the decision; merge_review only tightens.
    decision, review_fired = merge_review(decision, assessed, config)
    fired.extend(review_fired)
    ordered = _sorted(fired)
    controls = _controls(decision, ordered, bool(facts.changing), config.approval)
    return decision, controls, ordered, tuple(not_fired)


def evaluate(
    plan: Plan,
    review: Any,
    policy_config: PolicyConfig | PolicyUnavailable,
    now: datetime,
    *,
    plan_hash: str | None = None,
    review_hash: str | None = None,
) -> PolicyResult:
    """Decide about ``plan``.

    Args:
        plan: the operation plan (parsed strictly).
        review: the review record of :mod:`aegis.review.record` for this plan, or None.
            It counts only when it verifies against ``policy_config.review.public_keys``
            and is bound to this plan's hash.
        policy_config: the parsed policy, or :class:`PolicyUnavailable` (denies).
        now: evaluation time, an aware datetime (seconds are kept, microseconds dropped).
        plan_hash: the plan's hash when the caller already has it (saves re-hashing).
        review_hash: the review record's hash when the caller already has it.

    Returns:
        The :class:`PolicyResult`; identical inputs give identical ``result_bytes``.
    """
    if now.tzinfo is None:
        raise RuntimeError("evaluate() needs an aware datetime (UTC)")
    now = now.astimezone(UTC).replace(microsecond=0)
    digest = plan_hash or compute_plan_hash(plan)
    config = policy_config
    # With no usable policy the review cannot matter (the decision is deny): settings
    # that count nothing keep the binding honest.
    settings = (
        config.review
        if isinstance(config, PolicyConfig)
        else ReviewSettings(public_keys=(), allow_skip=False)
    )
    assessed = assess_review(review, digest, settings, review_hash=review_hash)
    decision, controls, fired, not_fired = _decide(plan, assessed, config, now)
    config_hash, version = policy_version(config)
    shadow = None
    if isinstance(config, PolicyConfig) and config.shadow is not None:
        shadow_cfg = replace(config.shadow, shadow=None)
        s_settings = shadow_cfg.review
        if not s_settings.public_keys:
            s_settings = replace(s_settings, public_keys=settings.public_keys)
        s_assessed = assess_review(review, digest, s_settings, review_hash=review_hash)
        s_decision, s_controls, s_fired, _ = _decide(plan, s_assessed, shadow_cfg, now)
        shadow = ShadowResult(
            policy_version=policy_version(shadow_cfg)[1],
            config_name=shadow_cfg.name,
            decision=s_decision,
            controls=s_controls,
            fired=s_fired,
        )
    return PolicyResult(
        schema_version=POLICY_SCHEMA,
        plan_id=plan.plan_id,
        plan_hash=digest,
        review=assessed.binding,
        ruleset_version=config.ruleset if isinstance(config, PolicyConfig) else RULESET_VERSION,
        config_name=config.name if isinstance(config, PolicyConfig) else "(unavailable)",
        config_hash=config_hash,
        policy_version=version,
        evaluated_at=format_time(now),
        decision=decision,
        controls=controls,
        fired=fired,
        not_fired=not_fired,
        shadow=shadow,
    )


__all__ = [
    "PolicyConfigError",
    "check_config",
    "evaluate",
    "format_time",
    "is_current",
    "policy_version",
]
