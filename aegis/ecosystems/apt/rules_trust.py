"""apt's rules about targets, repositories and the signed-index chain.

Debian name grammar, .deb paths and URLs as targets, the trust of each repository
(approved source, signature, Signed-By keyring, Valid-Until, freeze window, apt's
configuration and hooks) and the match of a downloaded .deb with its signed index.
Pure; see :mod:`aegis.policy.rules`. :mod:`aegis.ecosystems.apt.rules` places them
among the generic rules.

Example:
    >>> [r.id for r in PROVENANCE]
    ['provenance.mismatch']
"""

from __future__ import annotations

import re
from datetime import timedelta

from aegis.ecosystems.apt.evidence.release import is_frozen
from aegis.ecosystems.apt.rules_release import suite_mismatch, unusable_sources
from aegis.model import Repository
from aegis.policy.config import freeze_after_s, source_allows
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
    snapshot_debs,
    unique,
)

_TARGET_RE = re.compile(r"^[a-z0-9][a-z0-9+.-]*(:[a-z0-9-]+)?(=[A-Za-z0-9.+~:-]+)?\Z")
_URL_RE = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:/")
_PATH_FORMS = ("keyring-path", "armored-path", "fingerprint")
# Repository problems (aegis/ecosystems/apt/evidence/repositories.py) other rules already
# judge; any other problem string, including ones added later, is untrusted (fail closed).
_JUDGED_PROBLEMS = frozenset(
    {
        "signature-unsigned",
        "signature-missing",
        "expired",
        "frozen",
        "no-signed-by",
        "keyring-untrusted-dir",
        "trusted-yes",
        "trusted-no",
        "unapproved",
        "weak-algorithm",
        "suite-mismatch",
        "undated",
        "release-info-changed",
        "release-rollback",
    }
)
_NOT_JUDGED_BY_SIGNATURE = ("good", "unsigned", "missing")  # repo.unsigned judges the last two
_INSECURE_FLAGS = (
    "allow-insecure",
    "allow-unauthenticated",
    "trusted-yes",
    "check-valid-until-false",
)
_HOOK_FLAGS = ("dpkg-pre-invoke", "dpkg-post-invoke", "apt-hooks")


def _signals(facts: Facts, *names: str) -> list[str]:
    """Subjects (package or detail) of the plan's signals with one of ``names``."""
    return [s.package or s.detail or s.name for s in facts.plan.signals if s.name in names]


def _repo_label(repo: Repository) -> str:
    return f"{repo.uri} {repo.suite}/{repo.component}"


def target_unknown(facts: Facts) -> Check:
    """A target no configured repository knows (typo or invented name)."""
    failure = facts.plan.failure
    names = _signals(facts, "target.unknown", "unknown-target", "unknown-package")
    if failure is not None and failure.kind == "unknown-package":
        names.append(failure.message)
    if not names:
        return Miss("every target is known to a configured repository")
    why = unusable_sources(facts)
    return Hit(f"no configured repository knows: {listed(names)}{why}", unique(names))


def _is_url(target: str) -> bool:
    return bool(_URL_RE.match(target))


def _is_path(target: str) -> bool:
    if _is_url(target):
        return False
    return target.startswith(("/", "./", "../", "~")) or target.endswith(".deb") or "/" in target


def target_direct_path(facts: Facts) -> Check:
    """A local file path as a target (``./x.deb``): no signed index vouches for it.

    The one exception: a rollback restoring its recorded snapshot installs the .debs
    aegisd kept there, vouched for by aegisd's manifest: a human approves instead.
    """
    vouched, refused = snapshot_debs(facts)
    hits = [t for t in facts.plan.intent.targets if _is_path(t)]
    hits += _signals(facts, "target.direct-path", "direct-path")
    hits += refused
    if hits:
        return Hit(f"local path target(s): {listed(hits)}", unique(hits))
    if vouched:
        restored = [f"{n}={v}" for n, v in vouched]
        return Hit(
            f"rollback of snapshot {facts.plan.intent.rollback_of} restores {listed(restored)} "
            "from the .deb kept in the snapshot (SHA-256 matches aegisd's manifest)",
            unique(restored),
            Effect.REQUIRE_APPROVAL,
        )
    return Miss("no target is a local path")


