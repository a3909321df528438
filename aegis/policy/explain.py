"""Turning a :class:`PolicyResult` into what people read. Pure (no rich, no I/O).

The CLI shows these rows through ``aegis.cli.render.print_table``, which makes
every cell inert: reasons quote package names, versions and analyzer messages,
which are untrusted text.

Example:
    >>> fired_rows(result)[0]
    ['repo.untrusted', 'deny', 'untrusted or weakly pinned package repository: ...', ...]
"""

from __future__ import annotations

from typing import Any

from aegis.ecosystems.rulesets import ecosystem_rules
from aegis.model import Tool
from aegis.policy.result import Controls, Effect, FiredRule, PolicyResult
from aegis.policy.ruleset import default_rules

FIRED_COLUMNS = ("rule", "effect", "reason", "controls")
NOT_FIRED_COLUMNS = ("rule", "why it did not fire")


def reason_text(rule: FiredRule) -> str:
    """The reason as shown: the contract phrase first (verbatim), then the specifics."""
    if rule.contract:
        return f"{rule.contract} ({rule.reason})" if rule.reason else rule.contract
    return rule.reason


def rule_controls(rule: FiredRule) -> str:
    """What this one rule asks for."""
    if rule.effect is Effect.REQUIRE_APPROVAL and rule.approvals:
        roles = f" ({', '.join(rule.roles)})" if rule.roles else ""
        return f"approval: {rule.approvals}{roles}"
    if rule.rule_id.startswith("review.") and rule.effect is not Effect.DENY:
        return ""  # a review entry that only records the review (no control of its own)
    if rule.effect is Effect.ALLOW_WITH_SNAPSHOT:
        return "snapshot"
    return ""


def controls_text(controls: Controls) -> str:
    """One line naming every required control."""
    if controls.approval.count:
        roles = f" ({', '.join(controls.approval.roles)})" if controls.approval.roles else ""
        approval = f"approval by {controls.approval.count}{roles}"
    else:
        approval = "no approval"
    snapshot = "snapshot required" if controls.snapshot else "no snapshot"
    return f"{approval}; {snapshot}"


def fired_rows(result: PolicyResult) -> list[list[str]]:
    """Rows of the fired-rules table, strictest first.

    A review entry records the decision after merging; a skipped review raised nothing,
    so people see it as ``neutral`` rather than as the decision the other rules made.
    """
    return [
        [
            f.rule_id,
            "neutral" if f.rule_id == "review.skipped" else f.effect.value,
            reason_text(f),
            rule_controls(f),
        ]
        for f in result.fired
    ]


def not_fired_rows(result: PolicyResult) -> list[list[str]]:
    """Rows of the ``--explain`` table: every rule that did not fire and why."""
    return [[n.rule_id, n.why] for n in result.not_fired]


def _counted(result: PolicyResult) -> str:
    if not result.review.counted:
        return "not counted"
    return "neutral" if result.review.status.value == "skipped" else "counted"


def summary_lines(result: PolicyResult) -> list[tuple[str, str]]:
    """``label: value`` lines printed above the table."""
    lines = [
        ("decision", result.decision.value),
        ("controls", controls_text(result.controls)),
        ("plan", f"{result.plan_id} sha256:{result.plan_hash}"),
        (
            "review",
            f"{result.review.status.value} ({_counted(result)}): {result.review.detail}",
        ),
        (
            "policy",
            f"{result.config_name} {result.ruleset_version} version {result.policy_version[:16]}",
        ),
        ("evaluated", result.evaluated_at),
    ]
    if result.shadow is not None:
        lines.append(
            (
                "shadow",
                f"{result.shadow.config_name}: {result.shadow.decision.value} "
                f"({controls_text(result.shadow.controls)}; not enforced)",
            )
        )
    return lines


def rules_catalog() -> list[dict[str, Any]]:
    """Every built-in rule: id, default effect, overridable, summary, contract phrase.

    The generic rules with apt's among them, in apt's evaluation order (the list this
    was before apt's rules moved to their ecosystem).
    """
    return [
        {
            "rule_id": r.id,
            "effect": r.effect.value,
            "overridable": r.overridable,
            "summary": r.summary,
            "contract": r.contract,
        }
        for r in ecosystem_rules(Tool.APT, default_rules())
    ]
