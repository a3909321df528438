"""New requests aegisctl creates from aegisd's records: ``recover`` and ``rollback``.

Both are ordinary change requests: their plans come from the same analyzer and walk
the same chain (review, policy, approval, signing, aegisd). ``rollback`` reads the
dpkg-state snapshot an applied request recorded (``executor-result`` names it) and
asks for every replaced package at its recorded version, with
``rollback_of=<snapshot id>``; policy requires approval for its downgrades.

Example:
    >>> planned, snap = plan_rollback(cfg, "r-1a2b")
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from aegis.canonical import loads_strict
from aegis.config import Config
from aegis.ecosystems import for_tool
from aegis.ecosystems.cargo.rollback import rollback_intent as cargo_rollback_intent
from aegis.ecosystems.go.rollback import rollback_intent as go_rollback_intent
from aegis.ecosystems.npm.rollback import rollback_intent as npm_rollback_intent
from aegis.ecosystems.pip.rollback import rollback_intent as pip_rollback_intent
from aegis.errors import StateError
from aegis.execute.snapshots import load_snapshot
from aegis.model import Intent, Operation, Tool, plan_from_dict
from aegis.users import current_user
from aegis.workflow import access


def _now_text() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _submit(cfg: Config, intent: Intent) -> Any:

    plan = for_tool(intent.tool).plan(cfg, intent, datetime.now(UTC))
    return access.submit_plan(cfg, plan, intent.requested_by)


def plan_recover(cfg: Config) -> Any:
    """Plan ``dpkg --configure -a`` as a new request."""
    intent = Intent(Tool.APT, Operation.RECOVER, (), current_user(), _now_text())
    return _submit(cfg, intent)


def _rollback_other_ecosystem(cfg: Config, request_id: str) -> tuple[Any, str] | None:
    """The rollback of a pip or npm request, from its applied plan; None for apt.

    apt restores aegisd's snapshot instead (docs/ecosystems.md).
    """
    found = access.latest_artifact(cfg, request_id, "plan")
    if found is None:
        return None
    plan = plan_from_dict(loads_strict(found[1]))
    if plan.intent.tool is Tool.PIP:
        rollback_intent = pip_rollback_intent
    elif plan.intent.tool is Tool.NPM:
        rollback_intent = npm_rollback_intent
    elif plan.intent.tool is Tool.IMAGE:
        raise StateError(
            f"request {request_id} pulled an image by digest: nothing was replaced; the "
            "images the store held before are its executor result's previous_images"
        )
    elif plan.intent.tool is Tool.CARGO:
        rollback_intent = cargo_rollback_intent
    elif plan.intent.tool is Tool.GO:
        rollback_intent = go_rollback_intent
    else:
        return None
    intent = rollback_intent(plan, request_id, current_user(), _now_text())
    return _submit(cfg, intent), request_id


def plan_rollback(cfg: Config, request_id: str) -> tuple[Any, str]:
    """Plan restoring the snapshot ``request_id`` recorded; return (request, snapshot id).

    Raises:
        StateError: the request recorded no snapshot, or nothing was replaced.
    """
    found = access.latest_artifact(cfg, request_id, "executor-result")
    if found is None:
        raise StateError(f"request {request_id} has no executor result (was it applied?)")
    result = loads_strict(found[1])
    other = _rollback_other_ecosystem(cfg, request_id)
    if other is not None:
        return other
    snapshot_id = (result.get("result") or {}).get("snapshot_id")
    if not isinstance(snapshot_id, str):
        raise StateError(f"request {request_id} recorded no snapshot")
    snap = load_snapshot(cfg, snapshot_id)
    targets = tuple(f"{r.name}={r.version}" for r in snap.replaced)
    if not targets:
        raise StateError(f"snapshot {snapshot_id} replaced no package; nothing to roll back")
    intent = Intent(
        Tool.APT,
        Operation.ROLLBACK,
        targets,
        current_user(),
        _now_text(),
        rollback_of=snapshot_id,
    )
    return _submit(cfg, intent), snapshot_id
