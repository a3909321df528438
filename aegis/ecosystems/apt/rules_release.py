"""Rules about a Release's freshness and its history in apt's lists (docs/apt-trust.md).

- ``repo.undated``: a Release with neither ``Date`` nor ``Valid-Until``; apt warns
  ("Invalid 'Date' entry") and can then judge neither freshness nor rollback.
- ``repo.release-changed``: the Release the next update would fetch changes Origin,
  Label, Suite, Codename or the default pin (``NotAutomatic``/``ButAutomaticUpgrades``)
  against the copy in apt's lists; apt refuses that without
  ``--allow-releaseinfo-change`` (Suite: apt only notes it; a human decides here too).
- ``repo.rollback``: that Release is dated before the lists' copy: a replayed older
  Release, which apt silently ignores and Aegis denies.

Pure; see :mod:`aegis.policy.rules`.

Example:
    >>> [r.id for r in RULES]
    ['repo.undated', 'repo.release-changed', 'repo.rollback']
"""

from __future__ import annotations

from aegis.model import Repository
from aegis.policy.config import freeze_after_s
from aegis.policy.result import Effect
from aegis.policy.rules import PHRASE_SOURCE, Check, Facts, Hit, Miss, Rule, listed, unique


def _label(repo: Repository) -> str:
    return f"{repo.uri} {repo.suite}/{repo.component}"


def _details(repo: Repository, name: str) -> list[str]:
    return [p.partition(":")[2] for p in repo.problems if p.partition(":")[0] == name]


def repo_undated(facts: Facts) -> Check:
    """A signed Release without a usable Date or Valid-Until: freshness cannot be judged.

    Judged again from the dates themselves (a plan is untrusted input); a source whose
    ``[[sources]] freeze_after_s`` is 0 is one the operator chose not to judge for age.
    """
    default_s = facts.config.thresholds.freeze_after_s
    bad: list[str] = []
    for r in facts.plan.repositories:
        undated = "undated" in r.problems or (
            r.signature == "good" and r.date is None and r.valid_until is None
        )
        if undated and freeze_after_s(facts.repo_source.get(r.id), default_s) != 0:
            bad.append(_label(r))
    if not bad:
        return Miss("every repository's Release carries a Date or Valid-Until")
    return Hit(
        f"Release without Date or Valid-Until (freshness and rollback cannot be judged): "
        f"{listed(bad)}; a source that is never re-dated needs freeze_after_s = 0 in its "
        "[[sources]] entry",
        unique(bad),
    )


def repo_release_changed(facts: Facts) -> Check:
    """The new Release changes what apt's lists say about the repository's identity or pin."""
    bad = [
        f"{_label(r)}: {d}"
        for r in facts.plan.repositories
        for d in _details(r, "release-info-changed")
    ]
    if not bad:
        return Miss("no Release changes Origin, Label, Suite, Codename or its default pin")
    return Hit(
        f"Release information changed against apt's lists (apt refuses it without "
        f"--allow-releaseinfo-change): {listed(bad)}",
        unique(bad),
    )


def repo_rollback(facts: Facts) -> Check:
    """The new Release is older than the one in apt's lists."""
    bad = [
        f"{_label(r)}: {d}"
        for r in facts.plan.repositories
        for d in _details(r, "release-rollback")
    ]
    if not bad:
        return Miss("no Release is older than the copy in apt's lists")
    return Hit(f"Release older than the copy in apt's lists (rollback): {listed(bad)}", unique(bad))


# Helpers of aegis.policy.rules_repo's repo.untrusted and target.unknown.


def suite_mismatch(facts: Facts, repo: Repository) -> str | None:
    """The signed Suite/Codename name another suite than the source entry, unapproved.

    An archive key signs every suite of its archive (experimental, old codenames), so a
    Release of another suite signed by the approved key is not the approved suite.
    """
    signed = {v for v in (repo.signed_suite, repo.signed_codename) if v}
    # apt compares only what the Release states; neither field states no other suite.
    if repo.signature != "good" or repo.suite.endswith("/") or not signed or repo.suite in signed:
        return None
    src = facts.repo_source.get(repo.id)
    if src is not None and signed & set(src.signed_suites):
        return None
    got = f"{repo.signed_suite or '-'}/{repo.signed_codename or '-'}"
    return f"signed Release is for suite/codename {got}, not {repo.suite}"


_LISTS_WORDS = {
    "no-lists": "apt has no lists for it (never updated, or its last update was refused)",
    "lists-stale": "apt's lists are older than the repository (the last update was refused, "
    "or has not run since)",
}


def unusable_sources(facts: Facts) -> str:
    """Sources apt has no usable lists for, with what Aegis can tell of why (or "")."""
    out: list[str] = []
    for r in facts.plan.other_sources:
        marks = [_LISTS_WORDS[p] for p in r.problems if p in _LISTS_WORDS]
        if not marks:
            continue
        # Without a local repository Aegis has no Release to read ("missing"): no reason.
        skip = {*_LISTS_WORDS, "unapproved", "signature-missing"}
        others = [p for p in r.problems if p not in skip]
        why = f"; the repository's own Release: {', '.join(others)}" if others else ""
        out.append(f"{_label(r)}: {marks[0]}{why}")
    return f" ({'; '.join(out)})" if out else ""


RULES: tuple[Rule, ...] = (
    Rule(
        "repo.undated",
        Effect.DENY,
        "Release without Date or Valid-Until",
        repo_undated,
        PHRASE_SOURCE,
    ),
    Rule(
        "repo.release-changed",
        Effect.REQUIRE_APPROVAL,
        "Release changes Origin/Label/Suite/Codename/default pin against apt's lists",
        repo_release_changed,
    ),
    Rule(
        "repo.rollback",
        Effect.DENY,
        "Release dated before the copy in apt's lists",
        repo_rollback,
        PHRASE_SOURCE,
    ),
)
