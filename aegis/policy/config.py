r"""Policy configuration: ``policy.toml`` parsed strictly into :class:`PolicyConfig`.

The file lives at ``Config.policy_path`` (``/etc/aegis/policy.toml``, relocated by
``AEGIS_HOME``). There is no built-in fallback: an absent, empty, unreadable or
malformed file is a :class:`PolicyConfigError`, and the edge turns that into a
:class:`PolicyUnavailable` that the engine DENIES (fail closed; sigstore ``AllOf``
of nothing fails). ``aegis policy init`` writes the shipped default
(``aegis/policy/default_policy.toml``) for the operator to edit.

Parsing (:func:`parse_policy_config`) is pure; :func:`aegis.policy.load.load_policy_config`
reads the file (the policy file and, when ``[shadow] path`` is set,
the shadow file next to it).

For the apt analyzer (issue 3): repositories are approved by identity, never by
Origin text. Call :func:`approved_sources` to get the ``[[sources]]`` entries,
:func:`match_source` to find the entry for one repository's
(uri, suite, component, signer fingerprint), and :func:`source_allows` to ask
whether that entry may supply a package name. Policy itself recomputes the same
answers from its own config and does not trust the ``approved`` /
``allowed_packages`` fields recorded in a plan.

Example:
    >>> cfg = parse_policy_config('format = "aegis.policy-config/1"\nruleset = "aegis.rules/1"')
    >>> cfg.approval.count
    1
    >>> match_source(cfg, "http://deb.debian.org/debian", "bookworm", "main", None) is None
    True
"""

from __future__ import annotations

import fnmatch
import functools
import operator
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from itertools import repeat
from typing import Any, TypeVar
from urllib.parse import urlsplit

from aegis.bounds import HEX64_RE as _HEX_KEY_RE
from aegis.ecosystems.image.names import is_loopback
from aegis.health.policy import HealthPolicy, parse_health
from aegis.policy.automation import AutomationPolicy, parse_automation
from aegis.policy.fields import (
    MAX_LIST,
    PolicyConfigError,
    _bool,
    _check_keys,
    _int,
    _str,
    _strs,
    _table,
    normalize_fingerprint,
    normalize_uri,
)
from aegis.toml_doc import load_toml

CONFIG_FORMAT = "aegis.policy-config/1"
MAX_POLICY_BYTES = 1024 * 1024
EFFECT_NAMES = ("deny", "require-approval", "allow-with-snapshot", "allow")
DEFAULT_FREEZE_AFTER_S = 180 * 86_400
"""Debian's stable and oldstable suites carry no Valid-Until and are re-dated only at
point releases, every two to three months (sometimes four); 180 days leaves room for a
late point release while a mirror frozen for half a year still looks frozen. Suites that
publish daily carry a Valid-Until (``*-security``, trixie's ``*-updates``), which binds
instead of this window."""

T = TypeVar("T")


@dataclass(frozen=True)
class ApprovedSource:
    """One ``[[sources]]`` entry: an apt source identified by what cannot be spoofed."""

    name: str
    """Operator's label, shown in reasons."""
    uri: str
    """Archive URI, compared without a trailing slash."""
    suite: str
    component: str
    signer_fingerprint: str
    """Full OpenPGP fingerprint (upper-case hex, no spaces) that must sign its InRelease."""
    distribution: bool = False
    """The distribution's own archive: may supply any package."""
    packages: tuple[str, ...] = ()
    """Names (``fnmatch`` patterns) a non-distribution source may supply; empty: none."""
    signed_suites: tuple[str, ...] = ()
    """Signed Release ``Suite``/``Codename`` values accepted although they differ from
    ``suite`` (an archive key signs other suites too: a mismatch is otherwise a deny)."""
    freeze_after_s: int | None = None
    """This source's Release without Valid-Until is frozen when its Date is older than
    this; None: ``[thresholds] freeze_after_s``; 0: never (a suite its distribution no
    longer re-dates, e.g. oldstable after its last point release). A Valid-Until in the
    Release always binds instead (``repo.expired``)."""
    min_release_age_s: int | None = None
    """Release-age quarantine for this source (``package.release-age``); None:
    ``[thresholds] min_release_age_s``; 0: none (e.g. the security suite)."""


