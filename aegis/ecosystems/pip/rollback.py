"""Rolling back a pip change: the applied plan says what the venv had before.

A pip plan records the venv's installed set before the change (``plan.ecosystem.installed``)
and aegisd re-derived it before running, so the applied plan itself is the snapshot:

- a change that only added distributions is undone by removing them (operation ``remove``,
  planned here without running pip: ``pip uninstall -y -- NAME ...``);
- a change that only replaced versions is undone by installing the previous versions
  (operation ``rollback``: an ordinary pip plan of ``NAME==OLD`` targets, hash-pinned like
  any other, whose downgrades need approval).

A change that did both is refused here (not implemented: it needs two requests).
Either request walks the whole chain again.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

from aegis.analyze.stamps import format_time, new_plan_id, this_host
from aegis.canonical import canonical_hash
from aegis.ecosystems.pip.names import check_targets, is_target, location_dir, normalize
from aegis.ecosystems.pip.resolve import location_owner
from aegis.ecosystems.pip.state import installed
from aegis.errors import StateError
from aegis.model import (
    PLAN_SCHEMA,
    Action,
    AnalysisFailure,
    ConfigEvidence,
    EcosystemEvidence,
    Intent,
    Operation,
    PackageChange,
    Plan,
    Tool,
)


def rollback_intent(applied: Plan, request_id: str, user: str, now_text: str) -> Intent:
    """The intent that undoes ``applied`` (a pip plan aegisd ran).

    Raises:
        StateError: nothing to undo, or a change that both added and replaced.
    """
    changes = applied.changes
    added = sorted(c.name for c in changes if c.action is Action.INSTALL)
    swaps = (Action.UPGRADE, Action.DOWNGRADE)
    replaced = sorted(
        f"{c.name}=={c.current_version}" for c in changes if c.action in swaps and c.current_version
    )
    if not added and not replaced:
        raise StateError(f"request {request_id} changed nothing; nothing to roll back")
    if added and replaced:
        raise StateError(
            f"request {request_id} both added and replaced distributions; rolling that back "
            "in one request is not implemented",
            hint=f"plan 'aegis pip install {' '.join(replaced)} --venv DIR --plan', then the "
            "removal of the added ones with the operator",
        )
    if added and (applied.intent.location or "").startswith("target:/"):
        raise StateError(
            f"request {request_id} added distributions to a --target directory; pip cannot "
            "uninstall from one, and removing them is not implemented",
            hint="remove their directories and dist-info from the target by hand",
        )
    op, targets = (Operation.REMOVE, added) if added else (Operation.ROLLBACK, replaced)
    return Intent(
        Tool.PIP,
        op,
        tuple(targets),
        user,
        now_text,
        rollback_of=request_id,
        location=applied.intent.location,
        registry=applied.intent.registry,
    )


def plan_removal(cfg: Any, intent: Intent, now: datetime) -> Plan:
    """Plan removing ``intent.targets`` from the venv (read-only; pip does not run)."""
    check_targets(intent.targets)
    venv = Path(location_dir(intent.location))
    have = installed(venv, target=is_target(intent.location))
    owner = location_owner(intent.location)
    state_hash = canonical_hash(
        {"ecosystem": "pip", "location": intent.location, "installed": sorted(have.items()),
         "owner": owner}
    )  # fmt: skip
    names = sorted(normalize(t) for t in intent.targets)
    missing = [n for n in names if n not in have]
    failure = None
    if missing:
        failure = AnalysisFailure("unknown-package", f"not installed: {', '.join(missing)}")
    changes = tuple(
        PackageChange(n, "", Action.REMOVE, have[n], None, n, have[n], None)
        for n in names
        if n in have
    )
    plan = Plan(
        schema_version=PLAN_SCHEMA,
        plan_id=new_plan_id(),
        created_at=format_time(now),
        intent=intent,
        host=this_host(cfg),
        changes=changes if failure is None else (),
        configure_order=(),
        command_preview=(),
        repositories=(),
        config=ConfigEvidence("", "", ()),
        provenance=(),
        findings=(),
        vulnerabilities=(),
        vulndb_date=None,
        rollback=(),
        signals=(),
        package_state_hash=state_hash,
        content_inspected=True,
        failure=failure,
        ecosystem=EcosystemEvidence(
            "pip",
            intent.location or "",
            intent.registry or "",
            "",
            tuple(f"{n}=={v}" for n, v in sorted(have.items())),
            (),
            owner=owner,
        ),
    )
    return plan
