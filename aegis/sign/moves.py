"""Say what moved between a plan and its re-analysis, for stale-plan refusals. Pure.

"The package state moved" alone sends on-call hunting. :func:`describe_moves` names each
package of the delta whose installed or candidate version changed (``nginx installed
1.22 -> 1.24``) or whose artifact integrity changed at the same version, each package
that joined or left the delta, each repository whose
signed evidence changed, and, when the package-state hash moved with none of those,
that packages outside the delta changed (the plan keeps only the hash of the rest).

Example:
    >>> describe_moves(plan, plan)
    []
"""

from __future__ import annotations

from aegis.model import PackageChange, Plan, Repository
from aegis.text import inert

MAX_MOVES = 8
_REPO_FIELDS = ("date", "valid_until", "signature", "signer_fingerprint", "expired", "frozen")


def _key(c: PackageChange) -> str:
    return f"{c.name}:{c.arch}"


def _version_moves(old: Plan, new: Plan) -> list[str]:
    before = {_key(c): c for c in old.changes}
    after = {_key(c): c for c in new.changes}
    out: list[str] = []
    for key in sorted(before.keys() | after.keys()):
        was, now = before.get(key), after.get(key)
        if was is None and now is not None:
            out.append(f"{key} joined the delta ({now.action.value})")
        elif now is None and was is not None:
            out.append(f"{key} left the delta (was {was.action.value})")
        elif was is not None and now is not None:
            if was.current_version != now.current_version:
                out.append(f"{key} installed {was.current_version} -> {now.current_version}")
            if was.candidate_version != now.candidate_version:
                out.append(f"{key} candidate {was.candidate_version} -> {now.candidate_version}")
            elif was.integrity != now.integrity:
                # The same version with other bytes: a republished or swapped artifact.
                out.append(
                    f"{key} {now.candidate_version} integrity "
                    f"{was.integrity or '(none)'} -> {now.integrity or '(none)'}"
                )
    return out


def _repo_name(r: Repository) -> str:
    return f"{r.uri} {r.suite}/{r.component}"


def _repository_moves(old: Plan, new: Plan) -> list[str]:
    before = {_repo_name(r): r for r in old.repositories}
    after = {_repo_name(r): r for r in new.repositories}
    out: list[str] = []
    for name in sorted(before.keys() | after.keys()):
        was, now = before.get(name), after.get(name)
        if was is None or now is None:
            out.append(f"repository {name} {'appeared' if was is None else 'is gone'}")
            continue
        fields = [f for f in _REPO_FIELDS if getattr(was, f) != getattr(now, f)]
        if fields:
            detail = ", ".join(f"{f} {getattr(was, f)} -> {getattr(now, f)}" for f in fields)
            out.append(f"repository {name} changed ({detail})")
    return out


def describe_moves(old: Plan, new: Plan) -> list[str]:
    """What differs between ``old`` and its re-analysis ``new``, most specific first.

    Names and versions come from apt's output and repositories: each entry is made inert
    (aegis.text) before it joins a refusal that is printed and audited.
    """
    moves = [
        inert(m, max_chars=200) for m in _version_moves(old, new) + _repository_moves(old, new)
    ]
    if old.package_state_hash != new.package_state_hash and not any(
        "installed" in m or "delta" in m for m in moves
    ):
        moves.append("installed packages outside the delta changed")
    if len(moves) > MAX_MOVES:
        moves = [*moves[:MAX_MOVES], f"and {len(moves) - MAX_MOVES} more"]
    return moves


def only_repositories_moved(old: Plan, new: Plan) -> bool:
    """True when the package state is unchanged and some repository's signed Date advanced."""
    if old.package_state_hash != new.package_state_hash:
        return False
    before = {_repo_name(r): r.date for r in old.repositories}
    return any(
        r.date is not None and (before.get(_repo_name(r)) or "") < r.date for r in new.repositories
    )