@dataclass(frozen=True)
class ApprovalSettings:
    """Default approval control when a rule requires approval."""

    count: int = 1
    """How many distinct approvers must sign."""
    roles: tuple[str, ...] = ("approver",)
    """Roles an approver may hold."""


@dataclass(frozen=True)
class ReviewSettings:
    """How model reviews are counted."""

    public_keys: tuple[str, ...] = ()
    """Hex Ed25519 keys of aegis-reviewd; empty: the edge uses ``<etc>/keys/review.pub``."""
    allow_skip: bool = True
    """A review skipped by configuration (``--no-review``, no model) is neutral.

    False makes a skipped review require approval like a failed one."""
    required: bool = True
    """False: this site runs no model review; a request without a review record is
    treated as skipped by configuration (neutral). A review that exists still counts
    only when it verifies, and a failed or invalid one still requires approval."""


@dataclass(frozen=True)
class Thresholds:
    """Numeric limits; times in seconds."""

    evidence_max_age_s: int = 86_400
    """A plan older than this at evaluation is stale evidence (deny: re-plan)."""
    clock_skew_s: int = 60
    """A plan created further in the future than this is refused."""
    vulndb_max_age_s: int = 7 * 86_400
    """Vulnerability data older than this requires approval."""
    vuln_ignore_urgencies: tuple[str, ...] = ("unimportant", "end-of-life")
    """Tracker urgencies that never block (Debian marks them as not worth a fix)."""
    freeze_after_s: int = DEFAULT_FREEZE_AFTER_S
    """A Release without Valid-Until whose Date is older than this looks frozen (a mirror
    stuck in time); ``[[sources]] freeze_after_s`` overrides it per source."""
    min_release_age_s: int = 0
    """A package version first seen (or in a Release dated) less than this ago requires
    approval (``package.release-age``); 0 turns the quarantine off;
    ``[[sources]] min_release_age_s`` overrides it per source."""


@dataclass(frozen=True)
class PackageLists:
    """Package name lists (``fnmatch`` patterns) some rules consult."""

    security_sensitive: tuple[str, ...] = ()
    """Binary or source package names whose change requires approval."""
    kernel: tuple[str, ...] = ()
    """Kernel and boot-chain package names."""


@dataclass(frozen=True)
class RuleOverride:
    """``[rules."<id>"]``: change one rule. Only stricter, unless the rule is overridable."""

    effect: str | None = None
    """Effect when the rule fires (one of deny, require-approval, allow-with-snapshot, allow)."""
    enabled: bool = True
    """False switches the rule off (overridable rules only)."""
    approvals: int | None = None
    """Approvers this rule needs when it requires approval (only more, unless overridable)."""
    roles: tuple[str, ...] = ()
    """Roles this rule's approvers may hold (replaces the default roles)."""


@dataclass(frozen=True)
class ApprovedRegistry:
    """One ``[[registries]]`` entry: an index or registry a non-apt ecosystem may use.

    ``url`` is compared after appending ``/`` (docs/ecosystems.md).
    """

    name: str
    ecosystem: str
    """pip, npm or image."""
    url: str
    # Images only (docs/ecosystems.md "Container images"); omitted while default, so
    # existing policies keep their version hash.
    unsigned: str = field(default="allow", metadata={"aegis.omit_default": True})
    """The effect of ``image.unsigned`` for images from here: allow, require-approval, deny."""
    root: str = field(default="allow", metadata={"aegis.omit_default": True})
    """The effect of ``image.runs-as-root`` for images from here."""
    require_signature: bool = field(default=False, metadata={"aegis.omit_default": True})
    """Images from here need a signature verified by one of ``trusted_keys``
    (``image.signature-unverified``)."""
    trusted_keys: tuple[str, ...] = field(default=(), metadata={"aegis.omit_default": True})
    """Root-owned PEM public keys (cosign's, ECDSA P-256) image signatures are verified with."""


