"""The built-in rule set: pure rules with stable ids.

Each rule is a pure function over :class:`Facts` (the plan, the policy config and
the evaluation time, indexed once per evaluation) and returns either a
:class:`Hit` (the rule fired: reason, subjects, optionally a plan-specific effect)
or a :class:`Miss` (why it did not fire, for ``--explain``). Rules read no clock,
file or environment. Rule ids are stable API: operators override them in
``[rules."<id>"]`` and agents match on them.

Effects, strictest first: deny, require-approval, allow-with-snapshot, allow. The
engine takes the strictest fired effect; when nothing fired it requires approval.
Deny rules carry the operator contract's Deny Interpretation phrase verbatim
(quoted in docs/operator-guide.md "What a deny means") in ``contract``.

The generic rules live in modules of their own to stay small: this one (types, phrases,
facts), :mod:`aegis.policy.rules_repo` (analysis, command, provenance, evidence age) and
:mod:`aegis.policy.rules_delta` (changed packages, vulnerabilities, contents);
:mod:`aegis.policy.ruleset` lists them by version. Each ecosystem's own rules (apt's
included) are in its folder and import this module.

Example:
    >>> from aegis.policy.ruleset import default_rules
    >>> [r.id for r in default_rules()][:3]
    ['analysis.failed', 'command.metachar', 'provenance.missing']
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from itertools import compress

from aegis.model import Action, Operation, PackageChange, Plan, Repository
from aegis.policy.config import (
    ApprovedSource,
    PolicyConfig,
    match_source,
    name_matcher,
)
from aegis.policy.result import Effect

RULESET_VERSION = "aegis.rules/1"

# Deny Interpretation phrases of the operator contract, copied verbatim. Tests compare
# them with hand copies and docs/operator-guide.md byte for byte; never reword them.
PHRASE_REPOSITORY = (
    "untrusted or weakly pinned package repository: require an explicit trusted Signed-By "
    "keyring and approved source."
)
PHRASE_SOURCE = (
    "target source or evidence is denied: do not work around direct URL, local path, "
    "replacement, unsigned repo, downgrade, or missing provenance blocks."
)
PHRASE_METACHAR = (
    "command preview contains shell metacharacters: reject the request; command previews "
    "must be argv arrays."
)
PHRASE_VULN = (
    "critical vulnerability evidence: install only an approved fixed version or deny the operation."
)

BUILTIN_KERNEL = (
    "linux-image-*",
    "linux-headers-*",
    "linux-modules-*",
    "linux-signed-*",
    "linux-base",
    "grub-*",
    "grub2*",
    "shim-*",
    "systemd-boot*",
    "initramfs-tools*",
    "dracut*",
)
"""Kernel and boot-chain names always covered; ``[packages] kernel`` adds to them."""

BUILTIN_SENSITIVE = (
    "openssl",
    "libssl*",
    "openssh-*",
    "sudo",
    "libpam*",
    "login",
    "passwd",
    "libc6",
    "libnss*",
    "ca-certificates",
    "gnupg*",
    "gpgv",
    "sqv",
    "apt",
    "dpkg",
    "systemd",
)
"""Security-sensitive names always covered; ``[packages] security_sensitive`` adds to them."""

MAX_LISTED = 5
"""Subjects named in a reason; the rest are counted (the subjects field has them all)."""


@dataclass(frozen=True)
class Hit:
    """The rule fired."""

    reason: str
    subjects: tuple[str, ...] = ()
    effect: Effect | None = None
    """Plan-specific effect (e.g. a rollback downgrade needs approval); None: the rule's."""


@dataclass(frozen=True)
class Miss:
    """The rule did not fire, and why."""

    why: str


Check = Hit | Miss


