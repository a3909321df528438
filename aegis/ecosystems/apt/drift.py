"""Comparing dpkg status after a run with the signed delta (pure).

After a run aegisd reads dpkg's status again and checks that exactly the signed
delta happened: every versioned target is installed at its exact version, every
removal is gone (``purge``: no trace; ``remove``: at most config-files), and no
other package changed. Anything else is drift, recorded in the audit event.

Example:
    >>> compare_with_delta({}, {"x:all": ("1.0", "installed")},
    ...                    [ExactTarget("x", "all", Action.INSTALL, "1.0")])
    []
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from aegis.model import Action
from aegis.sign.execution_plan import ExactTarget

State = Mapping[str, tuple[str, str]]


def _find(state: State, name: str, arch: str) -> tuple[str, tuple[str, str] | None]:
    key = f"{name}:{arch}"
    if key in state:
        return key, state[key]
    # apt reports "all" packages under the native arch in some outputs: match by name.
    for k, v in state.items():
        if k.split(":", 1)[0] == name:
            return k, v
    return key, None


def compare_with_delta(before: State, after: State, targets: Sequence[ExactTarget]) -> list[str]:
    """Return one line per difference between what happened and the signed delta."""
    drift: list[str] = []
    touched: set[str] = set()
    for t in targets:
        key, now = _find(after, t.name, t.arch)
        touched.add(key)
        touched.add(_find(before, t.name, t.arch)[0])
        if t.action in (Action.INSTALL, Action.UPGRADE, Action.DOWNGRADE, Action.REINSTALL):
            if now is None or now != (t.version, "installed"):
                got = f"{now[0]} {now[1]}" if now else "absent"
                drift.append(f"{t.name}: expected {t.version} installed, found {got}")
        elif t.action == Action.REMOVE:
            if now is not None and now[1] != "config-files":
                drift.append(f"{t.name}: expected removed, found {now[0]} {now[1]}")
        elif t.action == Action.PURGE and now is not None:
            drift.append(f"{t.name}: expected purged, found {now[0]} {now[1]}")
    for key in sorted(set(before) | set(after)):
        if key in touched:
            continue
        if before.get(key) != after.get(key):
            was = " ".join(before[key]) if key in before else "absent"
            now_s = " ".join(after[key]) if key in after else "absent"
            drift.append(f"{key}: not in the signed delta, changed from {was} to {now_s}")
    return drift