@dataclass(frozen=True)
class PolicyConfig:
    """A parsed policy file. Every field is part of the policy version hash."""

    format: str
    ruleset: str
    """The built-in rule set version the file was written for (``aegis.rules/1``)."""
    name: str = "default"
    approval: ApprovalSettings = field(default_factory=ApprovalSettings)
    review: ReviewSettings = field(default_factory=ReviewSettings)
    thresholds: Thresholds = field(default_factory=Thresholds)
    packages: PackageLists = field(default_factory=PackageLists)
    sources: tuple[ApprovedSource, ...] = ()
    rules: dict[str, RuleOverride] = field(default_factory=dict)
    shadow: PolicyConfig | None = None
    """Another config whose decision is recorded, never enforced."""
    # Left out of the version hash while empty: existing policies keep their version.
    registries: tuple[ApprovedRegistry, ...] = field(
        default=(), metadata={"aegis.omit_default": True}
    )
    automation: AutomationPolicy | None = None
    """``[automation]`` (aegis/policy/automation.py); None when the file has none."""
    health: HealthPolicy | None = field(default=None, metadata={"aegis.omit_default": True})
    """``[health]`` (aegis/health/policy.py): probes per package pattern; None: none."""


@dataclass(frozen=True)
class PolicyUnavailable:
    """No usable policy: the engine denies with this reason (fail closed)."""

    reason: str


# --- parsing -----------------------------------------------------------------------------

# fmt: off
_TOP_KEYS = {"format", "name", "ruleset", "approval", "review", "thresholds", "packages",
             "sources", "rules", "shadow", "registries", "automation", "health"}
_SOURCE_KEYS = {"name", "uri", "suite", "component", "signer_fingerprint", "distribution",
                "packages", "freeze_after_s", "signed_suites", "min_release_age_s"}
_THRESHOLD_KEYS = {"evidence_max_age_s", "clock_skew_s", "vulndb_max_age_s",
                   "vuln_ignore_urgencies", "freeze_after_s", "min_release_age_s"}
# fmt: on
_FPR_RE = re.compile(r"^[0-9A-F]{40}\Z|^[0-9A-F]{64}\Z")


def _parse_source(data: Any, index: int) -> ApprovedSource:
    where = f"sources[{index}]."
    if not isinstance(data, dict):
        raise PolicyConfigError(f"sources[{index}]: expected a table")
    _check_keys(data, _SOURCE_KEYS, where.rstrip("."))
    fpr = normalize_fingerprint(_str(data, "signer_fingerprint", where))
    if fpr is None or not _FPR_RE.match(fpr):
        raise PolicyConfigError(f"{where}signer_fingerprint: expected a full hex fingerprint")
    distribution = _bool(data, "distribution", where, False)
    packages = _strs(data, "packages", where, ())
    if distribution and packages:
        raise PolicyConfigError(f"{where}packages: a distribution source may supply any package")
    freeze = data.get("freeze_after_s")
    if freeze is not None:
        freeze = _int(data, "freeze_after_s", where, 0)
    min_age = data.get("min_release_age_s")
    if min_age is not None:
        min_age = _int(data, "min_release_age_s", where, 0)
    return ApprovedSource(
        name=_str(data, "name", where),
        uri=normalize_uri(_str(data, "uri", where)),
        suite=_str(data, "suite", where),
        component=_str(data, "component", where),
        signer_fingerprint=fpr,
        distribution=distribution,
        packages=packages,
        signed_suites=_strs(data, "signed_suites", where, ()),
        freeze_after_s=freeze,
        min_release_age_s=min_age,
    )


def _parse_override(rule_id: str, data: Any) -> RuleOverride:
    where = f'rules."{rule_id}".'
    if not isinstance(data, dict):
        raise PolicyConfigError(f"{where.rstrip('.')}: expected a table")
    _check_keys(data, {"effect", "enabled", "approvals", "roles"}, where.rstrip("."))
    effect = data.get("effect")
    if effect is not None and effect not in EFFECT_NAMES:
        raise PolicyConfigError(f"{where}effect: must be one of {', '.join(EFFECT_NAMES)}")
    approvals = data.get("approvals")
    if approvals is not None:
        approvals = _int(data, "approvals", where, 1, lo=1)
    return RuleOverride(
        effect=effect,
        enabled=_bool(data, "enabled", where, True),
        approvals=approvals,
        roles=_strs(data, "roles", where, ()),
    )


