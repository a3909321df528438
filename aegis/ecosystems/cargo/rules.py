"""Cargo's rules (stable ids, docs/ecosystems.md), evaluated with the generic ones.

Generic rules kept: ``analysis.failed``, ``command.metachar``, ``evidence.stale``,
``evidence.future``, ``name.lookalike``. Integrity is the index's ``cksum`` (SHA-256 of the
``.crate``), which every crate of the set must match, dependencies through the packaged
``Cargo.lock``'s checksums.
"""

from __future__ import annotations

from collections.abc import Callable

from aegis.ecosystems.cargo.names import LOCATION_KIND, check_target
from aegis.ecosystems.shared_rules import downgrade_or_removal, noop
from aegis.ecosystems.shared_rules import registry_unapproved as _registry_unapproved
from aegis.errors import InputError
from aegis.policy.config import registry_url
from aegis.policy.result import Effect
from aegis.policy.rules import (
    PHRASE_REPOSITORY,
    PHRASE_SOURCE,
    Check,
    Facts,
    Hit,
    Miss,
    Rule,
    listed,
    unique,
)

GENERIC = ("analysis.failed", "command.metachar", "evidence.stale", "evidence.future",
           "name.lookalike")  # fmt: skip


def _signals(facts: Facts, name: str) -> list[str]:
    return [f"{s.package}: {s.detail}" for s in facts.plan.signals if s.name == name]


def _signal_rule(name: str, what: str) -> Callable[[Facts], Check]:
    def check(facts: Facts) -> Check:
        hits = _signals(facts, name)
        if not hits:
            return Miss(f"no {what}")
        return Hit(f"{what}: {listed(hits)}", unique(hits))

    check.__doc__ = f"Signal ``{name}``: {what}."
    return check


def target_invalid(facts: Facts) -> Check:
    """A target outside the cargo grammar, or no managed root (a hand-made plan)."""
    bad: list[str] = []
    for t in facts.plan.intent.targets:
        try:
            check_target(t)
        except InputError:
            bad.append(t)
    if len(facts.plan.intent.targets) != 1:
        bad.append(f"{len(facts.plan.intent.targets)} targets")
    if not (facts.plan.intent.location or "").startswith(LOCATION_KIND + "/"):
        bad.append(f"location {facts.plan.intent.location!r}")
    if not bad:
        return Miss("one crate into the managed root")
    return Hit(f"outside the cargo grammar: {listed(bad)}", unique(bad))


def registry_unapproved(facts: Facts) -> Check:
    """The index or local registry is not a cargo ``[[registries]]`` entry."""
    return _registry_unapproved(facts, "cargo", registry_url(facts.plan.intent.registry or ""))


def integrity_missing(facts: Facts) -> Check:
    """A crate of the set whose bytes did not match the index cksum (or the lockfile's)."""
    eco = facts.plan.ecosystem
    bad = [f"{a.name} {a.version}" for a in (eco.artifacts if eco else ()) if not a.sha256]
    bad += _signals(facts, "integrity.unverified")
    if not bad:
        return Miss("every crate matched its index cksum")
    return Hit(f"unverified crates: {listed(bad)}", unique(bad))


def build_script_hostile(facts: Facts) -> Check:
    """A command a build script spawns that the script rules call hostile."""
    bad = [f"{f.package} {f.file}: {f.rule}" for f in facts.plan.findings
           if f.severity == "hostile"]  # fmt: skip
    if not bad:
        return Miss("no hostile build command")
    return Hit(f"hostile build commands: {listed(bad)}", unique(bad))


def yanked_requested(facts: Facts) -> Check:
    """The requested version is yanked (its publisher pulled it)."""
    eco = facts.plan.ecosystem
    bad = [f"{a.name} {a.version}" for a in (eco.artifacts if eco else ())
           if a.requested and a.yanked]  # fmt: skip
    if not bad:
        return Miss("the requested version is not yanked")
    return Hit(f"yanked: {listed(bad)}", unique(bad))


def yanked_dependency(facts: Facts) -> Check:
    """A locked dependency is yanked."""
    eco = facts.plan.ecosystem
    bad = [f"{a.name} {a.version}" for a in (eco.artifacts if eco else ())
           if a.yanked and not a.requested]  # fmt: skip
    if not bad:
        return Miss("no yanked dependency")
    return Hit(f"yanked dependencies: {listed(bad)}", unique(bad))


def install_clean(facts: Facts) -> Check:
    """Allow: one locked crate from an approved registry (stricter rules still apply)."""
    if facts.plan.failure is not None or not facts.changing:
        return Miss("nothing to install")
    return Hit(f"{facts.changing[0].name} into {facts.plan.intent.location}")


_D, _A = Effect.DENY, Effect.REQUIRE_APPROVAL


def _r(rule_id: str, effect: Effect, what: str, signal: str) -> Rule:
    return Rule(rule_id, effect, what, _signal_rule(signal, what))


RULES: tuple[Rule, ...] = (
    Rule("cargo.target-invalid", _D, "a cargo target outside the grammar, or no managed root",
         target_invalid, PHRASE_SOURCE),
    Rule("registry.unapproved", _D, "an index or registry not in [[registries]]",
         registry_unapproved, PHRASE_REPOSITORY),
    Rule("integrity.missing", _D, "a crate without a matching cksum", integrity_missing,
         PHRASE_SOURCE),
    _r("cargo.archive-refused", _D, "a .crate the strict reader refused (links, devices, "
       "paths outside its folder, past its bounds)", "cargo.archive-refused"),
    _r("cargo.unlocked", _D, "a crate without Cargo.lock (--locked cannot pin it)",
       "cargo.unlocked"),
    _r("cargo.lock-source", _D, "Cargo.lock names a source outside the plan's registry",
       "cargo.lock-source"),
    Rule("cargo.yanked", _D, "the requested version is yanked", yanked_requested),
    Rule("cargo.build-script-hostile", _D, "a hostile build command", build_script_hostile),
    _r("cargo.build-command", _A, "a build script spawns commands", "cargo.build-command"),
    _r("cargo.build-script", _A, "build scripts (they run at install time)",
       "cargo.build-script"),
    _r("cargo.proc-macro", _A, "proc-macros (they run at compile time)", "cargo.proc-macro"),
    _r("cargo.native", _A, "native libraries (links)", "cargo.native"),
    Rule("cargo.yanked-dependency", _A, "a yanked locked dependency", yanked_dependency),
    _r("cargo.bin-shadows", _A, "a binary named like a system command", "cargo.bin-shadows"),
    Rule("cargo.downgrade", _A, "the installed crate is downgraded or removed",
         downgrade_or_removal),
    Rule("cargo.install", Effect.ALLOW, "one locked crate from an approved registry",
         install_clean, overridable=True),
    Rule("cargo.noop", Effect.ALLOW, "nothing to change", noop),
)  # fmt: skip


def cargo_rules(generic: tuple[Rule, ...]) -> tuple[Rule, ...]:
    """The generic rules cargo keeps (in their order), then cargo's own."""
    return tuple(r for r in generic if r.id in GENERIC) + RULES