def target_url(facts: Facts) -> Check:
    """A URL given as a target (``http://.../x.deb``)."""
    hits = [t for t in facts.plan.intent.targets if _is_url(t)]
    hits += _signals(facts, "target.url", "url", "direct-url")
    if not hits:
        return Miss("no target is a URL")
    return Hit(f"direct URL target(s): {listed(hits)}", unique(hits))


def target_replacement(facts: Facts) -> Check:
    """Apt would install something other than what was asked for.

    A ``name=version`` target whose package resolves to another version, or a
    replacement signal from the analyzer (a virtual name resolved to a provider).
    """
    hits = _signals(facts, "target.replacement", "replacement")
    by_name = {c.name: c for c in facts.changing}
    for target in facts.plan.intent.targets:
        name, eq, version = target.partition("=")
        name = name.split(":", 1)[0]
        change = by_name.get(name)
        if eq and change is not None and change.candidate_version != version:
            hits.append(f"{target} (plan installs {change.candidate_version})")
    if not hits:
        return Miss("every pinned target resolves to the version asked for")
    return Hit(f"target replaced: {listed(hits)}", unique(hits))


def target_invalid(facts: Facts) -> Check:
    """A target outside the Debian name grammar.

    The analyzer refuses these already; the plan is untrusted input, so policy checks again.
    """
    bad = [
        t
        for t in facts.plan.intent.targets
        if not _TARGET_RE.match(t) and not _is_url(t) and not _is_path(t)
    ]
    if not bad:
        return Miss("every target is a Debian package name")
    return Hit(f"target(s) outside the Debian package grammar: {listed(bad)}", unique(bad))


def repo_untrusted(facts: Facts) -> Check:
    """A repository outside the approved sources, badly signed, or trusted=yes."""
    reasons: list[str] = []
    subjects: list[str] = []
    for repo in facts.plan.repositories:
        label = _repo_label(repo)
        problems = _untrusted_reasons(facts, repo)
        if problems:
            reasons.append(f"{label}: {'; '.join(problems)}")
            subjects.append(label)
    if not reasons:
        return Miss("every repository is an approved source with a good signature")
    return Hit(listed(reasons), unique(subjects))


def _untrusted_reasons(facts: Facts, repo: Repository) -> list[str]:
    """Why ``repo`` is untrusted (empty: it is not)."""
    problems: list[str] = []
    if facts.repo_source.get(repo.id) is None:
        fpr = repo.signer_fingerprint or "no signer"
        problems.append(f"not an approved source (signer {fpr})")
    if repo.signature not in _NOT_JUDGED_BY_SIGNATURE:
        by = f" ({repo.verifier})" if repo.verifier else ""
        problems.append(f"InRelease signature {repo.signature}{by}")
    mismatch = suite_mismatch(facts, repo)
    if mismatch:
        problems.append(mismatch)
    if repo.trusted_yes:
        problems.append("marked trusted=yes")
    if "trusted-no" in repo.problems:
        problems.append("marked trusted=no: apt will not install from it (cannot be authenticated)")
    if repo.signed_by_form != "none" and not repo.keyring_root_only:
        problems.append("Signed-By keyring writable by non-root")
    for problem in repo.problems:
        name = problem.split(":", 1)[0]
        if name.startswith("hash-mismatch"):
            problems.append(f"index does not match its signed hash ({problem})")
        elif name == "malformed-signed-file":
            why = problem.partition(":")[2]
            problems.append(f"signed file refused before verification as apt does: {why}")
        elif (
            name not in _JUDGED_PROBLEMS
            and not name.startswith("signature-")
            and (name != "keyring-writable")
        ):
            problems.append(f"repository problem {problem}")
    return problems


