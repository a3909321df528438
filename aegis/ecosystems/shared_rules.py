"""Rule checks every language ecosystem (npm, pip, Go, Cargo) words and judges the same way.

Example:
    >>> Rule("npm.noop", Effect.ALLOW, "nothing to change", noop)
"""

from __future__ import annotations

from aegis.model import Action
from aegis.policy.rules import Check, Facts, Hit, Miss, listed, unique


def downgrade_or_removal(facts: Facts) -> Check:
    """The change downgrades or removes installed packages."""
    bad = [f"{c.name} {c.current_version} -> {c.candidate_version or 'removed'}"
           for c in facts.changing if c.action in (Action.DOWNGRADE, Action.REMOVE)]  # fmt: skip
    if not bad:
        return Miss("no downgrades or removals")
    return Hit(f"downgrades or removals: {listed(bad)}", unique(bad))


def noop(facts: Facts) -> Check:
    """Allow: nothing changes (what was asked for is installed already)."""
    if facts.plan.failure is None and not facts.changing:
        return Hit("nothing to change")
    return Miss("there are changes")
