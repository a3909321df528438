"""pip behind the ecosystem seam: wheels into a virtual environment (docs/ecosystems.md).

Planned with ``pip install --dry-run --report`` against one explicit index, applied by aegisd
with ``pip install --no-deps --no-index --require-hashes`` naming every artifact of the
resolved set by URL and SHA-256 (``name@URL#sha256=HEX``: pip checks a direct requirement's
own hash fragment even in ``--require-hashes`` mode), into the venv the plan records, or
(``--target DIR``) into a directory with the system interpreter's pip and ``--target``.
"""

from __future__ import annotations

import os
import re
import stat
from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aegis.ecosystems.interface import Planning
from aegis.ecosystems.pip.names import (
    SYSTEM_PYTHON,
    TARGET_KIND,
    is_target,
    location_dir,
    target_location,
)
from aegis.ecosystems.pip.names import check_targets as _check_targets
from aegis.errors import EnvironmentFailure, InputError
from aegis.model import Action, Intent, Operation, Plan, Tool

if TYPE_CHECKING:
    from aegis.config import Config
    from aegis.ecosystems.interface import InstalledState
    from aegis.policy.rules import Rule
    from aegis.sign.execution_plan import ExactTarget

SHA256_HEX = 64
_URL_SAFE = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_%+=:,./~-")


SETPRIV = "/usr/bin/setpriv"
_OWNER_RE = re.compile(r"\A([0-9]{1,10}):([0-9]{1,10})\Z")


def _run_as(owner: str) -> tuple[str, ...] | None:
    """The argv prefix that runs pip as the venv's owner; None for a malformed owner.

    aegisd is root and a user's venv holds code its owner can change (``bin/python`` itself,
    ``sitecustomize``, ``.pth`` files): root must never execute it, so pip runs as that user
    with no supplementary groups.
    """
    m = _OWNER_RE.match(owner)
    if m is None:
        return None
    if owner == "0:0":
        return ()
    return (SETPRIV, f"--reuid={m.group(1)}", f"--regid={m.group(2)}", "--clear-groups", "--")


def _unsafe_parent(directory: Path) -> str | None:
    """Why root must not run pip into ``directory``; None when it may.

    Refused: a link, or a component another user could swap (not root's, or writable by
    others without the sticky bit). A root-owned target is written by root: if anyone else
    could replace it or a parent with a link between planning and the run, root would
    install where they chose.
    """
    for p in [directory, *directory.parents]:
        try:
            st = os.lstat(p)
        except OSError as e:
            return f"{p}: {e.strerror}"
        if stat.S_ISLNK(st.st_mode) or not stat.S_ISDIR(st.st_mode):
            return f"{p} is not a plain directory"
        sticky = st.st_mode & stat.S_ISVTX and p != directory
        if st.st_uid != 0 or (st.st_mode & 0o022 and not sticky):
            return f"{p} is not root's alone"
    return None


