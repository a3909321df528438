"""Records of the operation plan: the analyzer's output that every later stage reads.

A plan is produced by deterministic analysis (``aegis/analyze``) and is the one
document policy, the reviewer, the signer and aegisd reason about. It is written
to ``plans/<plan_id>.json`` and bound into the request by its SHA-256 over
canonical JSON (:func:`plan_hash`). aegisd re-derives it with the same code, so
every field is deterministic given (intent, tool output, config, time).

``reproducible_view`` drops the fields that legitimately differ between two
analyses of the same state (ids and timestamps); ``aegisctl sign`` and aegisd
compare plans through it.

Records of later stages live beside their stage (``aegis/policy/result.py``,
``aegis/review/record.py``, ``aegis/sign/...``) and use the same codec.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, NewType

from aegis.canonical import sha256_hex
from aegis.codec import OMIT_DEFAULT, canonical_of, from_dict, to_dict
from aegis.errors import InputError
from aegis.health.spec import Probe

_OMIT: dict[str, bool] = {OMIT_DEFAULT: True}
"""Fields other ecosystems add: absent from apt documents, which stay byte for byte as before."""

PlanId = NewType("PlanId", str)
RequestId = NewType("RequestId", str)
ExecutionId = NewType("ExecutionId", str)

PLAN_SCHEMA = "aegis.plan/1"


class Tool(StrEnum):
    """Package tool a request is about; ``aegis.ecosystems.for_tool`` dispatches on it."""

    APT = "apt"
    PIP = "pip"
    NPM = "npm"
    IMAGE = "image"
    """Container images (``docker``/``podman pull``); the runtime is in the location."""
    CARGO = "cargo"
    GO = "go"


class Operation(StrEnum):
    """What the intent asks for."""

    INSTALL = "install"
    UPGRADE = "upgrade"
    UPDATE = "update"
    FULL_UPGRADE = "full-upgrade"
    """``apt-get full-upgrade`` (``dist-upgrade``): upgrades that install or remove."""
    REMOVE = "remove"
    PURGE = "purge"
    ROLLBACK = "rollback"
    RECOVER = "recover"


class Action(StrEnum):
    """How one package changes, as classified from apt's simulation."""

    INSTALL = "install"
    UPGRADE = "upgrade"
    DOWNGRADE = "downgrade"
    REINSTALL = "reinstall"
    REMOVE = "remove"
    PURGE = "purge"
    HELD_BACK = "held-back"


@dataclass(frozen=True)
class Intent:
    """What was asked, by whom, when."""

    tool: Tool
    operation: Operation
    targets: tuple[str, ...]
    """Requested targets as given (``name``, ``name=version``, ``name:arch``)."""
    requested_by: str
    requested_at: str
    """UTC ISO-8601 with a ``Z`` suffix, second precision."""
    rollback_of: str | None = None
    """For rollback requests: the snapshot id being restored."""
    location: str | None = field(default=None, metadata=_OMIT)
    """Where a non-apt change lands, ``KIND:/absolute/path`` (pip: ``venv:/srv/app/.venv``);
    None for apt (docs/ecosystems.md)."""
    registry: str | None = field(default=None, metadata=_OMIT)
    """The index or registry URL a non-apt plan resolves against; policy must approve it."""
    files: tuple[ProjectFile, ...] = field(default=(), metadata=_OMIT)
    """npm rollback: the project files to restore (``after`` is the wanted text), signed with
    the intent so that aegisd re-derives from them alone."""
    probes: tuple[Probe, ...] = field(default=(), metadata=_OMIT)
    """Health probes the request names (``--probe``), added to policy's (aegis/health)."""


@dataclass(frozen=True)
class Host:
    """The machine the plan was made for; execution plans bind it."""

    machine_id: str
    hostname: str


@dataclass(frozen=True)
class PackageChange:
    """One package of the delta: the one change record every ecosystem fills.

    The generic core of a change (docs/ecosystems.md "The plan: core and evidence"): its
    name, :attr:`action`, ``from`` (:attr:`current_version`), ``to``
    (:attr:`candidate_version`), its source (:attr:`source_package`, :attr:`repository`)
    and :attr:`integrity`. Everything else an ecosystem knows is evidence, kept apart.
    """

    name: str
    arch: str
    action: Action
    current_version: str | None
    candidate_version: str | None
    source_package: str
    """Source package name (``openssl`` for ``libssl3``); vulnerabilities match on it."""
    source_version: str | None
    repository: str | None
    """Id of the :class:`Repository` that supplies the candidate, if any."""
    essential: bool = False
    integrity: str = field(default="", metadata=_OMIT)
    """The ecosystem's own integrity of the artifact installed, self-describing: apt
    ``sha256:<hex>`` of the .deb, npm the SRI ``sha512-...``, pip ``sha256:<hex>`` of the
    wheel or sdist, images the manifest digest ``sha256:...``, Go the ``h1:`` sum, Cargo
    ``sha256:<cksum>``; "" for removals and when no integrity was verified. Absent from
    plans made before it existed (they stay readable)."""


