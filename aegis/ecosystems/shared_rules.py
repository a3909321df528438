"""Rule checks every language ecosystem (npm, pip, Go, Cargo) words and judges the same way.

Example:
    >>> Rule("npm.noop", Effect.ALLOW, "nothing to change", noop)
"""

from __future__ import annotations

from collections.abc import Iterable

from aegis.model import Action, Artifact
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


def registry_unapproved(
    facts: Facts,
    ecosystem: str,
    url: str,
    *,
    noun: str = "registry",
    resolved: Iterable[Artifact] | None = None,
    what: str = "package",
) -> Check:
    """Deny: ``url`` is not one of ``ecosystem``'s ``[[registries]]``, or comes from elsewhere.

    ``url`` is normalised by the caller. With ``resolved``, every artifact must come from
    under ``url`` too (a redirecting mirror, a lockfile entry pointing at another host).
    """
    approved = {r.url for r in facts.config.registries if r.ecosystem == ecosystem}
    if url not in approved:
        return Hit(f"{noun} {url!r} is not an approved [[registries]] entry for {ecosystem}",
                   (url,))  # fmt: skip
    if resolved is None:
        return Miss(f"{noun} {url} is approved")
    elsewhere = [f"{a.name} ({a.url})" for a in resolved if not a.url.startswith(url)]
    if elsewhere:
        return Hit(f"resolved outside the approved {noun}: {listed(elsewhere)}",
                   unique(elsewhere))  # fmt: skip
    return Miss(f"{noun} {url} is approved and every {what} resolves there")
