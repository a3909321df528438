"""The release-age quarantine rule (``package.release-age``). Pure; see :mod:`aegis.policy.rules`.

A version a source has only just started to offer is where a compromised or hijacked
source shows first: the quarantine holds every version younger than
``[thresholds] min_release_age_s`` (or the source's own ``min_release_age_s``) for a
person's approval, and lets it through on its own once it is old enough.

apt metadata has no publish date. The analyzer records when Aegis first saw each
(package, version, source) and the Date of the signed Release it saw it in
(:class:`aegis.model.FirstSeen`); a version listed in a Release dated D was published
by D, so its age at decision time is at least ``now - min(first seen, D)``. A version
without such a record (the store could not be used) is treated as new, never as old.

npm and pip registries state a publish time (the packument's ``time``, PEP 700
``upload-time``), which their planners record per artifact (``Artifact.published``); the
same threshold applies to it, and a version whose registry states none is treated as new.

Example:
    >>> _human(90_000)
    '1d 1h'
"""

from __future__ import annotations

from aegis.model import Action, FirstSeen
from aegis.policy.rules import Check, Facts, Hit, Miss, listed, parse_time, unique

_WITH_FILE = (Action.INSTALL, Action.UPGRADE, Action.DOWNGRADE, Action.REINSTALL)


def _human(seconds: float) -> str:
    s = max(int(seconds), 0)
    days, rest = divmod(s, 86_400)
    hours, rest = divmod(rest, 3_600)
    minutes = rest // 60
    parts = [f"{days}d" if days else "", f"{hours}h" if hours else ""]
    if not days:
        parts.append(f"{minutes}m" if minutes or not hours else "")
    return " ".join(p for p in parts if p) or "0m"


def _published_by(seen: FirstSeen) -> float | None:
    """Epoch seconds by which the version was published, or None when unknown."""
    first = parse_time(seen.first_seen)
    if first is None:
        return None
    dated = parse_time(seen.release_date)
    return min(first, dated).timestamp() if dated is not None else first.timestamp()


def _registry_ages(facts: Facts) -> list[tuple[str, str]]:
    """(package, why) of each npm or pip version younger than the minimum (or undated)."""
    minimum = facts.config.thresholds.min_release_age_s
    eco = facts.plan.ecosystem
    if minimum <= 0 or eco is None:
        return []
    arts = {(a.name, a.version): a for a in eco.artifacts}
    now = facts.now.timestamp()
    out: list[tuple[str, str]] = []
    for c in facts.changing:
        if c.action not in _WITH_FILE or not c.candidate_version:
            continue
        art = arts.get((c.name, c.candidate_version))
        published = parse_time(art.published) if art is not None else None
        if published is None:
            why = "the registry states no publish time: age unknown"
        elif now - published.timestamp() < minimum:
            age = _human(now - published.timestamp())
            why = f"published {age} ago, minimum {_human(minimum)}"
        else:
            continue
        out.append((c.name, f"{c.name} {c.candidate_version} ({why})"))
    return out


def package_release_age(facts: Facts) -> Check:
    """A version to install that its source has offered for less than the minimum age."""
    if facts.plan.ecosystem is not None:
        found = _registry_ages(facts)
        if not found:
            return Miss("every version is older than the minimum release age (or none is set)")
        return Hit(f"too new to install unreviewed: {listed([w for _, w in found])}",
                   unique([n for n, _ in found]))  # fmt: skip
    default_s = facts.config.thresholds.min_release_age_s
    own = [s.min_release_age_s for s in facts.repo_source.values() if s is not None]
    if default_s <= 0 and all(m is None or m <= 0 for m in own):
        # No source asks for a minimum age: no change below could be young (the loop's
        # answer, without walking a 500-package delta).
        return Miss("every version is older than the minimum release age (or none is set)")
    seen = {(f.package, f.version, f.repository): f for f in facts.plan.first_seen}
    now = facts.now.timestamp()
    young: list[str] = []
    names: list[str] = []
    for c in facts.changing:
        if c.action not in _WITH_FILE or not c.candidate_version or not c.repository:
            continue
        source = facts.repo_source.get(c.repository)
        minimum = default_s
        if source is not None and source.min_release_age_s is not None:
            minimum = source.min_release_age_s
        if minimum <= 0:
            continue
        record = seen.get((c.name, c.candidate_version, c.repository))
        published = _published_by(record) if record is not None else None
        if published is None:
            young.append(f"{c.name} {c.candidate_version} (never seen before: age unknown)")
        elif now - published < minimum:
            young.append(
                f"{c.name} {c.candidate_version} (offered for {_human(now - published)}, "
                f"minimum {_human(minimum)})"
            )
        else:
            continue
        names.append(c.name)
    if not young:
        return Miss("every version is older than the minimum release age (or none is set)")
    return Hit(f"too new to install unreviewed: {listed(young)}", unique(names))
