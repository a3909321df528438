"""pip's rules (stable ids, docs/ecosystems.md), evaluated with the generic ones.

Generic rules kept from the built-in set: ``analysis.failed``, ``provenance.missing``,
``evidence.stale``, ``evidence.future``, ``name.lookalike``, ``package.release-age`` (the
index's upload time). apt's repository, delta and content rules do not apply to a venv.
``command.metachar`` is replaced by a pip-shaped one: the one ``#`` it allows is the
``#sha256=`` fragment pip checks the download against.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from aegis.ecosystems.pip.names import check_target
from aegis.ecosystems.shared_rules import noop
from aegis.errors import InputError
from aegis.model import Action, Artifact
from aegis.policy.config import registry_url
from aegis.policy.result import Effect
from aegis.policy.rules import (
    PHRASE_METACHAR,
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

GENERIC = ("analysis.failed", "provenance.missing", "evidence.stale", "evidence.future",
           "name.lookalike", "package.release-age")  # fmt: skip
_PLAIN = re.compile(r"\A[A-Za-z0-9_@%+=:,./~-]*\Z")
_OPERAND = re.compile(r"\A[a-z0-9-]+@https?://[A-Za-z0-9_%+=:,./~-]+#sha256=[0-9a-f]{64}\Z")


def _arts(facts: Facts) -> tuple[Artifact, ...]:
    eco = facts.plan.ecosystem
    changing = {c.name for c in facts.changing}
    return tuple(a for a in eco.artifacts if a.name in changing) if eco else ()


def _names(arts: Sequence[Artifact]) -> tuple[str, ...]:
    return unique(f"{a.name}=={a.version}" for a in arts)


def command_metachar(facts: Facts) -> Check:
    """An argv element that is neither plain nor a hash-pinned direct operand."""
    bad = [a for a in facts.plan.command_preview if not (_PLAIN.match(a) or _OPERAND.match(a))]
    if not bad:
        return Miss("every command preview element is plain argv or a hash-pinned operand")
    return Hit(f"command preview element(s) {listed(repr(a) for a in bad)}", unique(bad))


def registry_unapproved(facts: Facts) -> Check:
    """The index the plan resolved against is not in ``[[registries]]``."""
    eco = facts.plan.ecosystem
    index = facts.plan.intent.registry or ""
    approved = {r.url for r in facts.config.registries if r.ecosystem == "pip"}
    if (
        eco is None
        or registry_url(index) not in approved
        or registry_url(eco.registry) != (registry_url(index))
    ):
        return Hit(f"index {index!r} is not an approved [[registries]] entry for pip", (index,))
    return Miss(f"index {index} is approved")


def target_invalid(facts: Facts) -> Check:
    """A target outside the pip grammar (a hand-made plan; the CLI refuses these)."""
    bad: list[str] = []
    for t in facts.plan.intent.targets:
        try:
            check_target(t)
        except InputError:
            bad.append(t)
    if not (facts.plan.intent.location or "").startswith(("venv:/", "target:/", "managed:/")):
        bad.append(f"location {facts.plan.intent.location!r}")
    if not bad:
        return Miss("every target is a plain requirement into a venv")
    return Hit(f"targets outside the pip grammar: {listed(bad)}", unique(bad))


def integrity_missing(facts: Facts) -> Check:
    """An artifact without a published SHA-256 its bytes matched."""
    bad = [a for a in _arts(facts) if not a.sha256]
    if not bad:
        return Miss("every artifact matched its published SHA-256")
    return Hit(f"unverifiable integrity: {listed(_names(bad))}", _names(bad))


def sdist(facts: Facts) -> Check:
    """An sdist: installing it runs its build backend."""
    bad = [a for a in _arts(facts) if a.kind != "wheel"]
    if not bad:
        return Miss("only wheels")
    return Hit(f"sdists run their build backend: {listed(_names(bad))}", _names(bad))


def pth(facts: Facts) -> Check:
    """A ``.pth`` file: code that runs at every interpreter start."""
    bad = [f"{a.name}: {f}" for a in _arts(facts) for f in a.pth_files]
    if not bad:
        return Miss("no .pth files")
    return Hit(f".pth files run at every interpreter start: {listed(bad)}", unique(bad))


def native(facts: Facts) -> Check:
    """Compiled extension modules."""
    bad = [a for a in _arts(facts) if a.native_modules]
    if not bad:
        return Miss("no native modules")
    return Hit(f"native code: {listed(_names(bad))}", _names(bad))


def command_shadows(facts: Facts) -> Check:
    """A console script named like a system command."""
    hits = [s.detail for s in facts.plan.signals if s.name == "pip.command-shadows"]
    if not hits:
        return Miss("no command shadows a system command")
    return Hit(f"a command shadows a system command: {listed(hits)}", unique(hits))


def yanked(facts: Facts) -> Check:
    """A release the index marks yanked."""
    bad = [a for a in _arts(facts) if a.yanked]
    if not bad:
        return Miss("nothing yanked")
    return Hit(f"yanked releases: {listed(_names(bad))}", _names(bad))


def downgrade(facts: Facts) -> Check:
    """The resolution downgrades an installed distribution."""
    bad = [f"{c.name} {c.current_version} -> {c.candidate_version}" for c in facts.changing
           if c.action is Action.DOWNGRADE]  # fmt: skip
    if not bad:
        return Miss("no downgrades")
    return Hit(f"downgrades: {listed(bad)}", unique(bad))


def removal(facts: Facts) -> Check:
    """Distributions removed (a rollback of an install)."""
    bad = [f"{c.name}=={c.current_version}" for c in facts.changing if c.action is Action.REMOVE]
    if not bad:
        return Miss("nothing removed")
    return Hit(f"removes: {listed(bad)}", unique(bad))


def install_clean(facts: Facts) -> Check:
    """Allow: a resolved set of wheels into a venv (the stricter rules above still apply)."""
    if facts.plan.failure is not None or not facts.changing:
        return Miss("nothing to install")
    if any(c.action is Action.REMOVE for c in facts.changing):
        return Miss("removals are not installs")
    return Hit(f"{len(facts.changing)} distribution(s) into {facts.plan.intent.location}")


_D, _A = Effect.DENY, Effect.REQUIRE_APPROVAL

RULES: tuple[Rule, ...] = (
    Rule("command.metachar", _D, "shell metacharacters in the command preview",
         command_metachar, PHRASE_METACHAR),
    Rule("pip.target-invalid", _D, "a pip target outside the grammar, or no venv",
         target_invalid, PHRASE_SOURCE),
    Rule("registry.unapproved", _D, "an index or registry not in [[registries]]",
         registry_unapproved, PHRASE_REPOSITORY),
    Rule("integrity.missing", _D, "an artifact without a verified published hash",
         integrity_missing, PHRASE_SOURCE),
    Rule("pip.sdist", _A, "an sdist (its build backend runs)", sdist),
    Rule("pip.pth", _A, "a .pth file (runs at every interpreter start)", pth),
    Rule("pip.native", _A, "native extension modules", native, overridable=True),
    Rule("pip.command-shadows", _A, "a console script shadows a system command",
         command_shadows),
    Rule("pip.yanked", _A, "a yanked release", yanked),
    Rule("pip.downgrade", _A, "the resolution downgrades a distribution", downgrade),
    Rule("pip.removal", _A, "distributions removed", removal),
    Rule("pip.install", Effect.ALLOW, "wheels into a venv", install_clean, overridable=True),
    Rule("pip.noop", Effect.ALLOW, "nothing to change", noop),
)  # fmt: skip


def pip_rules(generic: tuple[Rule, ...]) -> tuple[Rule, ...]:
    """The generic rules pip keeps (in their order), then pip's own."""
    return tuple(r for r in generic if r.id in GENERIC) + RULES