@dataclass(frozen=True)
class Repository:
    """Evidence about one apt source the delta uses (or, for update, refreshes).

    Identity is (uri, suite, component, signer_fingerprint), never Origin text.
    """

    id: str
    uri: str
    suite: str
    component: str
    source_entry: str
    """The source as a one-line ``deb ...`` entry (normalised)."""
    source_file: str
    signed_by_form: str
    """One of: keyring-path, armored-path, fingerprint, embedded, none."""
    signed_by: str | None
    keyring_trusted_dir: bool
    keyring_root_only: bool
    signature: str
    """Verifier outcome: good, bad, no-pubkey, unsigned, error, missing, expired-key,
    expired-sig, revoked, weak-digest, policy-rejected, backdated (anything but good,
    unsigned and missing is repo.untrusted's deny)."""
    signer_fingerprint: str | None
    date: str | None
    valid_until: str | None
    expired: bool
    frozen: bool
    trusted_yes: bool
    distribution: bool
    """The distribution's own source (may supply any package)."""
    approved: bool
    allowed_packages: tuple[str, ...]
    """Names a non-distribution source may supply; empty means none."""
    origin_text: str | None = None
    """Release Origin, recorded only to show it is not trusted."""
    problems: tuple[str, ...] = ()
    verifier: str | None = None
    """The tool that judged the signature, as this host's apt would (``sqv (...)``)."""
    verifier_policy: str | None = None
    """The algorithm policy file that tool judged under (sqv); None for gpgv."""
    signed_suite: str | None = None
    """``Suite`` of the signed Release (None unless the signature is good)."""
    signed_codename: str | None = None
    """``Codename`` of the signed Release (None unless the signature is good)."""


@dataclass(frozen=True)
class ConfigEvidence:
    """apt and dpkg configuration that could weaken checks."""

    apt_config_hash: str
    dpkg_config_hash: str
    flags: tuple[str, ...]
    """Stable names: allow-insecure, allow-unauthenticated, trusted-yes,
    check-valid-until-false, dpkg-pre-invoke, dpkg-post-invoke, apt-hooks, packaged-hooks
    (hooks installed packages ship unmodified: recorded, no finding)."""
    hooks: tuple[str, ...] = ()


@dataclass(frozen=True)
class Provenance:
    """Where a package to install comes from, per the signed index."""

    package: str
    version: str
    arch: str
    uri: str
    filename: str
    size: int
    sha256: str
    repository: str | None
    chain: tuple[str, ...]
    """InRelease -> Packages -> .deb, each as ``kind:sha256``."""
    verified: bool
    """The downloaded file's hash matched (only when contents were inspected)."""


@dataclass(frozen=True)
class Finding:
    """A content or script finding; names its rule, file and line."""

    rule: str
    package: str
    file: str
    line: int
    severity: str
    """hostile, sensitive or changed."""
    excerpt: str = ""
    """Untrusted text from the package; show only through aegis.text."""


@dataclass(frozen=True)
class Vulnerability:
    """A tracker entry matching a package at its post-change version."""

    package: str
    source_package: str
    version: str
    cve: str
    urgency: str
    fixed_version: str | None
    fixed_by_plan: bool
    """The post-change version is at or past the fix."""
    critical: bool
    """Severity mapping: urgency ``high`` (or higher) is the contract's "critical"."""


@dataclass(frozen=True)
class RollbackRequirement:
    """Whether a replaced version can still be obtained."""

    package: str
    version: str
    obtainable_from: str
    """apt-cache, repository or dpkg-repack."""


@dataclass(frozen=True)
class SnapshotDeb:
    """A rollback target restored from the .deb aegisd kept in its snapshot.

    Used when no configured repository serves the version any more
    (``aegis/ecosystems/apt/snapshot_debs.py``).

    The snapshot manifest aegisd wrote in its root-only rollback cache is this file's
    provenance; the argv names the file by :attr:`path`.
    """

    package: str
    version: str
    arch: str
    snapshot_id: str
    path: str
    """Absolute path of the kept .deb inside ``rollback-cache/<snapshot_id>/``."""
    sha256: str
    """From the manifest; the file had this hash when the analyzer read it."""
    size: int
    obtained_from: str
    """apt-cache or dpkg-repack (how aegisd kept it)."""
    verified: bool
    """Owner, location, hash, size and control fields matched the manifest."""
    problem: str = ""
    """Why it did not verify (empty when verified)."""


