"""The rule sets this Aegis knows, by version: every generic rule module's rules, in order.

Above :mod:`aegis.policy.rules` (the rule type and the helpers each rule module imports)
and the rule modules themselves, so that none of them imports back. apt's Release rules
(:mod:`aegis.ecosystems.apt.rules_release`) have been in the set since its first version;
they fire only on a plan's apt repositories.
"""

from __future__ import annotations

from collections.abc import Callable

from aegis.ecosystems.apt import rules_release
from aegis.policy import rules_delta, rules_repo
from aegis.policy.rules import RULESET_VERSION, Rule


def default_rules() -> tuple[Rule, ...]:
    """The rules of :data:`RULESET_VERSION`, in evaluation order (ids unique)."""
    return rules_repo.RULES + rules_release.RULES + rules_delta.RULES


_RULESETS: dict[str, Callable[[], tuple[Rule, ...]]] = {RULESET_VERSION: default_rules}


def ruleset(version: str) -> tuple[Rule, ...] | None:
    """The rules of a rule-set version, or None when this Aegis does not know it."""
    factory = _RULESETS.get(version)
    return factory() if factory is not None else None