def _parse(data: Mapping[str, Any]) -> PolicyConfig:
    if not data:
        raise PolicyConfigError("policy file is empty: an empty rule set denies everything")
    _check_keys(data, _TOP_KEYS, "")
    fmt = data.get("format")
    if fmt != CONFIG_FORMAT:
        raise PolicyConfigError(f"format must be {CONFIG_FORMAT!r}")
    if "ruleset" not in data:
        raise PolicyConfigError("no ruleset named: an empty rule set denies everything")
    approval = _table(data, "approval", "")
    _check_keys(approval, {"count", "roles"}, "approval")
    review = _table(data, "review", "")
    _check_keys(review, {"public_keys", "allow_skip", "required"}, "review")
    if review.get("required") is False and review.get("allow_skip") is False:
        raise PolicyConfigError("review: required = false needs allow_skip = true")
    thresholds = _table(data, "thresholds", "")
    defaults = Thresholds()
    _check_keys(thresholds, _THRESHOLD_KEYS, "thresholds")
    packages = _table(data, "packages", "")
    _check_keys(packages, {"security_sensitive", "kernel"}, "packages")
    sources_raw = data.get("sources", [])
    if not isinstance(sources_raw, list) or len(sources_raw) > MAX_LIST:
        raise PolicyConfigError("sources: expected an array of tables ([[sources]])")
    sources = tuple(_parse_source(s, i) for i, s in enumerate(sources_raw))
    names = [s.name for s in sources]
    if len(set(names)) != len(names):
        raise PolicyConfigError("sources: names must be unique")
    registries = _parse_registries(data.get("registries", []))
    rules_raw = _table(data, "rules", "")
    shadow = _table(data, "shadow", "")
    _check_keys(shadow, {"path"}, "shadow")
    return PolicyConfig(
        format=CONFIG_FORMAT,
        ruleset=_str(data, "ruleset", ""),
        name=_str(data, "name", "", "default"),
        approval=ApprovalSettings(
            count=_int(approval, "count", "approval.", 1, lo=1),
            roles=_strs(approval, "roles", "approval.", ("approver",)),
        ),
        review=ReviewSettings(
            public_keys=_strs(
                review, "public_keys", "review.", (), check=lambda k: bool(_HEX_KEY_RE.match(k))
            ),
            allow_skip=_bool(review, "allow_skip", "review.", True),
            required=_bool(review, "required", "review.", True),
        ),
        thresholds=Thresholds(
            evidence_max_age_s=_int(
                thresholds, "evidence_max_age_s", "thresholds.", defaults.evidence_max_age_s, 1
            ),
            clock_skew_s=_int(thresholds, "clock_skew_s", "thresholds.", defaults.clock_skew_s),
            vulndb_max_age_s=_int(
                thresholds, "vulndb_max_age_s", "thresholds.", defaults.vulndb_max_age_s, 1
            ),
            vuln_ignore_urgencies=_strs(
                thresholds, "vuln_ignore_urgencies", "thresholds.", defaults.vuln_ignore_urgencies
            ),
            freeze_after_s=_int(
                thresholds, "freeze_after_s", "thresholds.", defaults.freeze_after_s, 1
            ),
            min_release_age_s=_int(
                thresholds, "min_release_age_s", "thresholds.", defaults.min_release_age_s
            ),
        ),
        packages=PackageLists(
            security_sensitive=_strs(packages, "security_sensitive", "packages.", ()),
            kernel=_strs(packages, "kernel", "packages.", ()),
        ),
        sources=sources,
        rules={str(k): _parse_override(str(k), v) for k, v in sorted(rules_raw.items())},
        shadow=None,
        registries=registries,
        automation=_parse_automation(data),
        health=_parse_health(data),
    )


def registry_url(url: str) -> str:
    """A registry URL as plans and policy compare it (one trailing ``/``)."""
    return url.rstrip("/") + "/"


REGISTRY_ECOSYSTEMS = ("pip", "npm", "image", "cargo", "go")
"""The ecosystems whose sources ``[[registries]]`` approves (apt's are ``[[sources]]``)."""


