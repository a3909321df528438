"""pip behind the ecosystem seam: wheels into a virtual environment (docs/ecosystems.md).

Planned with ``pip install --dry-run --report`` against one explicit index, applied by aegisd
with ``pip install --no-deps --no-index --require-hashes`` naming every artifact of the
resolved set by URL and SHA-256 (``name@URL#sha256=HEX``: pip checks a direct requirement's
own hash fragment even in ``--require-hashes`` mode), into the venv the plan records, or
(``--target DIR``) into a directory with the system interpreter's pip and ``--target``,
or (``--managed NAME``) into an Aegis-managed venv, ``/var/lib/aegis/managed/python/NAME``,
which aegisd creates on the first apply (root's alone, ``python3 -m venv --without-pip``):
the system interpreter's pip changes it with ``--python``, so it holds exactly the signed
set and no pip of its own.
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
from aegis.ecosystems.managed import check_dir, safe_dir
from aegis.ecosystems.pip.names import (
    MANAGED_KIND,
    SYSTEM_PYTHON,
    TARGET_KIND,
    check_venv_name,
    is_managed,
    is_target,
    location_dir,
    pip_head,
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


RM = "/bin/rm"
"""Removes a managed venv whose last distributions a plan removes (its rollback)."""
VENV_TIMEOUT_S = 120.0


def managed_root(cfg: Config) -> Path:
    """Where managed venvs live: ``/var/lib/aegis/managed/python`` (under AEGIS_HOME in tests).

    Root's alone, mode 0755, like npm's managed prefix beside it (aegis/ecosystems/managed.py).
    """
    return cfg.state_dir / "managed" / "python"


def managed_venv(cfg: Config, location: str | None) -> Path | None:
    """The managed venv a ``managed:`` location names; None for another kind.

    Raises:
        InputError: a ``managed:`` location that is not ``<managed root>/NAME`` with a
            valid NAME (a hand-made plan naming another directory).
    """
    if not is_managed(location):
        return None
    venv = Path(location_dir(location))
    check_venv_name(venv.name)
    if venv.parent != managed_root(cfg):
        raise InputError(f"{location} is not a managed venv under {managed_root(cfg)}")
    return venv


def _create_venv(cfg: Config, venv: Path) -> None:
    """Create the managed venv root's alone (``python3 -m venv --without-pip``), or refuse.

    Raises:
        EnvironmentFailure: the managed root or the venv is not root's alone, or venv failed.
    """
    import subprocess

    safe_dir(venv.parent, 0o755, levels=2)  # managed/python and managed/
    if not (venv / "pyvenv.cfg").is_file():
        try:
            proc = subprocess.run(
                (SYSTEM_PYTHON, "-m", "venv", "--without-pip", "--", str(venv)),
                stdin=subprocess.DEVNULL,
                capture_output=True,
                env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8"},
                timeout=VENV_TIMEOUT_S,
                umask=0o022,  # not the daemon's: people run what lands here
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired) as e:
            raise EnvironmentFailure(f"cannot create the managed venv {venv}: {e}") from e
        if proc.returncode != 0:
            why = proc.stderr.decode("utf-8", "replace").strip()[-500:]
            raise EnvironmentFailure(f"cannot create the managed venv {venv}: {why}")
    check_dir(venv, levels=3)


def _removal_argv(plan: Plan, head: tuple[str, ...], venv: str) -> tuple[str, ...]:
    """``pip uninstall`` of the plan's removals; ``()`` for a target or anything else."""
    assert plan.ecosystem is not None
    if is_target(plan.intent.location):
        return ()  # pip cannot uninstall from a --target directory
    if any(c.action is not Action.REMOVE for c in plan.changes):
        return ()
    names = sorted(c.name for c in plan.changes)
    installed = sorted(i.partition("==")[0] for i in plan.ecosystem.installed)
    if is_managed(plan.intent.location) and names == installed:
        # Its last distributions: the managed venv goes too (a first change's rollback).
        return (RM, "-rf", "--one-file-system", "--", venv)
    return (*head, "uninstall", "-y", "--", *names)


class PipEcosystem:
    """Python distributions through pip, into a virtual environment."""

    tool = Tool.PIP
    planning = Planning(
        verbs={"install": True},
        where="--venv DIR, an existing virtual environment; or target:DIR (--target DIR), "
        "an existing directory for 'pip install --target'; or managed:NAME (--managed NAME), "
        "the Aegis-managed venv NAME, created by the apply",
        registry="--index-url",
        runs_idle=True,
    )

    def check_targets(self, targets: Sequence[str]) -> None:
        """The strict requirement grammar of :mod:`aegis.ecosystems.pip.names`."""
        _check_targets(tuple(targets))

    def place(
        self, cfg: Config, targets: Sequence[str], where: str | None, registry: str | None
    ) -> tuple[str | None, str | None]:
        """The place and the index (default pip's own).

        ``venv:/real/path`` of an existing venv, ``target:/real/path`` for ``target:DIR``,
        or ``managed:<managed root>/NAME`` for ``managed:NAME``.
        """
        from aegis.ecosystems.pip.names import DEFAULT_INDEX, check_index_url, venv_location

        index = check_index_url(registry or DEFAULT_INDEX)
        if where is None:
            raise InputError(
                "pip changes go into a virtual environment: --venv DIR is required "
                "(or --target DIR, or --managed NAME)",
                hint="Aegis never installs into the system interpreter's site-packages",
            )
        if where.startswith(TARGET_KIND):
            return target_location(where[len(TARGET_KIND) :]), index
        root = managed_root(cfg)
        if where.startswith(MANAGED_KIND):
            return f"{MANAGED_KIND}{root}/{check_venv_name(where[len(MANAGED_KIND) :])}", index
        location = venv_location(where)
        if (location + "/").startswith(f"venv:{root}/"):
            # Its ownership checks and creation are the managed path's: never a plain venv.
            raise InputError(f"{location[5:]} is a managed venv", hint="plan with --managed NAME")
        return location, index

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
        managed = is_managed(plan.intent.location)
        try:
            if managed and (managed_venv(cfg, plan.intent.location) is None or user):
                return ()  # a managed venv is changed by root, and only under its root
        except InputError:
            return ()
        head = (*user, *pip_head(plan.intent.location), "--isolated",
                "--disable-pip-version-check", "--no-input")  # fmt: skip
        if plan.intent.operation is Operation.REMOVE:
            return _removal_argv(plan, head, venv)
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
        if is_managed(plan.intent.location):
            try:
                managed_venv(cfg, plan.intent.location)
                for directory, levels in ((venv, 3), (venv.parent, 2), (venv.parent.parent, 1)):
                    if directory.exists() or directory.is_symlink():
                        check_dir(directory, levels=levels)  # aegisd creates what is missing
                        break
            except (InputError, EnvironmentFailure) as e:
                return e.message
            return None
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
        """Prepare the place: a managed venv is created when missing, root's alone.

        A venv: nothing (the argv names everything). A target: drop replaced dist-infos.

        Raises:
            EnvironmentFailure: the target or managed venv cannot be changed.
        """
        if is_managed(plan.intent.location):
            try:
                venv = managed_venv(cfg, plan.intent.location)
            except InputError as e:
                raise EnvironmentFailure(e.message) from e
            assert venv is not None
            if plan.intent.operation is not Operation.REMOVE:
                _create_venv(cfg, venv)
            return
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