def repo_weak_algorithm(facts: Facts) -> Check:
    """A good signature made with an algorithm newer apt refuses (DSA, RSA < 2048, SHA-224, v3).

    Where this host's apt verifies with sqv its policy refuses these outright
    (repo.untrusted); where it uses gpgv (bookworm), apt accepts them, so a human decides.
    """
    weak = [
        f"{_repo_label(r)}: {p.split(':', 1)[1]}"
        for r in facts.plan.repositories
        for p in r.problems
        if p.startswith("weak-algorithm:")
    ]
    if not weak:
        return Miss("no repository is signed with a weak algorithm")
    return Hit(f"signed with a weak algorithm: {listed(weak)}", unique(weak))


def repo_weakly_pinned(facts: Facts) -> Check:
    """A repository that is not trusted for what it supplies.

    No Signed-By, a keyring outside the trusted directory, or a source supplying a
    package it may not (a third-party repository winning ``openssl``).
    """
    reasons: list[str] = []
    subjects: list[str] = []
    for repo in facts.plan.repositories:
        if repo.signed_by_form == "none":
            reasons.append(f"{_repo_label(repo)}: no Signed-By keyring")
            subjects.append(_repo_label(repo))
        elif repo.signed_by_form in _PATH_FORMS and not repo.keyring_trusted_dir:
            reasons.append(f"{_repo_label(repo)}: Signed-By keyring outside the trusted directory")
            subjects.append(_repo_label(repo))
    distribution = facts.distribution_repos  # a distribution source may supply any package
    for change in facts.changing:
        if change.repository is None or change.repository in distribution:
            continue
        src = facts.repo_source.get(change.repository)
        if src is not None and not source_allows(src, change.name):
            reasons.append(f"{change.name} from {src.name}, which may not supply it")
            subjects.append(change.name)
    for signal in facts.plan.signals:
        # The analyzer's own finding, unless policy already named that package above.
        if signal.name == "weakly-pinned" and (signal.package or "") not in subjects:
            reasons.append(f"{signal.package or '?'}: {signal.detail or 'weakly pinned'}")
            subjects.append(signal.package or signal.detail)
    if not reasons:
        return Miss("every package comes from a source allowed to supply it")
    return Hit(listed(reasons), unique(subjects))


def repo_unsigned(facts: Facts) -> Check:
    """A repository whose Release is not signed (or whose signature file is missing)."""
    bad = [
        _repo_label(r) for r in facts.plan.repositories if r.signature in ("unsigned", "missing")
    ]
    if not bad:
        return Miss("every repository is signed")
    return Hit(f"unsigned repository: {listed(bad)}", unique(bad))


def repo_expired(facts: Facts) -> Check:
    """A repository whose Valid-Until has passed."""
    bad = [
        f"{_repo_label(r)} (Valid-Until {r.valid_until})"
        for r in facts.plan.repositories
        if r.expired
    ]
    if not bad:
        return Miss("no repository is past its Valid-Until")
    return Hit(f"expired repository metadata: {listed(bad)}", unique(bad))


def repo_frozen(facts: Facts) -> Check:
    """Repository metadata without Valid-Until and with an old Date (a freeze attack).

    Judged again here with this policy's window for the source (``[[sources]]
    freeze_after_s``, else ``[thresholds] freeze_after_s``) at evaluation time; the
    analyzer's own ``frozen`` verdict also counts (it can only make this stricter).
    """
    default_s = facts.config.thresholds.freeze_after_s
    bad: list[str] = []
    for r in facts.plan.repositories:
        window = freeze_after_s(facts.repo_source.get(r.id), default_s)
        if r.frozen or is_frozen(r.date, r.valid_until, facts.now, timedelta(seconds=window)):
            limit = f"{window // 86_400} days" if window else "never"
            bad.append(f"{_repo_label(r)} (Date {r.date}, no Valid-Until, limit {limit})")
    if not bad:
        return Miss("no repository metadata looks frozen")
    return Hit(
        f"frozen repository metadata: {listed(bad)}; a suite its distribution no longer "
        "re-dates needs freeze_after_s in its [[sources]] entry",
        unique(bad),
    )