def _parse_registries(raw: Any) -> tuple[ApprovedRegistry, ...]:
    if not isinstance(raw, list) or len(raw) > MAX_LIST:
        raise PolicyConfigError("registries: expected an array of tables ([[registries]])")
    out: list[ApprovedRegistry] = []
    for i, item in enumerate(raw):
        where = f"registries[{i}]."
        if not isinstance(item, dict):
            raise PolicyConfigError(f"registries[{i}]: expected a table")
        eco = _str(item, "ecosystem", where)
        image = (
            {"unsigned", "root", "require_signature", "trusted_keys"} if eco == "image" else set()
        )
        _check_keys(item, {"name", "ecosystem", "url"} | image, where.rstrip("."))
        if eco not in REGISTRY_ECOSYSTEMS:
            raise PolicyConfigError(
                f"{where}ecosystem: expected one of {', '.join(REGISTRY_ECOSYSTEMS)}"
            )
        url = _str(item, "url", where)
        # A local source is a directory: a cargo local registry, a Go file:// GOPROXY.
        local = eco in ("cargo", "go") and url.startswith("file:///")
        web = url.startswith(("https://", "http://"))
        if not (local or web) or "@" in url or not url.isascii():
            raise PolicyConfigError(f"{where}url: expected an http(s) URL without credentials")
        if eco == "image":
            _check_image_registry(url, where)
        effects = {k: _str(item, k, where, "allow") for k in sorted(image & {"unsigned", "root"})}
        if any(v not in ("allow", "require-approval", "deny") for v in effects.values()):
            raise PolicyConfigError(f"{where}unsigned/root: allow, require-approval or deny")
        entry = ApprovedRegistry(
            _str(item, "name", where), eco, registry_url(url),
            unsigned=effects.get("unsigned", "allow"), root=effects.get("root", "allow"),
        )  # fmt: skip
        out.append(_image_signing(entry, item, where) if eco == "image" else entry)
    if len({r.name for r in out}) != len(out):
        raise PolicyConfigError("registries: names must be unique")
    return tuple(out)


def _image_signing(entry: ApprovedRegistry, item: dict[str, Any], where: str) -> ApprovedRegistry:
    """``require_signature`` (a boolean) and ``trusted_keys`` (absolute .pub paths)."""
    required = item.get("require_signature", False)
    if not isinstance(required, bool):
        raise PolicyConfigError(f"{where}require_signature: expected true or false")
    keys = item.get("trusted_keys", [])
    if not isinstance(keys, list) or len(keys) > MAX_LIST or not all(
        isinstance(k, str) and k.startswith("/") and k.isascii() and "\x00" not in k
        and ".." not in k.split("/") for k in keys
    ):  # fmt: skip
        raise PolicyConfigError(f"{where}trusted_keys: expected absolute paths of public keys")
    return replace(entry, require_signature=required, trusted_keys=tuple(keys))


def _check_image_registry(url: str, where: str) -> None:
    """An image registry is ``https://HOST[:PORT]/[PATH/]``; plain HTTP on loopback only."""
    parts = urlsplit(url)
    if parts.query or parts.fragment or not parts.hostname:
        raise PolicyConfigError(f"{where}url: expected https://HOST[:PORT]/[PATH/]")
    if parts.scheme == "http" and not is_loopback(parts.hostname):
        raise PolicyConfigError(f"{where}url: plain HTTP only for a loopback registry")


def _parse_health(data: Mapping[str, Any]) -> HealthPolicy | None:

    return parse_health(_table(data, "health", "")) if "health" in data else None


def _parse_automation(data: Mapping[str, Any]) -> AutomationPolicy | None:

    if "automation" not in data:
        return None
    return parse_automation(_table(data, "automation", ""))


def parse_policy_config(text: str) -> PolicyConfig:
    """Parse policy TOML text strictly (no shadow file is read: ``shadow`` stays None).

    Rule ids in ``[rules]`` are checked against the rule set by the engine's
    :func:`aegis.policy.engine.check_config`, which
    :func:`aegis.policy.load.load_policy_config` calls.

    Raises:
        PolicyConfigError: not TOML, empty, unknown keys, wrong types.
    """
    data = load_toml(text, what="policy file", max_bytes=MAX_POLICY_BYTES, error=PolicyConfigError)
    return _parse(data)