@dataclass(frozen=True)
class FirstSeen:
    """When Aegis first saw a candidate version from a source (release-age quarantine).

    apt metadata has no publish date: the analyzer records the first time it saw each
    (package, version, source) in the store, and the Date of the signed Release it saw it
    in; the version was published no later than the earlier of the two.
    """

    package: str
    version: str
    repository: str
    """Id of the :class:`Repository` that offered the version."""
    first_seen: str
    """UTC time Aegis first recorded the version from that source."""
    release_date: str | None
    """Date of the source's signed Release when the version was first seen."""


@dataclass(frozen=True)
class Signal:
    """A named risk signal; ``name`` values are stable API."""

    name: str
    package: str | None = None
    detail: str = ""


@dataclass(frozen=True)
class AnalysisFailure:
    """Why analysis could not produce a delta (policy denies with this reason)."""

    kind: str
    """unknown-package, broken-dependencies, lock, timeout, tool-failed, bad-target."""
    message: str


@dataclass(frozen=True)
class Artifact:
    """One resolved artifact of a non-apt ecosystem (a wheel, an sdist, a tarball).

    Evidence the ecosystem's analyzer read itself; docs/ecosystems.md lists the fields each
    ecosystem fills.
    """

    name: str
    """Normalised name (pip: PEP 503)."""
    version: str
    kind: str
    """wheel, sdist or tarball."""
    url: str
    sha256: str
    """Hex digest the index published and the downloaded bytes matched; "" when unknown."""
    size: int
    requested: bool
    """Named by the intent (not only a dependency)."""
    yanked: bool = False
    pth_files: tuple[str, ...] = ()
    """Top-level ``.pth`` files: code that runs at every interpreter start."""
    native_modules: tuple[str, ...] = ()
    """Compiled extension modules (``.so``, ``.pyd``)."""
    commands: tuple[str, ...] = ()
    """Commands it installs (console scripts, npm ``bin``)."""
    install_scripts: tuple[str, ...] = ()
    """Install-time hooks it runs (npm lifecycle scripts)."""
    integrity: str = field(default="", metadata=_OMIT)
    """npm: the Subresource Integrity string (``sha512-...``) the lockfile pins and the
    downloaded tarball matched; "" when it did not."""
    published: str = field(default="", metadata=_OMIT)
    """When the registry says this version was published (npm: the packument's ``time``;
    pip: PEP 700 ``upload-time``), ``YYYY-MM-DDTHH:MM:SSZ``; "" when it does not say."""


@dataclass(frozen=True)
class ProjectFile:
    """A project file a non-apt change rewrites (npm: ``package.json``, ``package-lock.json``).

    aegisd writes :attr:`after` before the run; :attr:`before` is the rollback snapshot.
    """

    name: str
    before: str | None
    """The file's text before the change (None: it did not exist)."""
    after: str


@dataclass(frozen=True)
class ImageLayer:
    """One layer of an image manifest, as the registry's manifest names it."""

    digest: str
    size: int
    media_type: str


@dataclass(frozen=True)
class ImageEvidence:
    """What ``skopeo inspect`` read about one image (docs/ecosystems.md "Container images")."""

    reference: str
    """The reference as asked, registry explicit (``docker.io/library/nginx:1.25``)."""
    repository: str
    tag: str
    digest: str
    """The digest the plan pins and aegisd pulls (the index's when the tag names one)."""
    media_type: str
    platform: str
    """``os/architecture[/variant]`` of the image this host runs."""
    platform_digest: str
    """The platform manifest's digest (equal to :attr:`digest` without an index)."""
    config_digest: str
    """The image id the store must hold afterwards."""
    layers: tuple[ImageLayer, ...]
    created: str
    labels: dict[str, str]
    user: str
    """The config's ``User`` ("" runs as root)."""
    entrypoint: tuple[str, ...]
    cmd: tuple[str, ...]
    signature: str
    """cosign's ``sha256-<hex>.sig``: verified, invalid, unverified-no-key, absent or unknown."""
    signature_verified: bool
    """True only when a key the registry's policy entry trusts verified it."""
    tag_digest: str = ""
    """The digest the tag names now, when the reference has both (a moved tag is a signal)."""
    signature_key: str = field(default="", metadata={"aegis.omit_default": True})
    """``sha256:`` of the verifying key's DER SubjectPublicKeyInfo (verified only)."""
    signature_detail: str = field(default="", metadata={"aegis.omit_default": True})
    """Why the signature is invalid (or what the registry answered when unknown)."""


