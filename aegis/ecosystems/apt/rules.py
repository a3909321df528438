"""apt's own rules, placed among the generic ones at fixed positions.

Every other ecosystem evaluates the generic rules it keeps, then its own. apt's rules
were part of the one built-in list before the split, and a plan's decision records the
rules that did not fire in evaluation order (``not_fired``, signed and hashed), so apt's
blocks go back exactly where they were: each follows one generic rule (its anchor).
A block whose anchor a rule set lacks is appended at the end, never dropped; a rule set
with no rules at all gets none of apt's either (the engine denies it as empty).

Generic rules apt keeps: all of them (analysis, command preview, provenance, evidence
age, kernel and security-sensitive packages, names, release age, vulnerabilities,
contents).

Example:
    >>> [r.id for r in apt_rules(())]
    []
"""

from __future__ import annotations

from aegis.ecosystems.apt import rules_delta, rules_release, rules_trust
from aegis.policy.rules import Rule

# (anchor, block): the block follows the generic rule ``anchor``, in this order.
PLACES: tuple[tuple[str, tuple[Rule, ...]], ...] = (
    ("analysis.failed", rules_trust.TARGETS),
    ("command.metachar", rules_trust.REPOSITORIES),
    ("provenance.missing", rules_trust.PROVENANCE),
    ("evidence.future", rules_release.RULES + rules_delta.DELTA),
    ("package.security-sensitive", rules_delta.ESSENTIAL),
    ("content.not-inspected", rules_delta.ALLOW),
)


def apt_rules(generic: tuple[Rule, ...]) -> tuple[Rule, ...]:
    """Every generic rule, each followed by the apt block anchored on it."""
    if not generic:
        return ()
    after = dict(PLACES)
    out: list[Rule] = []
    for rule in generic:
        out.append(rule)
        out.extend(after.pop(rule.id, ()))
    for block in after.values():  # anchors this rule set lacks: still evaluated
        out.extend(block)
    return tuple(out)
