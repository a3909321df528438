"""Fixtures for the signing layer: a small operation plan, keys, a policy binding."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from nacl.signing import SigningKey

from aegis.model import (
    PLAN_SCHEMA,
    Action,
    ConfigEvidence,
    Host,
    Intent,
    Operation,
    PackageChange,
    Plan,
    Tool,
    plan_hash,
)
from aegis.sign.approvals import Approval, build_approval
from aegis.sign.execution_plan import ExecutionPlan, PolicyBinding, build_execution_plan
from aegis.sign.keys import public_hex

NOW = datetime(2026, 11, 26, 12, 0, 0, tzinfo=UTC)
HOST = Host(machine_id="0123456789abcdef0123456789abcdef", hostname="web1")


def make_plan(**overrides: Any) -> Plan:
    """A plan installing aegis-tool 1.0 with aegis-base 1.2."""
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
        "command_preview": (
            "/usr/bin/apt-get",
            "install",
            "--trivial-only",
            "--",
            "aegis-base:all=1.2",
            "aegis-tool:all=1.0",
        ),
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
    }
    fields.update(overrides)
    return Plan(**fields)


def simple_derive_argv(plan: Plan) -> tuple[str, ...]:
    """Stand-in derivation for unit tests: the plan's own command preview."""
    return tuple(plan.command_preview)


@dataclass
class Keys:
    """Distinct keys for each role of a signing test."""

    signer: SigningKey
    approver: SigningKey
    approver2: SigningKey
    stranger: SigningKey

    def pub(self, name: str) -> str:
        return public_hex(getattr(self, name))


@pytest.fixture(scope="session")
def keys() -> Keys:
    return Keys(
        SigningKey.generate(), SigningKey.generate(), SigningKey.generate(), SigningKey.generate()
    )


@pytest.fixture
def plan() -> Plan:
    return make_plan()


def binding(**overrides: Any) -> PolicyBinding:
    fields: dict[str, Any] = {
        "result_hash": "d" * 64,
        "decision": "require-approval",
        "policy_version": "v1-" + "e" * 16,
        "controls": ("approval", "snapshot"),
        "required_approvals": 1,
        "required_roles": (),
        "rule_ids": ("apt.removal",),
    }
    fields.update(overrides)
    return PolicyBinding(**fields)


ApproveFn = Callable[..., Approval]
BuildFn = Callable[..., ExecutionPlan]


@pytest.fixture
def approve(keys: Keys, plan: Plan) -> ApproveFn:
    """Build an approval of ``plan`` (override any field)."""

    def _approve(**kw: Any) -> Approval:
        args: dict[str, Any] = {
            "plan_id": plan.plan_id,
            "plan_hash": plan_hash(plan),
            "policy_hash": "d" * 64,
            "approver_id": "bob",
            "role": "approver",
            "reason": "CHG-42 maintenance window",
            "now": NOW,
            "expires_in": timedelta(hours=4),
            "key": keys.approver,
        }
        args.update(kw)
        return build_approval(**args)

    return _approve


@pytest.fixture
def build(keys: Keys, plan: Plan, approve: ApproveFn) -> BuildFn:
    """Build a signed execution plan of ``plan`` (override any field)."""

    def _build(**kw: Any) -> ExecutionPlan:
        args: dict[str, Any] = {
            "execution_id": "0f" * 16,
            "request_id": "r-1",
            "plan": plan,
            "policy": binding(),
            "review_hash": "f" * 64,
            "approvals": (approve(),),
            "argv": simple_derive_argv(plan),
            "now": NOW,
            "expires_in": timedelta(hours=1),
            "signer_id": "carol",
            "key": keys.signer,
        }
        args.update(kw)
        return build_execution_plan(**args)

    return _build


@dataclass(frozen=True)
class Helpers:
    """Constants and builders, as a fixture (conftest modules are not importable)."""

    now: datetime = NOW
    host: Host = HOST
    make_plan: Callable[..., Plan] = make_plan
    binding: Callable[..., PolicyBinding] = binding
    derive_argv: Callable[[Plan], tuple[str, ...]] = simple_derive_argv
    replace: Callable[..., Any] = replace


@pytest.fixture(scope="session")
def sx() -> Helpers:
    return Helpers()
