"""The rule sets this Aegis knows, by version: every generic rule module's rules, in order.

Above :mod:`aegis.policy.rules` (the rule type and the helpers each rule module imports)
and the rule modules themselves, so that none of them imports back. Each ecosystem adds
its own rules to these (:func:`aegis.ecosystems.rulesets.ecosystem_rules`); apt's go back
at the places they had in this list before they moved (:mod:`aegis.ecosystems.apt.rules`).
"""

from __future__ import annotations

from collections.abc import Callable

from aegis.policy import rules_delta, rules_repo
from aegis.policy.rules import RULESET_VERSION, Rule


def default_rules() -> tuple[Rule, ...]:
    """The rules of :data:`RULESET_VERSION`, in evaluation order (ids unique)."""
    return rules_repo.RULES + rules_delta.RULES


_RULESETS: dict[str, Callable[[], tuple[Rule, ...]]] = {RULESET_VERSION: default_rules}


def ruleset(version: str) -> tuple[Rule, ...] | None:
    """The rules of a rule-set version, or None when this Aegis does not know it."""
    factory = _RULESETS.get(version)
    return factory() if factory is not None else None
