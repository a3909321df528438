"""Signing figures (issue 5): execution-plan verification against the bare crypto.

- ``verify_per_s``: execution plans of a 50-package plan per second through
  ``parse_execution_plan`` (size cap, strict JSON, duplicate keys, strict codec,
  canonical-form and self-consistency checks, plan hash) plus ``check_signature``,
  ``check_time_window`` and ``check_approvals`` (two signed approvals).
- ``verify_over_raw``: that rate over a raw loop doing only ``json.loads`` and one
  Ed25519 verification of the same bytes: the price of strictness (a ratio < 1; issue
  12 goal >= 0.25). The two loops alternate in blocks; the figure is the median of the
  blocks' ratios, the rates are each loop's best block.
- ``sign_per_s``: ``build_execution_plan`` (hashing, consistency checks, signing).
- ``plan_bytes``: size of the execution plan file, for the aegisd frame cap.
"""

from __future__ import annotations

import json
import time
from dataclasses import replace
from datetime import timedelta
from typing import Any

ROUNDS = 200


def _plan() -> Any:
    from aegis.devtools import signing
    from aegis.model import Action, PackageChange

    changes = tuple(
        PackageChange(
            f"pkg{i:03d}", "amd64", Action.UPGRADE, "1.0-1", "1.1-1", f"src{i:03d}", "1.1-1", "r1"
        )
        for i in range(50)
    )
    plan = signing.make_plan(changes=changes, configure_order=tuple(c.name for c in changes))
    from aegis.ecosystems.apt.argv import derive_argv

    return replace(plan, command_preview=derive_argv(plan))


def _rate(fn: Any, rounds: int = ROUNDS) -> float:
    fn()
    t0 = time.perf_counter()
    for _ in range(rounds):
        fn()
    return rounds / (time.perf_counter() - t0)


def _paired_rates(a: Any, b: Any, blocks: int = 15, per_block: int = 20) -> tuple[float, ...]:
    """Rates of ``a`` and ``b`` (best block each) and the median of the blocks' ratios.

    The two loops alternate in short blocks, so a burst of load from other processes
    hits both alike instead of one whole loop.
    """
    a()
    b()
    times_a, times_b = [], []
    for _ in range(blocks):
        t0 = time.perf_counter()
        for _ in range(per_block):
            a()
        times_a.append((time.perf_counter() - t0) / per_block)
        t0 = time.perf_counter()
        for _ in range(per_block):
            b()
        times_b.append((time.perf_counter() - t0) / per_block)
    ratios = sorted(tb / ta for ta, tb in zip(times_a, times_b, strict=True))
    return 1 / min(times_a), 1 / min(times_b), ratios[len(ratios) // 2]


def run() -> dict[str, Any]:
    """Measure and return the figures."""
    from nacl.signing import SigningKey, VerifyKey

    from aegis.devtools import signing
    from aegis.ed25519 import public_hex
    from aegis.sign import checks as xc
    from aegis.sign import execution_plan as xp

    plan = _plan()
    signer, a1, a2 = SigningKey.generate(), SigningKey.generate(), SigningKey.generate()
    approvals = (
        signing.make_approval(plan, a1),
        signing.make_approval(plan, a2, approver_id="dave"),  # carol is the signer
    )
    policy = signing.binding(required_approvals=2)

    def build() -> Any:
        return signing.make_execution_plan(
            plan, signer, approvals=approvals, policy=policy, argv=plan.command_preview
        )

    ep = build()
    data = xp.execution_plan_bytes(ep)
    trusted = {public_hex(signer)}
    approvers = {public_hex(a1), public_hex(a2)}
    now = signing.NOW + timedelta(minutes=1)

    def verify() -> None:
        parsed = xp.parse_execution_plan(data)
        assert xc.check_signature(parsed, trusted) is None
        assert xc.check_time_window(parsed, now) is None
        assert xc.check_approvals(parsed, approvers, now) is None

    vk = VerifyKey(bytes.fromhex(public_hex(signer)))
    sig = bytes.fromhex(ep.signature_hex)
    body = xp.execution_plan_body(ep)
    from aegis.canonical import canonical_bytes

    body_bytes = canonical_bytes(body)

    def raw() -> None:
        json.loads(data)
        vk.verify(body_bytes, sig)

    verify_rate, raw_rate, ratio = _paired_rates(verify, raw)
    return {
        "verify_per_s": round(verify_rate, 1),
        "raw_per_s": round(raw_rate, 1),
        "verify_over_raw": round(ratio, 3),
        "sign_per_s": round(_rate(build), 1),
        "plan_bytes": len(data),
    }
