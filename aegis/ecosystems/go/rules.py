"""Go's rules (stable ids, docs/ecosystems.md "Go"), evaluated with the generic ones.

Generic rules kept: ``analysis.failed``, ``evidence.stale``, ``evidence.future``.
``command.metachar`` is replaced by a Go-shaped one (the argv carries ``K=V`` words for
``env -i``). Integrity is Go's own: the ``h1:`` sums of each module's zip and ``go.mod``,
equal in the new ``go.sum`` and in what ``go mod download`` computed.
"""

from __future__ import annotations

import re

from aegis.ecosystems.go.names import (
    GOBIN_KIND,
    GOMOD_KIND,
    check_proxy_url,
    is_exact,
    split_target,
)
from aegis.ecosystems.shared_rules import downgrade_or_removal, noop
from aegis.ecosystems.shared_rules import registry_unapproved as _registry_unapproved
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

GENERIC = ("analysis.failed", "evidence.stale", "evidence.future")
_PLAIN = re.compile(r"\A[A-Za-z0-9_@%+=:,./~-]*\Z")


def _arts(facts: Facts) -> tuple[Artifact, ...]:
    eco = facts.plan.ecosystem
    return eco.artifacts if eco else ()


def _signals(facts: Facts, *names: str) -> list[str]:
    return [f"{s.package or '-'}: {s.detail}" for s in facts.plan.signals if s.name in names]


def _fires(facts: Facts, names: tuple[str, ...], what: str) -> Check:
    hits = _signals(facts, *names)
    if not hits:
        return Miss(f"no {what}")
    return Hit(f"{what}: {listed(hits)}", unique(hits))


def command_metachar(facts: Facts) -> Check:
    """An argv element that is not plain (``K=V`` words and ``MOD@VERSION`` are plain)."""
    bad = [a for a in facts.plan.command_preview if not _PLAIN.match(a)]
    if not bad:
        return Miss("every command preview element is plain argv")
    return Hit(f"command preview element(s) {listed(repr(a) for a in bad)}", unique(bad))


def target_invalid(facts: Facts) -> Check:
    """A target outside the Go grammar, or no ``gomod:``/``gobin:`` location (a hand-made plan)."""
    bad: list[str] = []
    for t in facts.plan.intent.targets:
        try:
            split_target(t)
        except InputError:
            bad.append(t)
    loc = facts.plan.intent.location or ""
    if not loc.startswith((GOMOD_KIND + "/", GOBIN_KIND + "/")):
        bad.append(f"location {loc!r}")
    if not bad:
        return Miss("every target is a module path into a module or the managed GOBIN")
    return Hit(f"targets outside the Go grammar: {listed(bad)}", unique(bad))


def registry_unapproved(facts: Facts) -> Check:
    """The proxy is not a Go ``[[registries]]`` entry, or a module resolves elsewhere."""
    raw = facts.plan.intent.registry or ""
    try:
        proxy = registry_url(check_proxy_url(raw))
    except InputError:
        return Hit(f"proxy {raw[:120]!r} is not one plain URL", (raw[:120],))
    return _registry_unapproved(
        facts, "go", proxy, noun="proxy", resolved=_arts(facts), what="module"
    )


def integrity_missing(facts: Facts) -> Check:
    """A module whose ``h1:`` sums in go.sum and from ``go mod download`` did not agree."""
    bad = [f"{a.name}@{a.version}" for a in _arts(facts) if not a.integrity.startswith("h1:")]
    bad += _signals(facts, "integrity.unverified")
    if not bad:
        return Miss("every module's zip and go.mod sums agree with go.sum")
    return Hit(f"unverified sums: {listed(bad)}", unique(bad))


def unresolved(facts: Facts) -> Check:
    """A version that is not exact (a query, branch or commit left unresolved)."""
    bad = [
        f"{c.name}@{c.candidate_version}"
        for c in facts.changing
        if c.action is not Action.REMOVE and not is_exact(c.candidate_version or "")
    ]
    bad += [f"{a.name}@{a.version}" for a in _arts(facts) if not is_exact(a.version)]
    if not bad:
        return Miss("every version is exact")
    return Hit(f"unresolved versions: {listed(bad)}", unique(bad))


def install_clean(facts: Facts) -> Check:
    """Allow: exact modules from an approved proxy (stricter rules still apply)."""
    if facts.plan.failure is not None or not facts.changing:
        return Miss("nothing to change")
    return Hit(f"{len(facts.changing)} change(s) into {facts.plan.intent.location}")


_D, _A = Effect.DENY, Effect.REQUIRE_APPROVAL

RULES: tuple[Rule, ...] = (
    Rule("go.target-invalid", _D, "a Go target outside the grammar, or no module/GOBIN",
         target_invalid, PHRASE_SOURCE),
    Rule("command.metachar", _D, "a command preview element that is not plain argv",
         command_metachar, PHRASE_METACHAR),
    Rule("registry.unapproved", _D, "an index or registry not in [[registries]]",
         registry_unapproved, PHRASE_REPOSITORY),
    Rule("integrity.missing", _D, "an artifact without a verified published hash",
         integrity_missing, PHRASE_SOURCE),
    Rule("go.unresolved", _D, "a version that is not exact (never applied)", unresolved,
         PHRASE_SOURCE),
    Rule("go.replace-path", _D, "a replace directive to a local directory",
         lambda f: _fires(f, ("go.replace-path",), "replace to a local directory")),
    Rule("go.replace", _A, "a replace directive to another module",
         lambda f: _fires(f, ("go.replace",), "replace directives")),
    Rule("go.retracted", _A, "a version its author retracted",
         lambda f: _fires(f, ("go.retracted",), "retracted versions")),
    Rule("go.pseudo-version", _A, "a pseudo-version (a commit, not a release)",
         lambda f: _fires(f, ("go.pseudo-version",), "pseudo-versions")),
    Rule("go.env-weakened", _A, "Go settings that bypass checksums or allow insecure fetches",
         lambda f: _fires(f, ("go.sumdb-bypassed", "go.insecure", "go.goflags"),
                          "weakened Go settings")),
    Rule("go.sumdb-off", _A, "the checksum database is off (a mirror proxy); a policy decision",
         lambda f: _fires(f, ("go.sumdb-off",), "checksum database off"), overridable=True),
    Rule("go.downgrade", _A, "the resolution downgrades or removes requirements",
         downgrade_or_removal),
    Rule("go.install", Effect.ALLOW, "exact modules from an approved proxy", install_clean,
         overridable=True),
    Rule("go.noop", Effect.ALLOW, "nothing to change", noop),
)  # fmt: skip


def go_rules(generic: tuple[Rule, ...]) -> tuple[Rule, ...]:
    """The generic rules Go keeps (in their order), then Go's own."""
    return tuple(r for r in generic if r.id in GENERIC) + RULES
