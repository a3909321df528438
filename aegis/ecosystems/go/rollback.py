"""Rolling back a Go change through the whole chain again.

- ``go get``: the applied plan holds ``go.mod`` and ``go.sum`` as they were
  (``plan.ecosystem.files[].before``). The rollback intent carries them (``intent.files``,
  signed with the intent), so aegisd re-derives from the intent alone: the planner reads the
  restored files' modules with ``go mod download -json`` like any change, and aegisd writes
  them and runs ``go mod download`` (every module checked against the restored ``go.sum``).
- ``go install``: the plan recorded the binary it replaced with the version its build info
  names (``plan.ecosystem.installed``); the rollback is ``go install PACKAGE@THAT_VERSION``,
  an ordinary plan whose downgrade needs approval. A binary that did not exist before, or
  whose version was unknown, is refused with a hint.
"""

from __future__ import annotations

from aegis.ecosystems.go.names import GOBIN_KIND, is_exact
from aegis.errors import StateError
from aegis.model import Intent, Operation, Plan, ProjectFile, Tool


def rollback_intent(applied: Plan, request_id: str, user: str, now_text: str) -> Intent:
    """The intent that undoes ``applied``.

    Raises:
        StateError: nothing recorded to restore.
    """
    eco = applied.ecosystem
    if (applied.intent.location or "").startswith(GOBIN_KIND):
        prev = eco.installed[0].split()[0] if eco and eco.installed else ""
        pkg, _, version = prev.partition("@")
        if not is_exact(version):
            raise StateError(
                f"request {request_id} replaced no binary of a known version",
                hint="remove the binary from the managed GOBIN by hand if it must go",
            )
        targets: tuple[str, ...] = (f"{pkg}@{version}",)
        files: tuple[ProjectFile, ...] = ()
    else:
        old = {f.name: f for f in eco.files} if eco else {}
        gomod = old.get("go.mod")
        if gomod is None or gomod.before is None:
            raise StateError(f"request {request_id} recorded no previous go.mod")
        targets = ()
        files = tuple(
            ProjectFile(f.name, f.after, f.before)
            for f in sorted(old.values(), key=lambda f: f.name)
            if f.before is not None
        )
    return Intent(Tool.GO, Operation.ROLLBACK, targets, user, now_text, rollback_of=request_id,
                  location=applied.intent.location, registry=applied.intent.registry,
                  files=files)  # fmt: skip