# --- helpers for the apt analyzer and for rules -------------------------------------------


def approved_sources(config: PolicyConfig) -> tuple[ApprovedSource, ...]:
    """The approved ``[[sources]]`` entries, in file order."""
    return config.sources


def match_source(
    config: PolicyConfig | tuple[ApprovedSource, ...],
    uri: str,
    suite: str,
    component: str,
    signer_fingerprint: str | None,
) -> ApprovedSource | None:
    """The approved source with exactly this identity, or None.

    Identity is (uri without trailing slash, suite, component, signer fingerprint);
    no fingerprint (unsigned, bad signature) never matches.
    """
    fpr = normalize_fingerprint(signer_fingerprint)
    if not fpr:
        return None
    sources = config.sources if isinstance(config, PolicyConfig) else config
    norm = normalize_uri(uri)
    for src in sources:
        if (
            src.uri == norm
            and src.suite == suite
            and src.component == component
            and src.signer_fingerprint == fpr
        ):
            return src
    return None


def freeze_after_s(source: ApprovedSource | None, default_s: int) -> int:
    """The freeze window (seconds) for ``source``; 0 means never frozen.

    An unapproved source (None) gets the policy-wide ``default_s``.
    """
    if source is None or source.freeze_after_s is None:
        return default_s
    return source.freeze_after_s


def source_allows(source: ApprovedSource, package: str) -> bool:
    """Whether ``source`` may supply ``package`` (a distribution source supplies any)."""
    if source.distribution:
        return True
    return name_matches(package, source.packages)


_WILD = frozenset("*?[")


class NameMatcher:
    """Whether a name matches one of a tuple of ``fnmatch`` patterns (case-sensitive).

    Rules test every package of a 500-package plan (policy bench goal: 1 ms), so the
    patterns are split once: plain names are looked up in a set, ``prefix*`` patterns
    (most built-in ones) go to one ``str.startswith`` call, and only the rest to one
    regex alternation. Each part decides exactly as the pattern's ``fnmatch.translate``
    regex would: a plain name matches itself only, ``prefix*`` any text after the prefix.
    """

    __slots__ = ("exact", "prefixes", "regex")

    def __init__(self, patterns: tuple[str, ...]) -> None:
        """Split ``patterns`` into exact names, prefixes and one regex for the rest."""
        exact: set[str] = set()
        prefixes: list[str] = []
        rest: list[str] = []
        for p in patterns:
            if not _WILD.intersection(p):
                exact.add(p)
            elif p.endswith("*") and not _WILD.intersection(p[:-1]):
                prefixes.append(p[:-1])
            else:
                rest.append(p)
        self.exact = frozenset(exact)
        self.prefixes = tuple(prefixes)
        self.regex = (
            re.compile("|".join(f"(?:{fnmatch.translate(p)})" for p in rest)) if rest else None
        )

    def __call__(self, name: str) -> bool:
        """Whether ``name`` matches one of the patterns."""
        return (
            name in self.exact
            or name.startswith(self.prefixes)
            or (self.regex is not None and self.regex.match(name) is not None)
        )

    def flags(self, names: Sequence[str]) -> list[bool]:
        """``[self(n) for n in names]``, with the per-name work done by C calls."""
        regex = self.regex
        hits = map(str.startswith, names, repeat(self.prefixes))
        if self.exact:
            hits = map(operator.or_, hits, map(self.exact.__contains__, names))
        if regex is None:
            return list(hits)
        return [h or regex.match(n) is not None for h, n in zip(hits, names, strict=True)]


@functools.lru_cache(maxsize=256)
def name_matcher(patterns: tuple[str, ...]) -> NameMatcher:
    """:func:`name_matches` with ``patterns`` bound: split and compiled once."""
    return NameMatcher(patterns)


def name_matches(name: str, patterns: tuple[str, ...]) -> bool:
    """Whether ``name`` matches one of the ``fnmatch`` ``patterns`` (case-sensitive)."""
    return name_matcher(patterns)(name)