def repo_insecure_config(facts: Facts) -> Check:
    """Apt configuration that switches signature or freshness checks off."""
    flags = [f for f in facts.plan.config.flags if f in _INSECURE_FLAGS]
    if not flags:
        return Miss("apt configuration keeps signature and Valid-Until checks on")
    return Hit(f"apt configuration weakens checks: {', '.join(flags)}", tuple(flags))


def config_apt_hooks(facts: Facts) -> Check:
    """Apt or dpkg hooks configured on the host run commands as root around dpkg."""
    flags = [f for f in facts.plan.config.flags if f in _HOOK_FLAGS]
    if not flags:
        if "packaged-hooks" in facts.plan.config.flags:
            return Miss(
                "only hooks installed packages ship unmodified: "
                + (listed(facts.plan.config.hooks) or "unnamed")
            )
        return Miss("no apt or dpkg hook is configured")
    hooks = listed(facts.plan.config.hooks) or "unnamed"
    return Hit(f"configured hooks ({', '.join(flags)}): {hooks}", tuple(flags))


def provenance_mismatch(facts: Facts) -> Check:
    """A downloaded .deb whose hash did not match the signed index."""
    if not facts.plan.content_inspected:
        return Miss("contents were not downloaded, so there is no file hash to compare")
    names = {c.name for c in facts.changing}
    bad = [
        f"{p.package}={p.version}"
        for p in facts.plan.provenance
        if p.package in names and not p.verified
    ]
    if not bad:
        return Miss("every downloaded file matched its signed index hash")
    return Hit(f"downloaded file does not match the signed index: {listed(bad)}", unique(bad))


_D, _A = Effect.DENY, Effect.REQUIRE_APPROVAL

TARGETS: tuple[Rule, ...] = (
    Rule("target.unknown", _D, "a target no configured repository knows", target_unknown),
    Rule(
        "target.direct-path", _D, "a local .deb path as target", target_direct_path, PHRASE_SOURCE
    ),
    Rule("target.url", _D, "a URL as target", target_url, PHRASE_SOURCE),
    Rule(
        "target.replacement",
        _D,
        "apt resolves a target to something else",
        target_replacement,
        PHRASE_SOURCE,
    ),
    Rule("target.invalid", _D, "a target outside the Debian name grammar", target_invalid),
)

REPOSITORIES: tuple[Rule, ...] = (
    Rule(
        "repo.untrusted",
        _D,
        "unapproved source, bad signature, trusted=yes, loose keyring",
        repo_untrusted,
        PHRASE_REPOSITORY,
    ),
    Rule(
        "repo.weakly-pinned",
        _D,
        "no Signed-By, or a source supplying what it may not",
        repo_weakly_pinned,
        PHRASE_REPOSITORY,
    ),
    Rule("repo.unsigned", _D, "unsigned repository", repo_unsigned, PHRASE_SOURCE),
    Rule(
        "repo.weak-algorithm",
        _A,
        "signature algorithm this host's apt accepts but apt 3 refuses",
        repo_weak_algorithm,
    ),
    Rule("repo.expired", _D, "repository metadata past Valid-Until", repo_expired, PHRASE_SOURCE),
    Rule(
        "repo.frozen",
        _D,
        "repository metadata frozen (old Date, no Valid-Until)",
        repo_frozen,
        PHRASE_SOURCE,
    ),
    Rule(
        "repo.insecure-config",
        _D,
        "apt configured to skip signature or freshness checks",
        repo_insecure_config,
        PHRASE_REPOSITORY,
    ),
    Rule("config.apt-hooks", _A, "apt or dpkg hooks configured on the host", config_apt_hooks),
)

PROVENANCE: tuple[Rule, ...] = (
    Rule(
        "provenance.mismatch",
        _D,
        "a downloaded file not matching its signed index hash",
        provenance_mismatch,
        PHRASE_SOURCE,
    ),
)
