"""apt's own rules go back among the generic ones where the one built-in list had them."""

from __future__ import annotations

from aegis.ecosystems.apt.rules import PLACES, apt_rules
from aegis.policy.ruleset import default_rules

# The evaluation order before apt's rules moved to their ecosystem (decisions record it).
ORDER_BEFORE_THE_MOVE = [
    "analysis.failed",
    "target.unknown",
    "target.direct-path",
    "target.url",
    "target.replacement",
    "target.invalid",
    "command.metachar",
    "repo.untrusted",
    "repo.weakly-pinned",
    "repo.unsigned",
    "repo.weak-algorithm",
    "repo.expired",
    "repo.frozen",
    "repo.insecure-config",
    "config.apt-hooks",
    "provenance.missing",
    "provenance.mismatch",
    "evidence.stale",
    "evidence.future",
    "repo.undated",
    "repo.release-changed",
    "repo.rollback",
    "apt.removal",
    "apt.downgrade",
    "apt.held-back",
    "apt.recover",
    "kernel.change",
    "package.security-sensitive",
    "package.essential",
    "name.lookalike",
    "package.release-age",
    "vuln.fixed-available",
    "vuln.fixed-available-noncritical",
    "vuln.no-fix",
    "vuln.db-missing",
    "vuln.db-stale",
    "script.download-exec",
    "script.decoded-exec",
    "script.hostile",
    "content.hostile",
    "script.changed",
    "script.sensitive",
    "content.apt-hook",
    "content.model-directed-text",
    "content.setuid",
    "content.sensitive-path",
    "content.unavailable",
    "content.not-inspected",
    "provenance.build-ambiguous",
    "apt.update",
    "apt.noop",
    "apt.upgrade-clean",
]


def test_apt_rules_keep_the_order_decisions_were_made_in() -> None:
    assert [r.id for r in apt_rules(default_rules())] == ORDER_BEFORE_THE_MOVE


def test_every_anchor_is_a_generic_rule_and_no_apt_rule_is_generic() -> None:
    generic = {r.id for r in default_rules()}
    assert {anchor for anchor, _ in PLACES} <= generic
    own = [r.id for _, block in PLACES for r in block]
    assert not set(own) & generic
    assert len(own) == len(set(own))


def test_a_rule_set_without_an_anchor_still_evaluates_the_block() -> None:
    # Dropping a generic rule must never silently drop apt's rules placed after it.
    generic = tuple(r for r in default_rules() if r.id != "command.metachar")
    ids = [r.id for r in apt_rules(generic)]
    assert "repo.untrusted" in ids
    assert ids[-1] == "config.apt-hooks"
    assert apt_rules(()) == ()