class Facts:
    """The plan, config and time, indexed once per evaluation so rules stay O(n)."""

    __slots__ = (
        "changing",
        "config",
        "distribution_repos",
        "kernel_match",
        "kernel_patterns",
        "names",
        "now",
        "operation",
        "plan",
        "prov",
        "repo_source",
        "repos",
        "rollback",
        "sensitive_match",
        "sensitive_patterns",
    )

    def __init__(self, plan: Plan, config: PolicyConfig, now: datetime) -> None:
        """Index ``plan`` for the rules.

        Args:
            plan: The operation plan under evaluation (untrusted input).
            config: The operator's policy file.
            now: Evaluation time, for the plan-age rule.
        """
        self.plan = plan
        self.config = config
        self.now = now
        self.operation = plan.intent.operation
        self.rollback = self.operation is Operation.ROLLBACK and bool(plan.intent.rollback_of)
        held_back = Action.HELD_BACK  # bound once: enum lookups cost in a 500-change loop
        self.changing: tuple[PackageChange, ...] = tuple(
            [c for c in plan.changes if c.action is not held_back]
        )
        self.names: tuple[str, ...] = tuple([c.name for c in self.changing])
        """The names of :attr:`changing`, in its order."""
        self.repos: dict[str, Repository] = {r.id: r for r in plan.repositories}
        # Policy decides approval itself, from its own config: the plan's own
        # ``approved`` flag is evidence written by someone else.
        self.repo_source: dict[str, ApprovedSource | None] = {
            r.id: match_source(config, r.uri, r.suite, r.component, r.signer_fingerprint)
            for r in plan.repositories
        }
        self.distribution_repos = frozenset(
            rid for rid, src in self.repo_source.items() if src is not None and src.distribution
        )
        self.kernel_patterns = BUILTIN_KERNEL + config.packages.kernel
        self.sensitive_patterns = BUILTIN_SENSITIVE + config.packages.security_sensitive
        # Bound once per evaluation: rules test every package of a 500-package plan.
        self.kernel_match = name_matcher(self.kernel_patterns)
        self.sensitive_match = name_matcher(self.sensitive_patterns)
        self.prov: dict[tuple[str, str], bool] = {
            (p.package, p.version): bool(p.sha256 and p.chain and p.uri) for p in plan.provenance
        }

    def from_distribution(self, package: str) -> bool:
        """Whether every change of ``package`` comes from an approved distribution source."""
        found = False
        for c in self.plan.changes:
            if c.name == package:
                found = True
                if c.repository is None or c.repository not in self.distribution_repos:
                    return False
        return found


def listed(items: Iterable[str]) -> str:
    """Name up to :data:`MAX_LISTED` items, then count the rest (deterministic order kept)."""
    seen: list[str] = []
    for item in items:
        if item not in seen:
            seen.append(item)
    head = ", ".join(seen[:MAX_LISTED])
    more = len(seen) - MAX_LISTED
    return f"{head} and {more} more" if more > 0 else head


def unique(items: Iterable[str]) -> tuple[str, ...]:
    """Items without duplicates, first occurrence order."""
    return tuple(dict.fromkeys(items))


def parse_time(text: str | None) -> datetime | None:
    """Parse ``YYYY-MM-DDTHH:MM:SSZ`` (or any ISO-8601 with offset) to aware UTC; None if bad."""
    if not text:
        return None
    try:
        value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    if value.tzinfo is None:
        return None
    return value.astimezone(UTC)


def snapshot_debs(facts: Facts) -> tuple[dict[tuple[str, str], str], list[str]]:
    """The plan's snapshot .debs: (vouched ``(name, version)`` -> path, refused subjects).

    A kept .deb is vouched for only in a rollback request restoring the snapshot it
    was kept in, when the analyzer found it matching aegisd's manifest (hash, size,
    control fields, root-owned); any other is a local path target like any other.
    """
    vouched: dict[tuple[str, str], str] = {}
    refused: list[str] = []
    for d in facts.plan.snapshot_debs:
        if facts.rollback and d.snapshot_id == facts.plan.intent.rollback_of and d.verified:
            vouched[(d.package, d.version)] = d.path
        elif not d.verified:
            refused.append(f"{d.path} ({d.problem or 'does not match its snapshot manifest'})")
        else:
            refused.append(f"{d.path} (not a rollback of snapshot {d.snapshot_id})")
    return vouched, refused


def kernel_names(facts: Facts) -> list[str]:
    """The changing packages that are kernel or boot chain by name, in plan order.

    By the built-in and the configured patterns.
    """
    names = facts.names
    return list(compress(names, facts.kernel_match.flags(names)))


def sensitive_names(facts: Facts) -> list[str]:
    """The changing packages security-sensitive by binary or source name, in plan order.

    By the built-in and the configured patterns.
    """
    match = facts.sensitive_match
    by_name = match.flags(facts.names)
    by_source = match.flags([c.source_package for c in facts.changing])
    return list(compress(facts.names, map(operator.or_, by_name, by_source)))


@dataclass(frozen=True)
class Rule:
    """One rule of the set."""

    id: str
    effect: Effect
    """Effect when it fires (a Hit may name a plan-specific one)."""
    summary: str
    """What it checks, in one line (``aegis policy rules``)."""
    check: Callable[[Facts], Check]
    contract: str | None = None
    """Deny Interpretation phrase carried by its denies."""
    overridable: bool = False
    """May an override loosen or disable it? Otherwise overrides only tighten."""
