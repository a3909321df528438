"""npm behind the ecosystem seam: into a project or the managed prefix (docs/ecosystems.md).

Planned with ``npm install --package-lock-only --ignore-scripts`` in a scratch copy of the
project against one explicit registry; the plan carries the new ``package.json`` and
``package-lock.json``. aegisd re-resolves, writes exactly those two signed files into the
project, then runs ``npm ci --ignore-scripts``: npm installs exactly the lockfile and checks
every tarball against the lockfile's ``integrity``. Lifecycle scripts never run. That run
starts beside the re-resolution, held before its command until every check passed
(:mod:`aegis.execute.npm_gate`).

``--global`` is the same change to the Aegis-managed prefix (``/var/lib/aegis/managed/npm``):
a root-owned project whose ``bin`` (a link to ``node_modules/.bin``) operators put on PATH.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aegis.early.npm_tool import PROJECT_FILES
from aegis.ecosystems.interface import Planning
from aegis.ecosystems.managed import safe_dir
from aegis.ecosystems.npm.names import GLOBAL_WHERE, is_global, project_dir
from aegis.ecosystems.npm.names import check_targets as _check_targets
from aegis.errors import EnvironmentFailure, InputError
from aegis.model import Action, Intent, Plan, Tool

if TYPE_CHECKING:
    from aegis.config import Config
    from aegis.ecosystems.interface import InstalledState
    from aegis.policy.rules import Rule
    from aegis.sign.execution_plan import ExactTarget


def global_prefix(cfg: Config) -> str:
    """The Aegis-managed prefix: ``/var/lib/aegis/managed/npm`` (under AEGIS_HOME in tests).

    Root's alone, mode 0755; its ``bin`` links to ``node_modules/.bin``, which operators put
    on PATH (docs/ecosystems.md). ``--global`` changes land nowhere else.
    """
    return str(cfg.state_dir / "managed" / "npm")


def _prefix(cfg: Config, plan: Plan) -> Path | None:
    """The managed prefix a ``global:`` plan names, created or refused; None for a project.

    Raises:
        InputError: a ``global:`` location other than the configured prefix.
        EnvironmentFailure: the prefix or ``managed/`` is a link or not root's alone.
    """
    if not is_global(plan.intent.location):
        return None
    if project_dir(plan.intent.location) != global_prefix(cfg):
        raise InputError(f"{plan.intent.location} is not the managed npm prefix")
    prefix = Path(global_prefix(cfg))
    safe_dir(prefix, 0o755, levels=2)  # managed/npm and managed/
    return prefix


def _link_bin(prefix: Path) -> None:
    """``PREFIX/bin -> node_modules/.bin``, made once; anything else there is refused."""
    dfd = os.open(prefix, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
    try:
        try:
            os.symlink("node_modules/.bin", "bin", dir_fd=dfd)
        except FileExistsError:
            if os.readlink("bin", dir_fd=dfd) != "node_modules/.bin":
                raise OSError(f"{prefix}/bin is not the link aegisd made") from None
    finally:
        os.close(dfd)


def _cache(cfg: Config) -> str:
    # aegisd's own root-only directory: npm's cache never lands in the user's project or HOME.
    return str(cfg.aegisd_dir / "npm-cache")


def logs_dir(cfg: Config) -> str:
    """Where aegisd's npm runs write their debug logs: npm's default beside its cache."""
    return str(Path(_cache(cfg)) / "_logs")


def _write(directory: Path, name: str, text: str) -> None:
    """Write ``directory/name`` without following links (the project belongs to a user)."""
    dfd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
    tmp = f".{name}.aegis-{os.getpid()}"
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644,
                     dir_fd=dfd)  # fmt: skip
        try:
            os.write(fd, text.encode("utf-8"))
            os.fsync(fd)
        finally:
            os.close(fd)
        os.rename(tmp, name, src_dir_fd=dfd, dst_dir_fd=dfd)
    finally:
        os.close(dfd)


class NpmEcosystem:
    """npm packages into a project directory or the managed prefix."""

    tool = Tool.NPM
    planning = Planning(
        verbs={"install": True},
        where="--project DIR, a project directory with package.json; or 'global' "
        "(--global): the Aegis-managed prefix",
        registry="--registry",
        runs_idle=True,
    )

    def check_targets(self, targets: Sequence[str]) -> None:
        """The strict grammar of :mod:`aegis.ecosystems.npm.names`."""
        _check_targets(tuple(targets))

    def place(
        self, cfg: Config, targets: Sequence[str], where: str | None, registry: str | None
    ) -> tuple[str | None, str | None]:
        """The place and the registry.

        ``project:/real/path`` of a project with package.json, or the managed prefix
        (``global:/var/lib/aegis/managed/npm``) for ``where`` ``global``.
        """
        from aegis.ecosystems.npm.names import DEFAULT_REGISTRY, project_location
        from aegis.ecosystems.pip.names import check_index_url

        url = check_index_url(registry or DEFAULT_REGISTRY)
        if where is None:
            raise InputError(
                "npm changes go into a project or the managed prefix: --project DIR is "
                "required, or --global",
                hint="a directory with package.json ('npm init -y'), or --global",
            )
        prefix = global_prefix(cfg)
        if where == GLOBAL_WHERE:
            return "global:" + prefix, url
        location = project_location(where)
        if (location + "/").startswith(f"project:{prefix}/"):
            # Its ownership checks are the global path's: never a project there.
            raise InputError(f"{prefix} is the managed prefix", hint="plan with --global")
        return location, url

    def plan(
        self, cfg: Config, intent: Intent, now: datetime, *, inspect_contents: bool = True
    ) -> Plan:
        """:func:`aegis.ecosystems.npm.resolve.plan_npm`."""
        from aegis.ecosystems.npm.resolve import plan_npm

        plan = plan_npm(cfg, intent, now)
        return replace(plan, command_preview=self.derive_argv(plan, cfg))

    def derive_argv(self, plan: Plan, cfg: Config) -> tuple[str, ...]:
        """``npm ci --ignore-scripts`` of the signed lockfile; ``()`` when anything is off."""
        from aegis.early.npm_tool import NO_GLOBAL_CONFIG, NPM

        eco = plan.ecosystem
        if plan.failure is not None or eco is None or not plan.changes:
            return ()
        if sorted(f.name for f in eco.files) != sorted(PROJECT_FILES):
            return ()
        registry = plan.intent.registry or ""
        for a in eco.artifacts:
            if not a.integrity.startswith("sha512-") or not a.url.startswith(registry):
                return ()
        try:
            project = project_dir(plan.intent.location)
        except InputError:
            return ()
        if is_global(plan.intent.location) and project != global_prefix(cfg):
            return ()
        return (NPM, "ci", "--ignore-scripts", "--no-audit", "--no-fund", "--userconfig",
                os.devnull, "--globalconfig", NO_GLOBAL_CONFIG, "--registry", registry,
                "--cache", _cache(cfg), "--prefix", project)  # fmt: skip

    def exact_targets(self, plan: Plan) -> tuple[ExactTarget, ...]:
        """The changes at their exact versions."""
        from aegis.sign.execution_plan import derive_targets

        return derive_targets(plan)

    def preflight(self, cfg: Config, plan: Plan, env: Mapping[str, str]) -> str | None:
        """The project must still be a project; the managed prefix must be root's alone."""
        try:
            if _prefix(cfg, plan) is not None:
                return None
        except (InputError, EnvironmentFailure, OSError) as e:
            return str(e)
        project = Path(project_dir(plan.intent.location))
        if not (project / "package.json").is_file() or project.is_symlink():
            return f"{project} is no longer an npm project"
        return None

    def installed_state(self, cfg: Config, plan: Plan, env: Mapping[str, str]) -> InstalledState:
        """Install path -> version, from npm's hidden lockfile in ``node_modules``."""
        from aegis.early.npm_tool import read_project_file
        from aegis.ecosystems.npm.resolve import lock_packages

        project = Path(project_dir(plan.intent.location))
        try:
            text = read_project_file(project / "node_modules" / ".package-lock.json")
        except OSError:
            text = None
        return {p: str(e.get("version")) for p, e in lock_packages(text).items()}

    def drift(
        self, before: InstalledState, after: InstalledState, targets: Sequence[ExactTarget]
    ) -> list[str]:
        """A target not at its version afterwards, or an unnamed installed package changed."""
        out: list[str] = []
        names = {t.name for t in targets}
        for t in targets:
            got: Any = after.get(t.name)
            if t.action is Action.REMOVE:
                if got is not None:
                    out.append(f"{t.name}: expected removed, found {got}")
            elif got != t.version:
                out.append(f"{t.name}: expected {t.version}, found {got}")
        for name in sorted(before):
            if name not in names and before.get(name) != after.get(name):
                out.append(f"{name}: {before.get(name)} -> {after.get(name)} (not in the plan)")
        return out

    def before_run(self, cfg: Config, plan: Plan) -> None:
        """Write the signed ``package.json`` and ``package-lock.json`` into the project.

        Raises:
            EnvironmentFailure: the project cannot be written.
        """
        assert plan.ecosystem is not None
        try:
            prefix = _prefix(cfg, plan)
            project = prefix or Path(project_dir(plan.intent.location))
            for f in plan.ecosystem.files:
                if f.name in PROJECT_FILES:
                    _write(project, f.name, f.after)
            if prefix is not None:
                _link_bin(prefix)
        except (OSError, InputError) as e:
            raise EnvironmentFailure(f"cannot write the project files: {e}") from e

    def rules(self, generic: tuple[Rule, ...]) -> tuple[Rule, ...]:
        """:func:`aegis.ecosystems.npm.rules.npm_rules`."""
        from aegis.ecosystems.npm.rules import npm_rules

        return npm_rules(generic)


NPM = NpmEcosystem()
