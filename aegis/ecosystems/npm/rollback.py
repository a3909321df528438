"""Rolling back an npm change: restore the project files the applied plan recorded.

The applied plan holds ``package.json`` and ``package-lock.json`` as they were before
(``plan.ecosystem.files[].before``). The rollback intent carries them (``intent.files``),
so the new request is planned, signed and re-derived by aegisd from the signed intent
alone: npm resolves the restored files in a scratch copy (``--package-lock-only``, no
targets), and aegisd writes them and runs ``npm ci --ignore-scripts`` like any npm change.
A project that had no lockfile gets the one npm resolves for its old ``package.json``.
"""

from __future__ import annotations

from aegis.ecosystems.npm.names import GLOBAL_SEED, is_global
from aegis.errors import StateError
from aegis.model import Intent, Operation, Plan, ProjectFile, Tool


def rollback_intent(applied: Plan, request_id: str, user: str, now_text: str) -> Intent:
    """The intent that restores the project files ``applied`` replaced.

    Raises:
        StateError: the plan recorded no files (nothing to restore).
    """
    eco = applied.ecosystem
    files = {f.name: f for f in eco.files} if eco else {}
    old_manifest = files.get("package.json")
    if (
        old_manifest is not None
        and old_manifest.before is None
        and is_global(applied.intent.location)
    ):
        # The managed prefix's first change: back to the empty prefix.
        files["package.json"] = ProjectFile("package.json", GLOBAL_SEED, old_manifest.after)
        old_manifest = files["package.json"]
    if old_manifest is None or old_manifest.before is None:
        raise StateError(f"request {request_id} recorded no previous package.json")
    restore = tuple(
        ProjectFile(f.name, f.after, f.before)
        for f in sorted(files.values(), key=lambda f: f.name)
        if f.before is not None
    )
    return Intent(
        Tool.NPM,
        Operation.ROLLBACK,
        (),
        user,
        now_text,
        rollback_of=request_id,
        location=applied.intent.location,
        registry=applied.intent.registry,
        files=restore,
    )