class PipEcosystem:
    """Python distributions through pip, into a virtual environment."""

    tool = Tool.PIP
    planning = Planning(
        verbs={"install": True},
        where="--venv DIR, an existing virtual environment; or target:DIR (--target DIR), "
        "an existing directory for 'pip install --target'",
        registry="--index-url",
    )

    def check_targets(self, targets: Sequence[str]) -> None:
        """The strict requirement grammar of :mod:`aegis.ecosystems.pip.names`."""
        _check_targets(tuple(targets))

    def place(
        self, cfg: Config, targets: Sequence[str], where: str | None, registry: str | None
    ) -> tuple[str | None, str | None]:
        """The place and the index (default pip's own).

        ``venv:/real/path`` of an existing venv, or ``target:/real/path`` for ``target:DIR``.
        """
        from aegis.ecosystems.pip.names import DEFAULT_INDEX, check_index_url, venv_location

        index = check_index_url(registry or DEFAULT_INDEX)
        if where is None:
            raise InputError(
                "pip changes go into a virtual environment: --venv DIR is required "
                "(or --target DIR)",
                hint="Aegis never installs into the system interpreter's site-packages",
            )
        if where.startswith(TARGET_KIND):
            return target_location(where[len(TARGET_KIND) :]), index
        return venv_location(where), index

    def plan(
        self, cfg: Config, intent: Intent, now: datetime, *, inspect_contents: bool = True
    ) -> Plan:
        """:func:`aegis.ecosystems.pip.resolve.plan_pip` (removals: ``rollback.plan_removal``)."""
        if intent.operation is Operation.REMOVE:
            from aegis.ecosystems.pip.rollback import plan_removal

            plan = plan_removal(cfg, intent, now)
            return replace(plan, command_preview=self.derive_argv(plan, cfg))
        from aegis.ecosystems.pip.resolve import plan_pip

        plan = plan_pip(cfg, intent, now, inspect_contents=inspect_contents)
        return replace(plan, command_preview=self.derive_argv(plan, cfg))

    def derive_argv(self, plan: Plan, cfg: Config) -> tuple[str, ...]:
        """The exact install of the resolved set; ``()`` when anything is off. Pure."""
        eco = plan.ecosystem
        if plan.failure is not None or eco is None or not plan.changes:
            return ()
        try:
            venv = location_dir(plan.intent.location)
        except ValueError:
            return ()
        user = _run_as(eco.owner)
        if user is None:
            return ()
        target = is_target(plan.intent.location)
        python = SYSTEM_PYTHON if target else f"{venv}/bin/python"
        head = (*user, python, "-m", "pip", "--isolated",
                "--disable-pip-version-check", "--no-input")  # fmt: skip
        if plan.intent.operation is Operation.REMOVE:
            if target:
                return ()  # pip cannot uninstall from a --target directory
            if any(c.action is not Action.REMOVE for c in plan.changes):
                return ()
            return (*head, "uninstall", "-y", "--", *sorted(c.name for c in plan.changes))
        arts = {a.name: a for a in eco.artifacts}
        operands: list[str] = []
        for c in plan.changes:
            a = arts.get(c.name)
            if c.action not in (Action.INSTALL, Action.UPGRADE, Action.DOWNGRADE) or a is None:
                return ()
            if a.version != c.candidate_version or len(a.sha256) != SHA256_HEX:
                return ()
            if not a.url.startswith(("https://", "http://")) or not set(a.url) <= _URL_SAFE:
                return ()
            operands.append(f"{a.name}@{a.url}#sha256={a.sha256}")
        wheels_only = all(arts[c.name].kind == "wheel" for c in plan.changes)
        # --upgrade: pip --target replaces a distribution already there only when asked.
        into = ("--target", venv, "--upgrade") if target else ()
        return (
            *head, "install", *into, "--no-deps", "--no-index", "--require-hashes",
            "--no-cache-dir", *(("--only-binary=:all:",) if wheels_only else ()),
            "--", *sorted(operands),
        )  # fmt: skip

    def exact_targets(self, plan: Plan) -> tuple[ExactTarget, ...]:
        """The changes at their exact versions (:func:`derive_targets` is generic)."""
        from aegis.sign.execution_plan import derive_targets

        return derive_targets(plan)

    def preflight(self, cfg: Config, plan: Plan, env: Mapping[str, str]) -> str | None:
        """The venv must still be a venv with its interpreter (a target: the same directory)."""
        from aegis.ecosystems.pip.resolve import target_owner, venv_owner

        venv = Path(location_dir(plan.intent.location))
        owner = plan.ecosystem.owner if plan.ecosystem else ""
        if is_target(plan.intent.location):
            try:
                if target_location(str(venv)) != plan.intent.location:
                    return f"{venv} is no longer the directory planned (a link?)"
            except InputError as e:
                return e.message
            if target_owner(venv) != owner:
                return f"{venv} changed owner since planning (planned for {owner})"
            return _unsafe_parent(venv) if owner == "0:0" else None
        if not (venv / "pyvenv.cfg").is_file() or not (venv / "bin" / "python").exists():
            return f"{venv} is no longer a virtual environment"
        if venv_owner(venv) != owner:
            return f"{venv} changed owner since planning (planned for {owner})"
        return None

    def installed_state(self, cfg: Config, plan: Plan, env: Mapping[str, str]) -> InstalledState:
        """Name -> version in the venv."""
        from aegis.ecosystems.pip.state import installed

        location = plan.intent.location
        return installed(Path(location_dir(location)), target=is_target(location))

    def drift(
        self, before: InstalledState, after: InstalledState, targets: Sequence[ExactTarget]
    ) -> list[str]:
        """A target not at its version afterwards, or anything else that changed."""
        out: list[str] = []
        names = {t.name for t in targets}
        for t in targets:
            got: Any = after.get(t.name)
            if t.action is Action.REMOVE:
                if got is not None:
                    out.append(f"{t.name}: expected removed, found {got}")
            elif got != t.version:
                out.append(f"{t.name}: expected {t.version}, found {got}")
        for name in sorted(set(before) | set(after)):
            if name not in names and before.get(name) != after.get(name):
                out.append(f"{name}: {before.get(name)} -> {after.get(name)} (not in the plan)")
        return out

    def before_run(self, cfg: Config, plan: Plan) -> None:
        """A venv: nothing (the argv names everything). A target: drop replaced dist-infos.

        Raises:
            EnvironmentFailure: the target cannot be changed.
        """
        if not is_target(plan.intent.location):
            return
        from aegis.ecosystems.pip.state import drop_replaced

        old = {c.name: c.current_version for c in plan.changes
               if c.action in (Action.UPGRADE, Action.DOWNGRADE) and c.current_version}  # fmt: skip
        if old:
            try:
                drop_replaced(Path(location_dir(plan.intent.location)), old)
            except OSError as e:
                raise EnvironmentFailure(f"cannot replace in the target: {e}") from e

    def rules(self, generic: tuple[Rule, ...]) -> tuple[Rule, ...]:
        """:func:`aegis.ecosystems.pip.rules.pip_rules`."""
        from aegis.ecosystems.pip.rules import pip_rules

        return pip_rules(generic)


PIP = PipEcosystem()
