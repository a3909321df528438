"""Fixtures for the signing layer: a small operation plan, keys, a policy binding."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

import pytest
from nacl.signing import SigningKey

from aegis.devtools import signing
from aegis.ed25519 import public_hex
from aegis.model import Host, Plan
from aegis.sign.approvals import Approval
from aegis.sign.execution_plan import ExecutionPlan, PolicyBinding


def simple_derive_argv(plan: Plan) -> tuple[str, ...]:
    """The real derivation (the apt engineer's), as the unit tests' argv source."""
    from aegis.ecosystems.apt.argv import derive_argv

    return derive_argv(plan)


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
    return signing.make_plan()


ApproveFn = Callable[..., Approval]
BuildFn = Callable[..., ExecutionPlan]


@pytest.fixture
def approve(keys: Keys, plan: Plan) -> ApproveFn:
    """Build an approval of ``plan`` (override any field)."""

    def _approve(**kw: Any) -> Approval:
        key = kw.pop("key", keys.approver)
        return signing.make_approval(plan, key, **kw)

    return _approve


@pytest.fixture
def build(keys: Keys, plan: Plan, approve: ApproveFn) -> BuildFn:
    """Build a signed execution plan of ``plan`` with one approval (override any field)."""

    def _build(**kw: Any) -> ExecutionPlan:
        key = kw.pop("key", keys.signer)
        kw.setdefault("approvals", (approve(),))
        kw.setdefault("plan", plan)
        return signing.make_execution_plan(kw.pop("plan"), key, **kw)

    return _build


@dataclass(frozen=True)
class Helpers:
    """Constants and builders, as a fixture (conftest modules are not importable)."""

    now: datetime = signing.NOW
    host: Host = signing.HOST
    make_plan: Callable[..., Plan] = signing.make_plan
    binding: Callable[..., PolicyBinding] = signing.binding
    derive_argv: Callable[[Plan], tuple[str, ...]] = simple_derive_argv
    replace: Callable[..., Any] = replace


@pytest.fixture(scope="session")
def sx() -> Helpers:
    return Helpers()
