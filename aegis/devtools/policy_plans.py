"""Plan and policy builders for policy tests, the demo and the policy benchmark.

Builds :class:`aegis.model.Plan` records directly (no apt needed): a clean upgrade
from an approved distribution source, which the default rule set allows with a
snapshot, and helpers to turn it into the plan each rule exists to catch.
Deterministic: fixed ids, hashes and times.

Example:
    >>> plan = clean_plan(packages=500)
    >>> config = parse_policy_config(policy_toml())  # from aegis.policy.config
"""

from __future__ import annotations

from dataclasses import replace

from aegis.canonical import sha256_hex
from aegis.model import (
    PLAN_SCHEMA,
    Action,
    ConfigEvidence,
    Host,
    Intent,
    Operation,
    PackageChange,
    Plan,
    Provenance,
    Repository,
    Tool,
)
from aegis.review.record import skipped_review as make

DIST_FPR = "A1" * 20
VENDOR_FPR = "B2" * 20
DIST_URI = "http://deb.example.test/debian"
VENDOR_URI = "https://vendor.example.test/apt"
CREATED = "2026-01-01T00:00:00Z"
NOW = "2026-01-01T00:10:00Z"
"""Evaluation time matching :data:`CREATED` (ten minutes later)."""


def policy_toml(
    *,
    extra: str = "",
    vendor_packages: tuple[str, ...] = ("vendor-*",),
    review_required: bool | None = False,
) -> str:
    """A policy file approving the two fixture sources, plus ``extra`` TOML appended.

    ``review_required`` False (the default here) lets a request without a review record
    count as skipped by configuration, so rule tests see the rules' own decision; None
    leaves the ``[review]`` table out for ``extra`` to provide.
    """
    pkgs = ", ".join(f'"{p}"' for p in vendor_packages)
    review = (
        ""
        if review_required is None
        else (f"\n[review]\nrequired = {'true' if review_required else 'false'}\n")
    )
    return f"""format = "aegis.policy-config/1"
ruleset = "aegis.rules/1"
name = "test"

[[sources]]
name = "dist"
uri = "{DIST_URI}/"
suite = "stable"
component = "main"
signer_fingerprint = "{DIST_FPR}"
distribution = true

[[sources]]
name = "vendor"
uri = "{VENDOR_URI}"
suite = "stable"
component = "main"
signer_fingerprint = "{VENDOR_FPR}"
packages = [{pkgs}]
{review}{extra}"""


def repository(rid: str = "dist", **changes: object) -> Repository:
    """A well-signed repository record; ``rid`` ``dist`` or ``vendor`` picks the identity."""
    vendor = rid == "vendor"
    base = Repository(
        id=rid,
        uri=VENDOR_URI if vendor else DIST_URI,
        suite="stable",
        component="main",
        source_entry=f"deb [signed-by=/usr/share/keyrings/{rid}.gpg] "
        f"{VENDOR_URI if vendor else DIST_URI} stable main",
        source_file=f"/etc/apt/sources.list.d/{rid}.sources",
        signed_by_form="keyring-path",
        signed_by=f"/usr/share/keyrings/{rid}.gpg",
        keyring_trusted_dir=True,
        keyring_root_only=True,
        signature="good",
        signer_fingerprint=VENDOR_FPR if vendor else DIST_FPR,
        date="2026-01-01T00:00:00Z",
        valid_until="2026-01-08T00:00:00Z",
        expired=False,
        frozen=False,
        trusted_yes=False,
        distribution=not vendor,
        approved=True,
        allowed_packages=("vendor-*",) if vendor else (),
    )
    return replace(base, **changes)  # type: ignore[arg-type]


def change(
    name: str,
    *,
    action: Action = Action.UPGRADE,
    current: str | None = "1.0-1",
    candidate: str | None = "1.2-1",
    repo: str | None = "dist",
    source: str | None = None,
    essential: bool = False,
) -> PackageChange:
    """One package change."""
    return PackageChange(
        name=name,
        arch="amd64",
        action=action,
        current_version=current,
        candidate_version=candidate,
        source_package=source or name,
        source_version=candidate,
        repository=repo,
        essential=essential,
    )


def provenance_for(c: PackageChange) -> Provenance:
    """Index provenance matching change ``c``."""
    version = c.candidate_version or ""
    digest = sha256_hex(f"{c.name}_{version}_{c.arch}".encode())
    return Provenance(
        package=c.name,
        version=version,
        arch=c.arch,
        uri=f"{DIST_URI}/pool/main/{c.name}_{version}_{c.arch}.deb",
        filename=f"pool/main/{c.name}_{version}_{c.arch}.deb",
        size=1024,
        sha256=digest,
        repository=c.repository,
        chain=("InRelease:" + "1" * 64, "Packages:" + "2" * 64, "deb:" + digest),
        verified=False,
    )


def argv_for(changes: tuple[PackageChange, ...]) -> tuple[str, ...]:
    """The command preview shape of docs/design.md "Trust" (trivial-only, exact versions)."""
    return (
        "/usr/bin/apt-get",
        "install",
        "--trivial-only",
        "--",
        *tuple(f"{c.name}={c.candidate_version}" for c in changes if c.candidate_version),
    )


def clean_plan(
    *,
    packages: int = 1,
    operation: Operation = Operation.UPGRADE,
    changes: tuple[PackageChange, ...] | None = None,
    **fields: object,
) -> Plan:
    """A clean plan: ``packages`` upgrades from the approved distribution source.

    ``changes`` replaces the generated delta (provenance and argv follow it);
    other keyword arguments replace plan fields.
    """
    delta = (
        changes if changes is not None else tuple(change(f"pkg{i:04d}") for i in range(packages))
    )
    targets = tuple(c.name for c in delta) if operation is Operation.INSTALL else ()
    plan = Plan(
        schema_version=PLAN_SCHEMA,
        plan_id="p-0000000000000001",
        created_at=CREATED,
        intent=Intent(
            tool=Tool.APT,
            operation=operation,
            targets=targets,
            requested_by="tester",
            requested_at=CREATED,
        ),
        host=Host(machine_id="0" * 32, hostname="test-host"),
        changes=delta,
        configure_order=tuple(c.name for c in delta),
        command_preview=argv_for(delta),
        repositories=(repository("dist"), repository("vendor")),
        config=ConfigEvidence(apt_config_hash="3" * 64, dpkg_config_hash="4" * 64, flags=()),
        provenance=tuple(
            provenance_for(c)
            for c in delta
            if c.action in (Action.INSTALL, Action.UPGRADE, Action.DOWNGRADE, Action.REINSTALL)
        ),
        findings=(),
        vulnerabilities=(),
        vulndb_date="2026-01-01T00:00:00Z",
        rollback=(),
        signals=(),
        package_state_hash="5" * 64,
        content_inspected=False,
    )
    return replace(plan, **fields)  # type: ignore[arg-type]


def skipped_review(plan: Plan | None = None) -> object:
    """The unsigned local skip record (``aegis review --no-review``) of ``plan``."""
    return make(plan or clean_plan(), "skipped by configuration (--no-review)", CREATED)
