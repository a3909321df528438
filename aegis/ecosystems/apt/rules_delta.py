"""apt's rules about the package delta, and its allow rules.

Removals, downgrades, held-back packages, dpkg's recovery, Essential packages, and
which build of a version apt would install.

Pure; see :mod:`aegis.policy.rules`. :mod:`aegis.ecosystems.apt.rules` places them among
the generic rules.

Example:
    >>> [r.id for r in ALLOW if r.effect == Effect.ALLOW]
    ['apt.update', 'apt.noop']
"""

from __future__ import annotations

from aegis.model import Action, Operation
from aegis.policy.config import source_allows
from aegis.policy.result import Effect
from aegis.policy.rules import PHRASE_SOURCE, Check, Facts, Hit, Miss, Rule, listed, unique

_PLAIN = (Action.INSTALL, Action.UPGRADE, Action.REINSTALL)
_REMOVING = (Action.REMOVE, Action.PURGE)
# Members bound once: an enum attribute lookup in a loop over 500 changes costs more than
# the comparison itself (policy bench).
_DOWNGRADE, _HELD_BACK = Action.DOWNGRADE, Action.HELD_BACK


def provenance_build_ambiguous(facts: Facts) -> Check:
    """Which build of a version apt would install could not be told apart (analyzer signal).

    One version can exist as two builds (a rebuild in another suite); the plan binds the
    file apt's own resolution would download, and a file no single index record
    describes is a finding, never a guess (docs/apt-trust.md "One file from plan to
    install").
    """
    details = [
        s.detail or s.package or s.name
        for s in facts.plan.signals
        if s.name == "provenance.build-ambiguous"
    ]
    if not details:
        return Miss("every package to install is one identified build")
    names = [s.package or "?" for s in facts.plan.signals if s.name == "provenance.build-ambiguous"]
    return Hit(f"which build apt would install is ambiguous: {listed(details)}", unique(names))


def apt_removal(facts: Facts) -> Check:
    """Packages removed or purged."""
    names = [c.name for c in facts.changing if c.action in _REMOVING]
    if not names:
        return Miss("nothing is removed")
    return Hit(f"removes {listed(names)}", unique(names))


def apt_downgrade(facts: Facts) -> Check:
    """Downgrades deny, except in a rollback request from a recorded snapshot (approval)."""
    hits = [
        f"{c.name} {c.current_version} -> {c.candidate_version}"
        for c in facts.changing
        if c.action is _DOWNGRADE
    ]
    if not hits:
        return Miss("nothing is downgraded")
    names = unique(h.split(" ", 1)[0] for h in hits)
    if facts.rollback:
        return Hit(
            f"rollback of snapshot {facts.plan.intent.rollback_of} downgrades {listed(hits)}",
            names,
            Effect.REQUIRE_APPROVAL,
        )
    return Hit(f"downgrades {listed(hits)}", names)


def apt_held_back(facts: Facts) -> Check:
    """Packages apt holds back: the plan does not do all that was asked."""
    names = [c.name for c in facts.plan.changes if c.action is _HELD_BACK]
    if not names:
        return Miss("nothing is held back")
    return Hit(f"held back: {listed(names)}", unique(names))


def apt_recover(facts: Facts) -> Check:
    """``dpkg --configure -a`` after an interrupted run: an operator looks first."""
    if facts.operation is not Operation.RECOVER:
        return Miss("not a recover request")
    return Hit("recover request (dpkg --configure -a)", ())


def package_essential(facts: Facts) -> Check:
    """Essential packages change."""
    names = [c.name for c in facts.changing if c.essential]
    names += [s.package for s in facts.plan.signals if s.name == "essential" and s.package]
    if not names:
        return Miss("no essential package changes")
    return Hit(f"essential: {listed(names)}", unique(names))


def apt_update(facts: Facts) -> Check:
    """``apt-get update``: refreshes indexes, changes no package."""
    if facts.operation is not Operation.UPDATE:
        return Miss("not an update request")
    if facts.plan.changes or facts.plan.failure is not None:
        return Miss("update plan lists package changes or failed")
    return Hit("apt-get update changes no installed package", ())


def apt_noop(facts: Facts) -> Check:
    """Install or upgrade with nothing to change."""
    if facts.operation not in (Operation.INSTALL, Operation.UPGRADE, Operation.FULL_UPGRADE):
        return Miss("not an install or upgrade request")
    if facts.plan.changes or facts.plan.failure is not None:
        return Miss("the plan changes packages")
    return Hit("nothing to change", ())


def apt_upgrade_clean(facts: Facts) -> Check:
    """A plain install/upgrade, every package from an approved source allowed to supply it.

    A full upgrade counts when its delta is plain too (installs and upgrades only); one that
    removes is not plain (``apt.removal`` asks for approval).
    """
    if facts.operation not in (Operation.INSTALL, Operation.UPGRADE, Operation.FULL_UPGRADE):
        return Miss("not an install or upgrade request")
    if facts.plan.failure is not None or not facts.changing:
        return Miss("no delta to apply")
    distribution = facts.distribution_repos  # a distribution source may supply any package
    for c in facts.changing:
        if c.action not in _PLAIN:
            return Miss(f"{c.name} is a {c.action.value}, not a plain install or upgrade")
        if c.repository and c.repository in distribution:
            continue
        src = facts.repo_source.get(c.repository) if c.repository else None
        if src is None or not source_allows(src, c.name):
            return Miss(f"{c.name} does not come from an approved source allowed to supply it")
    return Hit(f"{len(facts.changing)} package(s) from approved sources", ())


_D, _A = Effect.DENY, Effect.REQUIRE_APPROVAL

DELTA: tuple[Rule, ...] = (
    Rule("apt.removal", _A, "packages removed or purged", apt_removal),
    Rule(
        "apt.downgrade",
        _D,
        "downgrades (approval in a rollback from a snapshot)",
        apt_downgrade,
        PHRASE_SOURCE,
    ),
    Rule("apt.held-back", _A, "packages held back", apt_held_back, overridable=True),
    Rule("apt.recover", _A, "dpkg --configure -a recovery", apt_recover),
)

ESSENTIAL: tuple[Rule, ...] = (
    Rule("package.essential", _A, "essential packages change", package_essential),
)

ALLOW: tuple[Rule, ...] = (
    Rule(
        "provenance.build-ambiguous",
        _D,
        "the build apt would install matches no single signed-index record",
        provenance_build_ambiguous,
        PHRASE_SOURCE,
    ),
    Rule("apt.update", Effect.ALLOW, "apt-get update", apt_update),
    Rule("apt.noop", Effect.ALLOW, "nothing to change", apt_noop),
    Rule(
        "apt.upgrade-clean",
        Effect.ALLOW_WITH_SNAPSHOT,
        "plain install/upgrade from approved sources",
        apt_upgrade_clean,
        overridable=True,
    ),
)
