"""Rolling back a cargo change: the applied plan says what the managed root had before.

A cargo plan records the root's installed crates before the change
(``plan.ecosystem.installed``), proven current by aegisd's re-derivation, so the applied plan
is the snapshot:

- a fresh install is undone by removing the crate (operation ``remove``: ``cargo uninstall
  --root ROOT -- NAME``, rule ``cargo.downgrade``: approval);
- a replaced version is undone by installing the previous one (operation ``rollback``: an
  ordinary plan of ``NAME@OLD`` from the same registry, cksum-pinned and locked like any
  other; its downgrade needs approval).

Either request walks the whole chain again.
"""

from __future__ import annotations

from aegis.errors import StateError
from aegis.model import Action, Intent, Operation, Plan, Tool


def rollback_intent(applied: Plan, request_id: str, user: str, now_text: str) -> Intent:
    """The intent that undoes ``applied`` (a cargo plan aegisd ran).

    Raises:
        StateError: the plan changed nothing.
    """
    if not applied.changes:
        raise StateError(f"request {request_id} changed nothing; nothing to roll back")
    change = applied.changes[0]
    if change.action is Action.INSTALL:
        op, target = Operation.REMOVE, change.name
    elif change.action is Action.REMOVE:
        raise StateError(
            f"request {request_id} removed {change.name}; reinstall it with a new plan",
            hint=f"aegis cargo install {change.name}@{change.current_version} ... --plan",
        )
    else:
        op, target = Operation.ROLLBACK, f"{change.name}@{change.current_version}"
    return Intent(
        Tool.CARGO,
        op,
        (target,),
        user,
        now_text,
        rollback_of=request_id,
        location=applied.intent.location,
        registry=applied.intent.registry,
    )
