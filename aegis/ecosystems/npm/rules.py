"""npm's rules (stable ids, docs/ecosystems.md), evaluated with the generic ones.

Generic rules kept: ``analysis.failed``, ``command.metachar``, ``evidence.stale``,
``evidence.future``, ``name.lookalike``, ``package.release-age`` (the registry's publish
time). Integrity is npm's own (``integrity.missing``: the lockfile's SRI string the tarball
matched), not apt's signed-index provenance.
"""

from __future__ import annotations

from aegis.ecosystems.npm.names import check_target
from aegis.ecosystems.shared_rules import downgrade_or_removal, noop
from aegis.ecosystems.shared_rules import registry_unapproved as _registry_unapproved
from aegis.errors import InputError
from aegis.model import Action, Artifact
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
           "name.lookalike", "package.release-age")  # fmt: skip


def _changing_arts(facts: Facts) -> list[Artifact]:
    eco = facts.plan.ecosystem
    names = {c.name for c in facts.changing if c.action is not Action.REMOVE}
    return [a for a in eco.artifacts if a.name in names] if eco else []


def registry_unapproved(facts: Facts) -> Check:
    """The registry is not an npm ``[[registries]]`` entry, or a package resolves elsewhere."""
    registry = registry_url(facts.plan.intent.registry or "")
    return _registry_unapproved(facts, "npm", registry, resolved=_changing_arts(facts))


def target_invalid(facts: Facts) -> Check:
    """A target outside the npm grammar, or no project (a hand-made plan)."""
    bad: list[str] = []
    for t in facts.plan.intent.targets:
        try:
            check_target(t)
        except InputError:
            bad.append(t)
    if not (facts.plan.intent.location or "").startswith(("project:/", "global:/")):
        bad.append(f"location {facts.plan.intent.location!r}")
    if not bad:
        return Miss("every target is a registry package into a project or the managed prefix")
    return Hit(f"targets outside the npm grammar: {listed(bad)}", unique(bad))


def integrity_missing(facts: Facts) -> Check:
    """A tarball without a sha512 integrity its bytes matched."""
    bad = [f"{a.name}@{a.version}" for a in _changing_arts(facts) if not a.integrity]
    if not bad:
        return Miss("every tarball matched its lockfile integrity")
    return Hit(f"unverifiable integrity: {listed(bad)}", unique(bad))


def script_hostile(facts: Facts) -> Check:
    """An install script the script rules call hostile (download-and-run, decoded exec...)."""
    bad = [f"{f.package} {f.file}: {f.rule}" for f in facts.plan.findings
           if f.severity == "hostile"]  # fmt: skip
    if not bad:
        return Miss("no hostile install script")
    return Hit(f"hostile install scripts: {listed(bad)}", unique(bad))


def install_script(facts: Facts) -> Check:
    """Any lifecycle install script (they never run unless approval names the package)."""
    bad = [s.package or "" for s in facts.plan.signals if s.name == "npm.install-script"]
    if not bad:
        return Miss("no install scripts")
    return Hit(f"install scripts (not run: --ignore-scripts): {listed(bad)}", unique(bad))


def bin_shadows(facts: Facts) -> Check:
    """A ``bin`` entry named like a system command."""
    hits = [f"{s.package}: {s.detail}" for s in facts.plan.signals if s.name == "npm.bin-shadows"]
    if not hits:
        return Miss("no bin shadows a system command")
    return Hit(f"a bin shadows a system command: {listed(hits)}", unique(hits))


def install_clean(facts: Facts) -> Check:
    """Allow: a lockfile change from an approved registry (stricter rules still apply)."""
    if facts.plan.failure is not None or not facts.changing:
        return Miss("nothing to install")
    return Hit(f"{len(facts.changing)} package(s) into {facts.plan.intent.location}")


_D, _A = Effect.DENY, Effect.REQUIRE_APPROVAL

RULES: tuple[Rule, ...] = (
    Rule("npm.target-invalid", _D, "an npm target outside the grammar, or no project",
         target_invalid, PHRASE_SOURCE),
    Rule("registry.unapproved", _D, "an index or registry not in [[registries]]",
         registry_unapproved, PHRASE_REPOSITORY),
    Rule("integrity.missing", _D, "an artifact without a verified published hash",
         integrity_missing, PHRASE_SOURCE),
    Rule("npm.script-hostile", _D, "a hostile install script", script_hostile),
    Rule("npm.install-script", _A, "lifecycle install scripts", install_script),
    Rule("npm.bin-shadows", _A, "a bin shadows a system command", bin_shadows),
    Rule("npm.downgrade", _A, "the resolution downgrades or removes packages",
         downgrade_or_removal),
    Rule("npm.install", Effect.ALLOW, "a lockfile change from an approved registry",
         install_clean, overridable=True),
    Rule("npm.noop", Effect.ALLOW, "nothing to change", noop),
)  # fmt: skip


def npm_rules(generic: tuple[Rule, ...]) -> tuple[Rule, ...]:
    """The generic rules npm keeps (in their order), then npm's own."""
    return tuple(r for r in generic if r.id in GENERIC) + RULES
