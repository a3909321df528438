"""The host-local automation key: where it lives, and aegisd's check of what it signed.

The key pair is made by the installer in ``<etc>/keys/automation/`` (directory 0700,
``automation.key`` 0600, both root's): only root (the unattended run) can sign with it,
and it is not a signer key (``keys/signers/``), so aegisd never takes it for one.

aegisd trusts ``keys/automation/*.pub`` for one thing only: after all its ordinary
checks (signature, host, time, replay, re-derivation, policy), a plan whose signature
verifies with an automation key must also be inside the automation scope
(aegis/unattended/scope.py), judged on aegisd's own re-derivation and its own policy
evaluation, not on anything the document claims. Anything else it signed is refused as
``refused:automation-scope`` and audited.

Example:
    >>> automation_public_keys(cfg)
    ('3b6a...',)
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from aegis.errors import AegisError
from aegis.policy.load import load_policy_config
from aegis.sign.files import trusted_keys
from aegis.sign.refusals import Refusal, RefusalCode
from aegis.unattended.scope import SIGNER_ID, out_of_scope

if TYPE_CHECKING:
    from aegis.config import Config
    from aegis.model import Plan
    from aegis.sign.execution_plan import ExecutionPlan, PolicyBinding

KEY_NAME = "automation"
SHOWN = 5
"""Reasons named in one refusal (the rest are counted)."""


def automation_dir(cfg: Config) -> Path:
    """``<etc>/keys/automation``: the automation key pair (root-only)."""
    return cfg.keys_dir / "automation"


def automation_key_path(cfg: Config) -> Path:
    """The automation secret key."""
    return automation_dir(cfg) / f"{KEY_NAME}.key"


def automation_public_keys(cfg: Config) -> tuple[str, ...]:
    """The automation public keys aegisd accepts, within the scope only.

    Raises:
        InputError: a malformed ``.pub`` file there.
    """
    return tuple(sorted(trusted_keys(automation_dir(cfg))))


def check_automation_scope(
    cfg: Config, ep: ExecutionPlan, derived: Plan, binding: PolicyBinding
) -> Refusal | None:
    """Return aegisd's step for an automation-signed plan: its own derivation, its own policy."""
    try:
        policy = load_policy_config(cfg.policy_path)
    except AegisError as e:
        return Refusal(RefusalCode.AUTOMATION_SCOPE, f"no usable policy: {e.message}")
    reasons = out_of_scope(derived, binding.decision, policy)
    if ep.signer_id != SIGNER_ID:
        reasons.insert(0, f"signer id {ep.signer_id!r} is not {SIGNER_ID!r}")
    if ep.approvals:
        reasons.insert(0, "an automation plan carries no approvals")
    if reasons:
        shown = "; ".join(reasons[:SHOWN]) + (
            f" (+{len(reasons) - SHOWN} more)" if len(reasons) > SHOWN else ""
        )
        return Refusal(RefusalCode.AUTOMATION_SCOPE, f"outside the automation scope: {shown}")
    return None
