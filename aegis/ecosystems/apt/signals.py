"""Risk signals of an apt plan, derived purely from the plan's evidence.

Signal names are stable API (policy and people read them):

- ``kernel`` (kernel or boot chain by name), ``security-sensitive`` (binary or
  source name on the configured list), ``essential``
- ``removal``, ``downgrade``, ``held-back``
- ``repo.<problem>`` for every repository problem (``repo.signature-bad``,
  ``repo.signature-no-pubkey``, ``repo.signature-unsigned``, ``repo.signature-missing``,
  ``repo.expired``, ``repo.frozen``, ``repo.no-signed-by``,
  ``repo.keyring-untrusted-dir``, ``repo.keyring-writable``, ``repo.trusted-yes``,
  ``repo.unapproved``, ``repo.hash-mismatch``, ``repo.malformed-signed-file``,
  ``repo.trusted-no``, ``repo.undated``, ``repo.release-info-changed``,
  ``repo.release-rollback``)
- ``weakly-pinned``: a package supplied by a source not allowed to supply it
- ``content.<rule>`` for every content finding, ``vulnerability`` for every match
- ``target.direct-path``, ``target.url``, ``target.unknown``, ``analysis.failed``
- ``rollback.snapshot-mismatch``: a rollback's kept .deb failed its checks against
  aegisd's snapshot manifest (``aegis/ecosystems/apt/snapshot_debs.py``)

Example:
    >>> [s.name for s in package_signals(
    ...     [PackageChange("linux-image-x", "amd64", Action.REMOVE, "1", None, "linux", "1", None)],
    ...     kernel=("linux-image-*",), sensitive=())]
    ['kernel', 'removal']
"""

from __future__ import annotations

import fnmatch
import functools
import re
from collections.abc import Iterable, Sequence

from aegis.model import Action, Finding, PackageChange, Repository, Signal, Vulnerability


@functools.lru_cache(maxsize=64)
def _pattern(patterns: tuple[str, ...]) -> re.Pattern[str] | None:
    """One regex for a list of shell patterns: fnmatchcase of any of them, in one match."""
    if not patterns:
        return None
    return re.compile("|".join(f"(?:{fnmatch.translate(p)})" for p in patterns))


def _matches(name: str, patterns: Sequence[str]) -> bool:
    # Hundreds of packages times every configured pattern: one compiled alternation per
    # list instead of a fnmatchcase call per pair (the same answers).
    rx = _pattern(tuple(patterns))
    return rx is not None and rx.match(name) is not None


def package_signals(
    changes: Iterable[PackageChange],
    *,
    kernel: Sequence[str],
    sensitive: Sequence[str],
    holds: frozenset[str] = frozenset(),
) -> list[Signal]:
    """Per-package signals of the delta (``holds``: packages dpkg has on hold)."""
    out: list[Signal] = []
    for c in changes:
        if _matches(c.name, kernel):
            out.append(Signal("kernel", c.name, f"{c.action.value} {c.name}"))
        if _matches(c.name, sensitive) or _matches(c.source_package, sensitive):
            out.append(Signal("security-sensitive", c.name, f"source {c.source_package}"))
        if c.essential:
            out.append(Signal("essential", c.name, f"{c.action.value} of an Essential package"))
        if c.action in (Action.REMOVE, Action.PURGE):
            out.append(Signal("removal", c.name, f"{c.action.value} {c.current_version}"))
        elif c.action is Action.DOWNGRADE:
            out.append(Signal("downgrade", c.name, f"{c.current_version} -> {c.candidate_version}"))
        elif c.action is Action.HELD_BACK:
            why = (
                f"held by dpkg (apt-mark hold); 'apt-mark unhold {c.name}' lets it change"
                if c.name in holds
                else "kept back by apt (it needs new packages or removals; "
                "'aegis apt full-upgrade --plan' plans that)"
            )
            out.append(Signal("held-back", c.name, why))
    return out


def repository_signals(repos: Iterable[Repository]) -> list[Signal]:
    """One ``repo.<problem>`` signal per problem of each repository."""
    out: list[Signal] = []
    for r in repos:
        label = f"{r.uri} {r.suite}/{r.component}"
        for problem in r.problems:
            name, _, detail = problem.partition(":")
            out.append(Signal(f"repo.{name}", None, f"{label}{': ' + detail if detail else ''}"))
    return out


def content_signals(findings: Iterable[Finding], vulns: Iterable[Vulnerability]) -> list[Signal]:
    """``content.<rule>`` and ``vulnerability`` signals."""
    out = [
        Signal(
            f.rule if f.rule.startswith("content.") else f"content.{f.rule}",
            f.package,
            f"{f.file}:{f.line} ({f.severity})",
        )
        for f in findings
    ]
    for v in vulns:
        fix = f"fixed in {v.fixed_version}" if v.fixed_version else "no fix"
        state = "fixed by this plan" if v.fixed_by_plan else fix
        out.append(Signal("vulnerability", v.package, f"{v.cve} {v.urgency} ({state})"))
    return out


def source_allows(repo: Repository, name: str) -> bool:
    """An approved repository that is the distribution or lists ``name`` (fnmatch)."""
    return repo.approved and (repo.distribution or _matches(name, repo.allowed_packages))


def weak_pin_signal(
    change: PackageChange, repo: Repository, offers: Sequence[tuple[str, Repository]]
) -> Signal | None:
    """``weakly-pinned`` when ``repo`` supplies ``change`` but may not.

    An approved source supplying a name it may not supply is weakly pinned; so is
    an unapproved source winning over an approved source that offers the package
    (``offers``: (version, repository) of every source offering it), the
    third-party-repo-with-a-higher-version case of docs/testing.md "Facts about apt and Debian".
    """
    if source_allows(repo, change.name):
        return None
    if repo.approved:
        return Signal(
            "weakly-pinned", change.name, f"{repo.uri} {repo.suite} may not supply {change.name}"
        )
    for ver, other in offers:
        if other.id != repo.id and source_allows(other, change.name):
            return Signal(
                "weakly-pinned",
                change.name,
                f"{change.candidate_version} from unapproved {repo.uri} {repo.suite} "
                f"overrides {ver} from {other.uri} {other.suite}",
            )
    return None


def sort_signals(signals: Iterable[Signal]) -> tuple[Signal, ...]:
    """Deduplicated, in a stable order."""
    return tuple(sorted(set(signals), key=lambda s: (s.name, s.package or "", s.detail)))
