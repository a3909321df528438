"""The fleet edge: one host's cohort, approving a cohort, reading cohort approvals.

- :func:`host_cohort` (``aegis fleet cohort``; the Ansible module ``aegis_plan`` calls it
  on every host): the cohort document and hash of a request waiting in ``policy``,
  computed from the plan and decision recorded on this host, and written to
  ``<state>/cohorts/<hash>.cohort.json`` so the approver can read what they approve.
- :func:`approve_cohort` (``aegisctl approve --cohort HASH``): reads the cohort document,
  checks its bytes hash to HASH (a document edited after planning names another cohort),
  refuses a denied one, signs the hash once with an approver key and writes
  ``<state>/cohort-approvals/<hash>.<approver>.cohort-approval.json``.
- :func:`read_cohort_approvals`: cohort approval files for ``aegisctl sign
  --cohort-approval``, parsed strictly.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aegis.canonical import loads_strict
from aegis.config import group_gid, in_group, join_group_hint
from aegis.ed25519 import public_hex
from aegis.errors import EnvironmentFailure, InputError, PolicyDenied, TrustError
from aegis.fleet.cohort import COHORT_SCHEMA, cohort_bytes, cohort_document, document_hash
from aegis.safe_read import read_capped
from aegis.sign.approvals import approver_grants
from aegis.sign.cohort_approval import (
    MAX_COHORT_APPROVAL_BYTES,
    CohortApproval,
    build_cohort_approval,
    check_cohort_hash,
    cohort_approval_bytes,
    parse_cohort_approval,
)
from aegis.sign.context import load_context
from aegis.sign.execution_plan import policy_binding
from aegis.sign.files import APPROVERS_DIR, trusted_approver_grants
from aegis.sign.keys import load_signing_key
from aegis.sign.service import require_key_role
from aegis.workflow.files import write_atomic

if TYPE_CHECKING:
    from aegis.config import Config

MAX_COHORT_BYTES = 4 * 1024 * 1024


def cohorts_dir(cfg: Config) -> Path:
    """Where cohort documents are written (``<state>/cohorts``)."""
    return cfg.state_dir / "cohorts"


def cohort_approvals_dir(cfg: Config) -> Path:
    """Where cohort approvals are written (``<state>/cohort-approvals``)."""
    return cfg.state_dir / "cohort-approvals"


@dataclass(frozen=True)
class HostCohort:
    """One host's request, decision and cohort."""

    request_id: str
    plan_id: str
    decision: str
    cohort_hash: str | None
    """None for a denied request: a denied plan is in no cohort and never approved."""
    document: dict[str, Any] | None
    path: Path | None


def host_cohort(cfg: Config, target: str) -> HostCohort:
    """The cohort of a request (id or plan file) waiting in ``policy`` on this host.

    Raises:
        InputError, StateError, TrustError: as :func:`aegis.sign.context.load_context`.
    """
    as_path = Path(target)
    try:
        if as_path.exists() or "/" in target or target.endswith(".json"):
            ctx = load_context(cfg, plan_path=as_path)
        else:
            ctx = load_context(cfg, request_id=target)
    except PolicyDenied:
        return HostCohort(target, "", "deny", None, None, None)
    doc = cohort_document(ctx.plan, policy_binding(ctx.policy, ctx.policy_hash))
    digest = document_hash(doc)
    path = cohorts_dir(cfg) / f"{digest}.cohort.json"
    write_atomic(path, cohort_bytes(doc), host_install=cfg.home is None)
    return HostCohort(
        ctx.request.id, ctx.plan.plan_id, ctx.policy.decision.value, digest, doc, path
    )


def read_cohort_document(path: Path, expected_hash: str) -> dict[str, Any]:
    """A cohort document whose canonical bytes hash to ``expected_hash``.

    Raises:
        InputError: unreadable, malformed, or another cohort than ``expected_hash``.
    """
    doc = loads_strict(
        read_capped(path, MAX_COHORT_BYTES, "cohort document"), max_bytes=MAX_COHORT_BYTES
    )
    if not isinstance(doc, dict) or doc.get("schema_version") != COHORT_SCHEMA:
        raise InputError(f"{path} is not a cohort document ({COHORT_SCHEMA})")
    if document_hash(doc) != expected_hash:
        raise InputError(
            f"{path} is cohort {document_hash(doc)[:16]}..., not {expected_hash[:16]}...",
            hint="the document changed after planning, or it is another cohort's",
        )
    return doc


