"""Generic rules about the changed packages, vulnerabilities and package contents.

Pure; see :mod:`aegis.policy.rules`. apt's delta and allow rules are in
:mod:`aegis.ecosystems.apt.rules_delta`.

Content findings come from the analyzer with a free ``rule`` name and a severity
(hostile, sensitive, changed). Hostile findings always deny (the specific
``script.*`` id when the finding names a known technique, else ``script.hostile``
or ``content.hostile``); sensitive and changed findings require approval only for
packages not supplied by an approved distribution source.

Example:
    >>> [r.id for r in RULES if r.id.startswith("vuln.db")]
    ['vuln.db-missing', 'vuln.db-stale']
"""

from __future__ import annotations

import posixpath
from collections.abc import Callable

from aegis.model import Action, Finding
from aegis.policy.result import Effect
from aegis.policy.rules import (
    PHRASE_VULN,
    Check,
    Facts,
    Hit,
    Miss,
    Rule,
    kernel_names,
    listed,
    sensitive_names,
    unique,
)
from aegis.policy.rules_age import package_release_age
from aegis.policy.rules_vuln import (
    vuln_db_missing,
    vuln_db_stale,
    vuln_fixed_available,
    vuln_fixed_available_noncritical,
    vuln_no_fix,
)

_SCRIPTS = frozenset({"preinst", "postinst", "prerm", "postrm", "config", "triggers"})
_WITH_FILE = (Action.INSTALL, Action.UPGRADE, Action.DOWNGRADE, Action.REINSTALL)


def kernel_change(facts: Facts) -> Check:
    """Kernel or boot-chain packages change (name patterns or the analyzer's signal)."""
    names = kernel_names(facts)
    names += [
        s.package for s in facts.plan.signals if s.name in ("kernel", "boot-chain") and s.package
    ]
    if not names:
        return Miss("no kernel or boot-chain package changes")
    return Hit(f"kernel or boot chain: {listed(names)}", unique(names))


def package_security_sensitive(facts: Facts) -> Check:
    """Security-sensitive packages change (by binary or source name)."""
    names = sensitive_names(facts)
    names += [s.package for s in facts.plan.signals if s.name == "security-sensitive" and s.package]
    if not names:
        return Miss("no security-sensitive package changes")
    return Hit(f"security-sensitive: {listed(names)}", unique(names))


def name_lookalike(facts: Facts) -> Check:
    """A requested new package whose name imitates an installed or depended-upon one."""
    hits = [s.detail for s in facts.plan.signals if s.name == "name.lookalike"]
    if not hits:
        return Miss("no requested name imitates an installed one")
    return Hit(f"name lookalike: {listed(hits)}", unique(hits))


def _is_script(f: Finding) -> bool:
    return posixpath.basename(f.file) in _SCRIPTS or f.rule.startswith("script")


def hostile_kind(f: Finding) -> str:
    """The policy rule id a hostile finding fires."""
    rule = f.rule.lower()
    if "apt-hook" in rule:
        return "content.apt-hook"  # judged by its own rule, hostile or not
    if any(k in rule for k in ("download", "curl", "wget", "fetch")):
        return "script.download-exec"
    if any(k in rule for k in ("decode", "base64", "obfusc", "eval")):
        return "script.decoded-exec"
    return "script.hostile" if _is_script(f) else "content.hostile"


def _finding_text(f: Finding) -> str:
    where = f"{f.file}:{f.line}" if f.line else f.file
    return f"{f.package} {where} [{f.rule}]"


def _hostile(rule_id: str) -> Callable[[Facts], Check]:
    def check(facts: Facts) -> Check:
        hits = [
            f for f in facts.plan.findings if f.severity == "hostile" and hostile_kind(f) == rule_id
        ]
        if not hits:
            return Miss("no such hostile finding")
        return Hit(listed(_finding_text(f) for f in hits), unique(f.package for f in hits))

    check.__doc__ = f"Hostile content findings classified as {rule_id}."
    return check


def _kind(f: Finding) -> str:
    """The approval rule a non-hostile finding fires."""
    rule = f.rule.lower()
    if rule == MODEL_DIRECTED:
        return MODEL_DIRECTED
    path = f.file.lstrip(".")
    if f.severity == "changed" or "changed" in rule or "new-script" in rule:
        return "script.changed"
    if path.startswith("/etc/apt/apt.conf.d") or "apt-hook" in rule or "apt.conf" in rule:
        return "content.apt-hook"
    if _is_script(f):
        return "script.sensitive"
    if "setuid" in rule or "setgid" in rule:
        return "content.setuid"
    return "content.sensitive-path"


def _sensitive(rule_id: str) -> Callable[[Facts], Check]:
    def check(facts: Facts) -> Check:
        found = [
            f
            for f in facts.plan.findings
            if f.severity in ("sensitive", "changed") and _kind(f) == rule_id
        ]
        hits = [f for f in found if not facts.from_distribution(f.package)]
        if not hits:
            if found:
                return Miss("only packages from approved distribution sources")
            return Miss("no such finding")
        return Hit(listed(_finding_text(f) for f in hits), unique(f.package for f in hits))

    check.__doc__ = f"Findings classified as {rule_id}, from non-distribution sources."
    return check


