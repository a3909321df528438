"""Generic rules about the request and its evidence.

The analysis, the command preview, provenance and the age of the plan: every ecosystem
keeps some of them (docs/ecosystems.md). apt's own target, repository and index rules
are in :mod:`aegis.ecosystems.apt.rules_trust`. Pure; see :mod:`aegis.policy.rules`.

Example:
    >>> [r.id for r in RULES if r.contract == PHRASE_METACHAR]
    ['command.metachar']
"""

from __future__ import annotations

import re
from datetime import timedelta

from aegis.model import Action
from aegis.policy.result import Effect
from aegis.policy.rules import (
    PHRASE_METACHAR,
    PHRASE_SOURCE,
    Check,
    Facts,
    Hit,
    Miss,
    Rule,
    listed,
    parse_time,
    snapshot_debs,
    unique,
)

# One argv element is safe when it holds only these characters. Debian version
# characters (~ + : .) and the = of pkg=version are not shell metacharacters.
_ARGV_SAFE = re.compile(r"^[A-Za-z0-9_@%+=:,./~-]*\Z")
_ALL_SAFE = re.compile(r"[A-Za-z0-9_@%+=:,./~-]*")  # fullmatch: no $ before a newline
_WITH_FILE = (Action.INSTALL, Action.UPGRADE, Action.DOWNGRADE, Action.REINSTALL)


def analysis_failed(facts: Facts) -> Check:
    """The analyzer could not produce a delta: deny with its reason."""
    failure = facts.plan.failure
    if failure is None:
        return Miss("analysis produced a delta")
    return Hit(f"analysis failed ({failure.kind}): {failure.message}", (failure.kind,))


def command_metachar(facts: Facts) -> Check:
    """An argv element of the command preview holds a shell metacharacter."""
    preview = facts.plan.command_preview
    if _ALL_SAFE.fullmatch("".join(preview)):
        # Every character of every element is in the safe class: each element matches.
        return Miss("every command preview element is plain argv")
    bad = [arg for arg in preview if not _ARGV_SAFE.match(arg)]
    if not bad:
        return Miss("every command preview element is plain argv")
    return Hit(f"command preview element(s) {listed(repr(a) for a in bad)}", unique(bad))


def provenance_missing(facts: Facts) -> Check:
    """A package to install without index provenance (hash, size, chain, source)."""
    missing = [
        f"{c.name}={c.candidate_version}"
        for c in facts.changing
        if c.action in _WITH_FILE
        and (c.repository is None or not facts.prov.get((c.name, c.candidate_version or "")))
    ]
    if not missing:
        return Miss("every package to install has provenance from a signed index")
    vouched, _ = snapshot_debs(facts)
    if all(tuple(m.split("=", 1)) in vouched for m in missing):
        # Versions no index carries any more, restored from aegisd's root-only rollback
        # cache whose manifest vouches for them: a human decides instead of a flat deny.
        return Hit(
            f"rollback of {facts.plan.intent.rollback_of} restores versions without index "
            f"provenance from its snapshot: {listed(missing)}",
            unique(missing),
            Effect.REQUIRE_APPROVAL,
        )
    return Hit(f"no provenance for: {listed(missing)}", unique(missing))


def evidence_stale(facts: Facts) -> Check:
    """A plan older than ``evidence_max_age_s``: re-plan rather than trust old evidence."""
    created = parse_time(facts.plan.created_at)
    if created is None:
        return Hit(f"plan created_at {facts.plan.created_at!r} is not a UTC time", ("created_at",))
    limit = facts.config.thresholds.evidence_max_age_s
    age = facts.now - created
    if age > timedelta(seconds=limit):
        return Hit(
            f"plan is {int(age.total_seconds())} s old, more than {limit} s; re-plan",
            ("created_at",),
        )
    return Miss(f"plan is {max(0, int(age.total_seconds()))} s old (limit {limit} s)")


def evidence_future(facts: Facts) -> Check:
    """A plan dated in the future beyond the allowed clock skew."""
    created = parse_time(facts.plan.created_at)
    if created is None:
        return Miss("created_at is unreadable (evidence.stale denies)")
    skew = facts.config.thresholds.clock_skew_s
    ahead = created - facts.now
    if ahead > timedelta(seconds=skew):
        return Hit(f"plan is dated {int(ahead.total_seconds())} s in the future", ("created_at",))
    return Miss("plan is not dated in the future")


_D, _A = Effect.DENY, Effect.REQUIRE_APPROVAL

RULES: tuple[Rule, ...] = (
    Rule("analysis.failed", _D, "analysis could not produce a delta", analysis_failed),
    Rule(
        "command.metachar",
        _D,
        "shell metacharacters in the command preview",
        command_metachar,
        PHRASE_METACHAR,
    ),
    Rule(
        "provenance.missing",
        _D,
        "a package to install without signed-index provenance",
        provenance_missing,
        PHRASE_SOURCE,
    ),
    Rule(
        "evidence.stale",
        _D,
        "plan older than thresholds.evidence_max_age_s",
        evidence_stale,
        PHRASE_SOURCE,
    ),
    Rule("evidence.future", _D, "plan dated in the future", evidence_future, PHRASE_SOURCE),
)
