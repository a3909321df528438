"""A minimal, valid operation plan for workflow tests, benchmarks and the early demo.

It is not an analysis of anything: it only has the shape of a plan so the
lifecycle (request store, history, artifacts) can be exercised without apt.
Real plans come from ``aegis apt ... --plan``.

Example:
    >>> plan = sample_plan("p-1", targets=("aegis-base",))
"""

from __future__ import annotations

from dataclasses import replace

from aegis.canonical import sha256_hex
from aegis.ecosystems.apt.argv import derive_argv
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
    Tool,
)

SAMPLE_DEB_DIR = "/var/lib/aegis/aegisd/debs"
"""The ``deb_dir`` of sample plans (the production layout's; nothing is fetched there)."""


def sample_plan(
    plan_id: str,
    *,
    targets: tuple[str, ...] = ("aegis-base",),
    requested_by: str = "tester",
    created_at: str = "2026-01-01T00:00:00Z",
    descriptions: dict[str, str] | None = None,
) -> Plan:
    """A plan installing ``targets`` at version 1.0 (shape only; nothing was analyzed).

    Each package has a made-up provenance, so the argv names its file in
    :data:`SAMPLE_DEB_DIR` as a real plan's does.
    """
    changes = tuple(
        PackageChange(
            name=name,
            arch="all",
            action=Action.INSTALL,
            current_version=None,
            candidate_version="1.0",
            source_package=name,
            source_version="1.0",
            repository="test",
        )
        for name in targets
    )
    provenance = tuple(
        Provenance(
            package=c.name,
            version="1.0",
            arch="all",
            uri=f"file:/srv/aegis-sample/pool/main/{c.name}_1.0_all.deb",
            filename=f"pool/main/{c.name}_1.0_all.deb",
            size=1024,
            sha256=sha256_hex(c.name.encode()),
            repository="test",
            chain=(f"deb:{sha256_hex(c.name.encode())}",),
            verified=False,
        )
        for c in changes
    )
    plan = Plan(
        schema_version=PLAN_SCHEMA,
        plan_id=plan_id,
        created_at=created_at,
        intent=Intent(
            tool=Tool.APT,
            operation=Operation.INSTALL,
            targets=targets,
            requested_by=requested_by,
            requested_at=created_at,
        ),
        host=Host(machine_id="0" * 32, hostname="test-host"),
        changes=changes,
        configure_order=tuple(c.name for c in changes),
        command_preview=(),
        repositories=(),
        config=ConfigEvidence(apt_config_hash="0" * 64, dpkg_config_hash="0" * 64, flags=()),
        provenance=provenance,
        findings=(),
        vulnerabilities=(),
        vulndb_date=None,
        rollback=(),
        signals=(),
        package_state_hash="0" * 64,
        content_inspected=False,
        descriptions=descriptions or {},
        deb_dir=SAMPLE_DEB_DIR,
    )

    return replace(plan, command_preview=derive_argv(plan))
