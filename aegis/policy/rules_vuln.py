"""Rules about vulnerability evidence. Pure; see :mod:`aegis.policy.rules`.

A match's ``critical`` flag is the documented severity mapping of the tracker's urgency
(docs/vulnerabilities.md, ``aegis.analyze.evidence.vulnerabilities.is_critical``):
policy uses it as the analyzer recorded it. A fixed version that exists and the plan
does not install denies either way (docs/design.md "Decisions"); only a critical one
carries the contract's "critical vulnerability evidence" phrase. No fix yet: approval.
"""

from __future__ import annotations

from datetime import timedelta

from aegis.model import Action
from aegis.policy.rules import Check, Facts, Hit, Miss, listed, parse_time, unique

_WITH_FILE = (Action.INSTALL, Action.UPGRADE, Action.DOWNGRADE, Action.REINSTALL)
"""Actions that install a package file (whose vulnerabilities matter)."""


def _vulns(facts: Facts) -> list[tuple[str, str, str, str | None, bool, bool]]:
    ignore = facts.config.thresholds.vuln_ignore_urgencies
    return [
        (v.package, v.cve, v.urgency, v.fixed_version, v.fixed_by_plan, v.critical)
        for v in facts.plan.vulnerabilities
        if v.urgency not in ignore
    ]


def _fix_not_installed(facts: Facts, critical: bool) -> list[str]:
    # ``Vulnerability.critical`` is the documented severity mapping (docs/vulnerabilities.md);
    # policy uses it as recorded instead of re-deriving it from the urgency text.
    return [
        f"{pkg} {cve} ({urgency}, fixed in {fixed})"
        for pkg, cve, urgency, fixed, by_plan, is_critical in _vulns(facts)
        if fixed and not by_plan and is_critical is critical
    ]


_FIX_HINT = (
    "; plan the fixed version (aegis apt install PKG=VERSION --plan), and if no configured "
    "source offers it, add and approve the source that does (often the security suite)"
)


def vuln_fixed_available(facts: Facts) -> Check:
    """A critical vulnerability whose fixed version exists and the plan does not install."""
    hits = _fix_not_installed(facts, critical=True)
    if not hits:
        return Miss("no critical vulnerability with an available fix stays unfixed")
    return Hit(f"not installing the fixed version: {listed(hits)}{_FIX_HINT}", unique(hits))


def vuln_fixed_available_noncritical(facts: Facts) -> Check:
    """A non-critical vulnerability whose fixed version exists and the plan does not install.

    Still a deny (docs/design.md "Decisions": a fix exists and the plan does not install
    it), but without the contract's "critical vulnerability evidence" phrase, which would
    misstate it.
    """
    hits = _fix_not_installed(facts, critical=False)
    if not hits:
        return Miss("no non-critical vulnerability with an available fix stays unfixed")
    return Hit(
        f"not installing the fixed version of a non-critical vulnerability: {listed(hits)}"
        f"{_FIX_HINT}",
        unique(hits),
    )


def vuln_no_fix(facts: Facts) -> Check:
    """A vulnerability with no fixed version yet."""
    hits = [
        f"{pkg} {cve} ({urgency})" for pkg, cve, urgency, fixed, _, _ in _vulns(facts) if not fixed
    ]
    if not hits:
        return Miss("no unfixed vulnerability matches the delta")
    return Hit(f"no fix available yet: {listed(hits)}", unique(hits))


def vuln_db_missing(facts: Facts) -> Check:
    """Packages are installed but no (usable) vulnerability data was consulted."""
    invalid = [s.detail for s in facts.plan.signals if s.name == "vulnerability.db-invalid"]
    if invalid and any(c.action in _WITH_FILE for c in facts.changing):
        return Hit(f"vulnerability data is unusable: {listed(invalid)}", ())
    if facts.plan.vulndb_date is not None:
        return Miss(f"vulnerability data dated {facts.plan.vulndb_date} was consulted")
    if not any(c.action in _WITH_FILE for c in facts.changing):
        return Miss("nothing is installed")
    return Hit("no vulnerability data was consulted (aegis vulndb import FILE)", ())


def vuln_db_stale(facts: Facts) -> Check:
    """Vulnerability data older than ``thresholds.vulndb_max_age_s``."""
    date = parse_time(facts.plan.vulndb_date)
    if date is None:
        return Miss("no dated vulnerability data (vuln.db-missing covers it)")
    limit = facts.config.thresholds.vulndb_max_age_s
    age = facts.now - date
    if age > timedelta(seconds=limit):
        return Hit(f"vulnerability data is {int(age.total_seconds())} s old (limit {limit} s)", ())
    return Miss(f"vulnerability data is {max(0, int(age.total_seconds()))} s old")


# --- contents ----------------------------------------------------------------------------
