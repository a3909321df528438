"""Builders for signing tests and benchmarks: a small plan, a policy binding, keys.

The plan is shaped like the analyzer's output for ``aegis apt install aegis-tool``
(nothing was analyzed); its ``command_preview`` is what
:func:`aegis.ecosystems.apt.argv.derive_argv` derives for it.

Example:
    >>> plan = make_plan()
    >>> approval = make_approval(plan, approver_key)
    >>> ep = make_execution_plan(plan, signer_key, approvals=(approval,))
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

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
    plan_hash,
)
from aegis.sign.approvals import Approval, build_approval
from aegis.sign.execution_plan import ExecutionPlan, PolicyBinding, build_execution_plan

NOW = datetime(2026, 11, 26, 12, 0, 0, tzinfo=UTC)
HOST = Host(machine_id="0123456789abcdef0123456789abcdef", hostname="web1")
POLICY_HASH = "d" * 64


def make_plan(**overrides: Any) -> Plan:
    """A plan installing aegis-tool 1.0 with aegis-base 1.2 (override any field)."""
    intent = Intent(
        tool=Tool.APT,
        operation=Operation.INSTALL,
        targets=("aegis-tool",),
        requested_by="alice",
        requested_at="2026-11-26T11:59:00Z",
    )
    changes = (
        PackageChange("aegis-base", "all", Action.INSTALL, None, "1.2", "aegis-base", "1.2", "r1"),
        PackageChange("aegis-tool", "all", Action.INSTALL, None, "1.0", "aegis-tool", "1.0", "r1"),
    )
    fields: dict[str, Any] = {
        "schema_version": PLAN_SCHEMA,
        "plan_id": "p-0001",
        "created_at": "2026-11-26T11:59:00Z",
        "intent": intent,
        "host": HOST,
        "changes": changes,
        "configure_order": ("aegis-base", "aegis-tool"),
        "command_preview": (),
        "repositories": (),
        "config": ConfigEvidence("a" * 64, "b" * 64, ()),
        "provenance": (),
        "findings": (),
        "vulnerabilities": (),
        "vulndb_date": None,
        "rollback": (),
        "signals": (),
        "package_state_hash": "c" * 64,
        "content_inspected": True,
        "deb_dir": "/var/lib/aegis/aegisd/debs",
    }
    fields.update(overrides)
    if "provenance" not in overrides:  # every package installed has its file
        fields["provenance"] = tuple(
            _provenance(c.name, c.candidate_version or "", c.arch)
            for c in fields["changes"]
            if c.candidate_version
        )
        # ... and its integrity, as the analyzer records it (aegis.ecosystems.apt.delta).
        digests = {(p.package, p.version): p.sha256 for p in fields["provenance"]}
        fields["changes"] = tuple(
            replace(c, integrity=f"sha256:{digests[c.name, c.candidate_version]}")
            if c.candidate_version and not c.integrity
            else c
            for c in fields["changes"]
        )
    plan = Plan(**fields)
    if "command_preview" in overrides:
        return plan

    return replace(plan, command_preview=derive_argv(plan))


def _provenance(name: str, version: str, arch: str) -> Provenance:
    digest = sha256_hex(f"{name}_{version}".encode())
    return Provenance(
        package=name,
        version=version,
        arch=arch,
        uri=f"http://deb.example.invalid/pool/main/{name}_{version}_{arch}.deb",
        filename=f"pool/main/{name}_{version}_{arch}.deb",
        size=2048,
        sha256=digest,
        repository="r1",
        chain=("InRelease:" + "1" * 64, "Packages:" + "2" * 64, f"deb:{digest}"),
        verified=True,
    )


def binding(**overrides: Any) -> PolicyBinding:
    """A require-approval policy binding (one approver, snapshot)."""
    fields: dict[str, Any] = {
        "result_hash": POLICY_HASH,
        "decision": "require-approval",
        "policy_version": "v1-" + "e" * 16,
        "controls": ("approval", "snapshot"),
        "required_approvals": 1,
        "required_roles": (),
        "rule_ids": ("apt.removal",),
    }
    fields.update(overrides)
    return PolicyBinding(**fields)


def make_approval(plan: Plan, key: Any, **overrides: Any) -> Approval:
    """An approval of ``plan`` under :data:`POLICY_HASH` (override any argument)."""
    args: dict[str, Any] = {
        "plan_id": plan.plan_id,
        "plan_hash": plan_hash(plan),
        "policy_hash": POLICY_HASH,
        "approver_id": "bob",
        "role": "approver",
        "reason": "CHG-42 maintenance window",
        "now": NOW,
        "expires_in": timedelta(hours=4),
        "key": key,
    }
    args.update(overrides)
    return build_approval(**args)


def make_execution_plan(plan: Plan, key: Any, **overrides: Any) -> ExecutionPlan:
    """A signed execution plan of ``plan`` (override any argument of the builder)."""
    args: dict[str, Any] = {
        "execution_id": "0f" * 16,
        "request_id": "r-1",
        "plan": plan,
        "policy": binding(),
        "review_hash": "f" * 64,
        "approvals": (),
        "argv": tuple(plan.command_preview),
        "now": NOW,
        "expires_in": timedelta(hours=1),
        "signer_id": "carol",
        "key": key,
    }
    args.update(overrides)
    return build_execution_plan(**args)