@dataclass(frozen=True)
class EcosystemEvidence:
    """The evidence block of a non-apt plan (apt's evidence lives in the generic fields)."""

    ecosystem: str
    location: str
    """The intent's ``KIND:/path``."""
    registry: str
    """The one index or registry URL the resolution used."""
    tool_version: str
    """The package tool that resolved the set (``pip 26.0``)."""
    installed: tuple[str, ...]
    """``name==version`` of everything installed in the location before the change."""
    artifacts: tuple[Artifact, ...]
    files: tuple[ProjectFile, ...] = field(default=(), metadata=_OMIT)
    """Project files the change rewrites (npm)."""
    owner: str = field(default="", metadata=_OMIT)
    """``UID:GID`` owning the location; aegisd runs the tool as that user when it is not root
    (pip: root never executes a user's interpreter)."""
    image: ImageEvidence | None = field(default=None, metadata=_OMIT)
    """Container images: the inspected manifest, config and signature (None otherwise)."""


@dataclass(frozen=True)
class Plan:
    """The operation plan."""

    schema_version: str
    plan_id: str
    created_at: str
    intent: Intent
    host: Host
    changes: tuple[PackageChange, ...]
    configure_order: tuple[str, ...]
    command_preview: tuple[str, ...]
    """The exact argv that would apply this delta; never a string."""
    repositories: tuple[Repository, ...]
    config: ConfigEvidence
    provenance: tuple[Provenance, ...]
    findings: tuple[Finding, ...]
    vulnerabilities: tuple[Vulnerability, ...]
    vulndb_date: str | None
    rollback: tuple[RollbackRequirement, ...]
    signals: tuple[Signal, ...]
    package_state_hash: str
    content_inspected: bool
    failure: AnalysisFailure | None = None
    descriptions: dict[str, str] = field(default_factory=dict)
    """Untrusted package descriptions by name, for the reviewer only."""
    snapshot_debs: tuple[SnapshotDeb, ...] = ()
    """Rollback targets installed from the snapshot's kept .deb (by absolute path)."""
    first_seen: tuple[FirstSeen, ...] = ()
    """When each installed candidate version was first seen (``package.release-age``)."""
    other_sources: tuple[Repository, ...] = ()
    """Evidence for the configured sources this delta does not use (plans other than
    update), so a source apt has no usable lists for is visible with why: problem
    ``no-lists`` (never updated, or its last update was refused) or ``lists-stale``
    (the local repository's Release is not the lists' copy), beside the repository's
    own verdict. Policy judges only :attr:`repositories`; these explain ``target.unknown``."""
    ecosystem: EcosystemEvidence | None = field(default=None, metadata=_OMIT)
    """The evidence of a non-apt ecosystem (None for apt)."""
    deb_dir: str = ""
    """aegisd's root-only directory of verified .debs (``<aegisd_dir>/debs``). aegisd
    fetches each package to install there by its provenance (URI, SHA-256, size), and
    the argv names that file (:func:`aegis.ecosystems.apt.argv.planned_deb_path`)."""


PLAN_CORE = frozenset(
    {
        "schema_version", "plan_id", "created_at", "intent", "host", "changes",
        "command_preview", "provenance", "findings", "vulnerabilities", "vulndb_date",
        "signals", "package_state_hash", "content_inspected", "failure", "descriptions",
    }
)  # fmt: skip
"""The generic core of a :class:`Plan`: what every ecosystem fills and every stage reads."""
APT_EVIDENCE = frozenset(
    {
        "configure_order", "repositories", "config", "rollback", "snapshot_debs", "first_seen",
        "other_sources", "deb_dir",
    }
)  # fmt: skip
"""apt's evidence block. It stays at the top level of the plan, where it always was, so apt
plans and their hashes did not change; other ecosystems leave these fields empty and carry
their evidence in :attr:`Plan.ecosystem` (docs/ecosystems.md "The plan: core and evidence")."""


def plan_to_dict(plan: Plan) -> dict[str, Any]:
    """Return the JSON structure of ``plan``."""
    out: dict[str, Any] = to_dict(plan)
    return out


def plan_from_dict(data: Any) -> Plan:
    """Parse an untrusted plan document strictly.

    Raises:
        InputError: wrong schema version, unknown or missing keys, wrong types.
    """
    if not isinstance(data, dict) or data.get("schema_version") != PLAN_SCHEMA:
        raise InputError(f"not an Aegis plan (schema_version must be {PLAN_SCHEMA!r})")
    return from_dict(Plan, data)


def plan_hash(plan: Plan) -> str:
    """SHA-256 over the canonical JSON of the whole plan."""
    return sha256_hex(canonical_of(plan))


def reproducible_view(plan: Plan) -> dict[str, Any]:
    """The plan without ids and timestamps: equal for two analyses of the same state."""
    data = plan_to_dict(plan)
    data.pop("plan_id")
    data.pop("created_at")
    intent = dict(data["intent"])
    intent.pop("requested_at")
    data["intent"] = intent
    return data