def content_unavailable(facts: Facts) -> Check:
    """Contents were to be inspected but could not be for some package (download failed)."""
    names = [s.package or s.detail for s in facts.plan.signals if s.name == "content.unavailable"]
    if not names:
        return Miss("every package's contents were available")
    return Hit(f"contents could not be inspected: {listed(names)}", unique(names))


def content_not_inspected(facts: Facts) -> Check:
    """Packages from non-distribution sources installed without looking inside them."""
    if facts.plan.content_inspected:
        return Miss("package contents were inspected")
    distribution = facts.distribution_repos
    names = [
        c.name
        for c in facts.changing
        if (c.repository is None or c.repository not in distribution) and c.action in _WITH_FILE
    ]
    if not names:
        return Miss("only packages from approved distribution sources (or none) are installed")
    return Hit(f"maintainer scripts and files not inspected: {listed(names)}", unique(names))


MODEL_DIRECTED = "content.model-directed-text"


def model_directed_text(facts: Facts) -> Check:
    """Package text addresses a model or an agent (from any source, distribution included)."""
    hits = [f for f in facts.plan.findings if f.rule == MODEL_DIRECTED]
    if not hits:
        return Miss("no package text addresses a model or an agent")
    return Hit(listed(_finding_text(f) for f in hits), unique(f.package for f in hits))


def content_apt_hook(facts: Facts) -> Check:
    """An apt.conf.d hook shipped by a package: it runs as root around every later apt call.

    A hostile hook (fetch-and-run, checks switched off) denies from any source; any
    other hook from a non-distribution source requires approval.
    """
    hooks = [
        f
        for f in facts.plan.findings
        if f.severity in ("hostile", "sensitive", "changed")
        and (hostile_kind(f) == "content.apt-hook" or _kind(f) == "content.apt-hook")
    ]
    hostile = [f for f in hooks if f.severity == "hostile"]
    if hostile:
        return Hit(
            f"hostile apt hook: {listed(_finding_text(f) for f in hostile)}",
            unique(f.package for f in hostile),
            Effect.DENY,
        )
    hits = [f for f in hooks if not facts.from_distribution(f.package)]
    if not hits:
        if hooks:
            return Miss("only packages from approved distribution sources")
        return Miss("no package ships an apt hook")
    return Hit(listed(_finding_text(f) for f in hits), unique(f.package for f in hits))


_D, _A = Effect.DENY, Effect.REQUIRE_APPROVAL

RULES: tuple[Rule, ...] = (
    Rule("kernel.change", _A, "kernel or boot-chain packages change", kernel_change),
    Rule(
        "package.security-sensitive",
        _A,
        "security-sensitive packages change",
        package_security_sensitive,
    ),
    Rule("name.lookalike", _A, "a requested name imitates another package", name_lookalike),
    Rule(
        "package.release-age",
        _A,
        "a version its source offered less than min_release_age_s ago",
        package_release_age,
    ),
    Rule(
        "vuln.fixed-available",
        _D,
        "a critical vulnerability's fixed version exists and the plan does not install it",
        vuln_fixed_available,
        PHRASE_VULN,
    ),
    Rule(
        "vuln.fixed-available-noncritical",
        _D,
        "a non-critical vulnerability's fixed version exists and the plan does not install it",
        vuln_fixed_available_noncritical,
    ),
    Rule("vuln.no-fix", _A, "a vulnerability without a fix", vuln_no_fix),
    Rule(
        "vuln.db-missing", _A, "no vulnerability data consulted", vuln_db_missing, overridable=True
    ),
    Rule(
        "vuln.db-stale",
        _A,
        "vulnerability data older than thresholds.vulndb_max_age_s",
        vuln_db_stale,
        overridable=True,
    ),
    Rule(
        "script.download-exec",
        _D,
        "a maintainer script downloads and executes",
        _hostile("script.download-exec"),
    ),
    Rule(
        "script.decoded-exec",
        _D,
        "a maintainer script executes decoded or obfuscated code",
        _hostile("script.decoded-exec"),
    ),
    Rule(
        "script.hostile",
        _D,
        "any other hostile maintainer-script finding",
        _hostile("script.hostile"),
    ),
    Rule(
        "content.hostile", _D, "any other hostile file-content finding", _hostile("content.hostile")
    ),
    Rule(
        "script.changed",
        _A,
        "new or changed maintainer scripts (non-distribution)",
        _sensitive("script.changed"),
    ),
    Rule(
        "script.sensitive",
        _A,
        "scripts touching sensitive system state (non-distribution)",
        _sensitive("script.sensitive"),
    ),
    Rule(
        "content.apt-hook",
        _A,
        "ships an apt.conf.d hook (non-distribution; deny when hostile)",
        content_apt_hook,
    ),
    Rule(
        MODEL_DIRECTED,
        _A,
        "package text (description, maintainer script) addresses a model or an agent",
        model_directed_text,
    ),
    Rule(
        "content.setuid",
        _A,
        "ships setuid/setgid files (non-distribution)",
        _sensitive("content.setuid"),
    ),
    Rule(
        "content.sensitive-path",
        _A,
        "ships files under sensitive paths (non-distribution)",
        _sensitive("content.sensitive-path"),
    ),
    Rule("content.unavailable", _A, "contents could not be inspected", content_unavailable),
    Rule(
        "content.not-inspected",
        _A,
        "non-distribution packages installed without content inspection",
        content_not_inspected,
    ),
)