@dataclass(frozen=True)
class CohortApproved:
    """What :func:`approve_cohort` wrote."""

    path: Path
    approval: CohortApproval
    document: dict[str, Any]


def approve_cohort(
    cfg: Config,
    cohort_hash: str,
    *,
    cohort_file: Path | None,
    reason: str,
    key_path: Path,
    approver_id: str,
    role: str,
    expires_in: timedelta,
    now: datetime,
    passphrase: bytes | None,
) -> CohortApproved:
    """Sign one approval of ``cohort_hash`` after reading the document it names.

    Raises:
        InputError: malformed hash, reason, id, duration, or the document is not the cohort's.
        TrustError: the key is not an approver key or cannot be unwrapped.
        PolicyDenied: the cohort's decision is deny.
    """
    check_cohort_hash(cohort_hash)
    if cohort_file is None:
        _require_member(cfg)
    path = cohort_file or cohorts_dir(cfg) / f"{cohort_hash}.cohort.json"
    doc = read_cohort_document(path, cohort_hash)
    decision = doc.get("decision")
    if not isinstance(decision, dict) or decision.get("decision") == "deny":
        raise PolicyDenied("the cohort's decision is deny; a denied change is never approved")
    require_key_role(key_path, "approver", "approvals need an approver key")
    key = load_signing_key(key_path, passphrase)
    approval = build_cohort_approval(
        cohort_hash=cohort_hash,
        approver_id=approver_id,
        role=role,
        reason=reason,
        now=now,
        expires_in=expires_in,
        key=key,
    )
    _refuse_untrusted_here(cfg, key, approval.role)
    out = cohort_approvals_dir(cfg) / f"{cohort_hash}.{approver_id}.cohort-approval.json"
    write_atomic(out, cohort_approval_bytes(approval), host_install=cfg.home is None)
    return CohortApproved(out, approval, doc)


def _require_member(cfg: Config) -> None:
    """On a host, only root and group aegis read the cohorts under the state directory.

    Raises:
        EnvironmentFailure: the caller is outside the group (exit 7, with the join hint).
    """
    if cfg.home is None and not in_group(group_gid()):
        raise EnvironmentFailure(
            f"cannot read the cohorts in {cohorts_dir(cfg)}", hint=join_group_hint()
        )


def _refuse_untrusted_here(cfg: Config, key: Any, role: str) -> None:
    """Refuse a key this host does not trust as an approver in ``role``, before writing.

    An approval counts only by a trusted key (checked again by ``aegisctl sign`` and by
    aegisd), so one made here with any other key (an agent's own, say) would be a file
    that never counts. A host that trusts no approver at all (a control node that only
    plans and collects approvals) has nothing to check against: the hosts check.

    Raises:
        TrustError: this host trusts approvers, but not this key in ``role``.
    """
    where = cfg.keys_dir / APPROVERS_DIR
    grants = approver_grants(trusted_approver_grants(where))
    if not grants:
        return
    pub = public_hex(key)
    if role not in grants.get(pub, frozenset()):
        raise TrustError(
            f"key {pub[:16]}... is not trusted here as an approver in role {role!r} "
            f"({where}); an approval by it would never count, so none was written",
            hint="approve with your own trusted approver key, or ask root to add its .pub "
            f"to {where}" + ("" if role == "approver" else f"/{role}"),
        )


def read_cohort_approvals(paths: Iterable[Path]) -> list[CohortApproval]:
    """Parse cohort approval files strictly.

    Raises:
        InputError: a file is unreadable or malformed.
    """
    return [
        parse_cohort_approval(read_capped(p, MAX_COHORT_APPROVAL_BYTES, "cohort approval"))
        for p in paths
    ]
