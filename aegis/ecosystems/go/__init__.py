"""Go modules behind the ecosystem seam (docs/ecosystems.md "Go").

Two kinds of change, told apart by the location:

- ``gomod:/dir``: ``go get`` changes a module's ``go.mod`` and ``go.sum``. The plan carries the
  new files; aegisd re-resolves, writes exactly those signed files (so every ``h1:`` sum go
  checks is the plan's), then runs ``go mod download MODULE@EXACT...`` in the directory with
  ``GOFLAGS=-mod=readonly``: go fetches and verifies each module against the signed
  ``go.sum``, and never rewrites the signed files. Rollback restores the previous files
  (``go mod download`` verifies them).
- ``gobin:/var/lib/aegis/go/bin``: ``go install`` builds one binary into the Aegis-managed
  GOBIN. The plan resolves the package in a scratch tool module; aegisd writes that module's
  signed ``go.mod``/``go.sum`` to its own directory and runs ``go install PACKAGE`` there, so
  go checks every module of the build against the plan's sums. Rollback installs the
  previous binary's version (from its build info) through the whole chain again.

Every go command aegisd runs is ``/usr/bin/env -i -C DIR K=V... /usr/bin/go ...``: the whole
environment (proxy, checksum database, caches, ``GOFLAGS``) is part of the signed argv.
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

from aegis.ecosystems.go.names import (
    GOBIN_KIND,
    GOMOD_KIND,
    binary_name,
    check_proxy_url,
    gobin_dir,
    is_exact,
    location_dir,
    split_target,
)
from aegis.ecosystems.interface import Planning
from aegis.errors import EnvironmentFailure, InputError
from aegis.model import Action, Intent, Operation, Plan, Tool

if TYPE_CHECKING:
    from aegis.config import Config
    from aegis.ecosystems.interface import InstalledState
    from aegis.policy.rules import Rule
    from aegis.sign.execution_plan import ExactTarget

MODULE_FILES = ("go.mod", "go.sum")


def _go_dir(cfg: Config) -> Path:
    # aegisd's own root-only directory: the module cache, build cache and tool module.
    return cfg.aegisd_dir / "go"


def _location(plan: Plan) -> tuple[bool, str]:
    loc = plan.intent.location or ""
    if loc.startswith(GOBIN_KIND):
        return True, location_dir(loc, GOBIN_KIND)
    return False, location_dir(loc, GOMOD_KIND)


def _env_words(cfg: Config, proxy: str, gobin: str | None) -> list[str]:
    from aegis.ecosystems.go.gotool import pinned

    base = _go_dir(cfg)
    env = pinned(str(base / "home"), str(base / "modcache"), str(base / "cache"),
                 str(base / "path"), proxy)  # fmt: skip
    env["GOFLAGS"] = "-mod=readonly"
    if gobin is not None:
        env["GOBIN"] = gobin
    return [f"{k}={v}" for k, v in env.items()]


def _write(directory: Path, name: str, text: str, mode: int = 0o644) -> None:
    """Write ``directory/name`` atomically without following links; keep the old owner."""
    dfd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
    tmp = f".{name}.aegis-{os.getpid()}"
    try:
        try:
            old = os.stat(name, dir_fd=dfd, follow_symlinks=False)
        except FileNotFoundError:
            old = os.fstat(dfd)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, mode, dir_fd=dfd)
        try:
            os.write(fd, text.encode("utf-8"))
            if os.geteuid() == 0:
                os.fchown(fd, old.st_uid, old.st_gid)  # a user's module stays the user's
            os.fsync(fd)
        finally:
            os.close(fd)
        os.rename(tmp, name, src_dir_fd=dfd, dst_dir_fd=dfd)
    finally:
        os.close(dfd)


def _safe_dir(path: Path, mode: int, *, levels: int = 1) -> None:
    """Create ``path`` and its ``levels - 1`` parents (``mode``), or refuse them.

    Refused: a link, or, for root, a directory not root's or writable by group or others.
    The managed GOBIN sits in the store directory, which group aegis may write: an agent must
    not be able to hold ``go/`` or ``go/bin/`` and swap the binaries people run.
    """
    chain = [path, *path.parents][:levels]
    chain[-1].parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    for p in reversed(chain):
        try:
            p.mkdir(mode=mode)
            os.chmod(p, mode)  # not the daemon's umask: people must reach the binaries
        except FileExistsError:
            pass
    for p in chain:
        st = os.lstat(p)
        if stat.S_ISLNK(st.st_mode) or not stat.S_ISDIR(st.st_mode):
            raise EnvironmentFailure(f"{p} is not a plain directory: refusing to use it")
        if os.geteuid() == 0 and (st.st_uid != 0 or st.st_mode & 0o022):
            raise EnvironmentFailure(f"{p} is not root's alone: refusing to use it")


def _exact_and_summed(plan: Plan, proxy: str) -> bool:
    """Every module exact, from the proxy, with its h1 sum; every change at an exact version."""
    eco = plan.ecosystem
    for a in eco.artifacts if eco else ():
        if not (a.integrity.startswith("h1:") and a.url.startswith(proxy) and is_exact(a.version)):
            return False
    return all(
        c.action is Action.REMOVE or is_exact(c.candidate_version or "") for c in plan.changes
    )


class GoEcosystem:
    """Go modules: ``go get`` into a module, ``go install`` into the managed GOBIN."""

    tool = Tool.GO
    planning = Planning(
        verbs={"install": True},
        where="--module DIR: 'go get' into that module's go.mod and go.sum; without it, "
        "'go install PKG@VERSION' into the managed GOBIN",
        registry="--proxy URL (GOPROXY for this plan: https, http or file:///dir)",
    )

    def check_targets(self, targets: Sequence[str]) -> None:
        """The strict grammar of :mod:`aegis.ecosystems.go.names`."""
        from aegis.ecosystems.go.names import check_targets

        check_targets(tuple(targets))

    def place(
        self, cfg: Config, targets: Sequence[str], where: str | None, registry: str | None
    ) -> tuple[str | None, str | None]:
        """A module (``go get``) or the managed GOBIN (``go install``), and the proxy."""
        from aegis.ecosystems.go.names import (
            DEFAULT_PROXY,
            check_proxy_url,
            check_targets,
            module_location,
        )

        url = check_proxy_url(registry or DEFAULT_PROXY)
        if where is not None:
            return module_location(where), url
        # go install: one package at an explicit version, for the MCP tool as for the CLI.
        check_targets(tuple(targets), install=True)
        return "gobin:" + gobin_dir(cfg), url

    def plan(
        self, cfg: Config, intent: Intent, now: datetime, *, inspect_contents: bool = True
    ) -> Plan:
        """:func:`aegis.ecosystems.go.resolve.plan_go`."""
        from aegis.ecosystems.go.resolve import plan_go

        plan = plan_go(cfg, intent, now)
        return replace(plan, command_preview=self.derive_argv(plan, cfg))

    def derive_argv(self, plan: Plan, cfg: Config) -> tuple[str, ...]:
        """``env -i -C DIR ... go mod download MOD@EXACT...`` (or ``go install PKG``).

        ``()`` when anything is off.
        """
        from aegis.ecosystems.go.gotool import ENV, GO

        eco = plan.ecosystem
        if plan.failure is not None or eco is None or not plan.changes:
            return ()
        if sorted(f.name for f in eco.files) != sorted(MODULE_FILES):
            return ()
        try:
            install, directory = _location(plan)
            proxy = check_proxy_url(plan.intent.registry or "")
        except InputError:
            return ()
        if proxy != plan.intent.registry or not _exact_and_summed(plan, proxy):
            return ()
        if install:
            if directory != gobin_dir(cfg):
                return ()
            try:
                pkg, _ = split_target(plan.intent.targets[0])
            except (InputError, IndexError):
                return ()
            version = plan.changes[0].candidate_version or ""
            words = [*_env_words(cfg, proxy, directory), f"AEGIS_GO_TARGET={pkg}@{version}"]
            return (ENV, "-i", "-C", str(_go_dir(cfg) / "install"), *words, GO, "install",
                    "--", pkg)  # fmt: skip
        words = _env_words(cfg, proxy, None)
        if plan.intent.operation is Operation.ROLLBACK:
            return (ENV, "-i", "-C", directory, *words, GO, "mod", "download")
        # The signed go.mod and go.sum are in place (before_run): go fetches every module the
        # change pins, by exact version, and checks each against the plan's sums.
        operands = sorted(f"{a.name}@{a.version}" for a in eco.artifacts)
        if not operands:
            return ()
        return (ENV, "-i", "-C", directory, *words, GO, "mod", "download", "--", *operands)

    def exact_targets(self, plan: Plan) -> tuple[ExactTarget, ...]:
        """The changes at their exact versions."""
        from aegis.sign.execution_plan import derive_targets

        return derive_targets(plan)

    def preflight(self, cfg: Config, plan: Plan, env: Mapping[str, str]) -> str | None:
        """The module must still be a module; the managed directories must be aegisd's."""
        try:
            install, directory = _location(plan)
            if install:
                _safe_dir(Path(directory), 0o755, levels=2)  # go/bin and go/
                _safe_dir(_go_dir(cfg) / "install", 0o700)
                return None
        except (InputError, EnvironmentFailure, OSError) as e:
            return str(e)
        gomod = Path(directory) / "go.mod"
        if Path(directory).is_symlink() or gomod.is_symlink() or not gomod.is_file():
            return f"{directory} is no longer a Go module"
        return None

    def installed_state(self, cfg: Config, plan: Plan, env: Mapping[str, str]) -> InstalledState:
        """For go get, the module files' hashes and required versions; go install: the binary."""
        from aegis.canonical import canonical_hash
        from aegis.ecosystems.go.resolve import binary_state, read_file

        install, directory = _location(plan)
        eco = plan.ecosystem
        signed = {f.name: f.after for f in eco.files} if eco else {}
        out: dict[str, Any] = {}
        if install:
            for c in plan.changes:
                out[c.name] = binary_state(Path(directory) / binary_name(c.name))
                out[f"{c.name}@signed"] = c.candidate_version
            return out
        for name in MODULE_FILES:
            try:
                text = read_file(Path(directory) / name)
            except (OSError, UnicodeDecodeError):
                text = "<unreadable>"
            out[name] = canonical_hash({"t": text}) if text is not None else None
            out[f"{name}@signed"] = canonical_hash({"t": signed.get(name)})
            if name == "go.mod":
                for c in plan.changes:
                    pattern = rf"(?m)^\s*(?:require\s+)?{re.escape(c.name)}\s+(\S+)"
                    found = re.search(pattern, text or "")
                    out[c.name] = found.group(1) if found else None
        return out

    def drift(
        self, before: InstalledState, after: InstalledState, targets: Sequence[ExactTarget]
    ) -> list[str]:
        """A file not the signed one, or a target not at its version afterwards."""
        out: list[str] = []
        for name in MODULE_FILES:
            if name in after and after.get(name) != after.get(f"{name}@signed"):
                out.append(f"{name}: not the signed file after the run")
        for t in targets:
            got: Any = after.get(t.name)
            if t.action is Action.REMOVE:
                if got is not None:
                    out.append(f"{t.name}: expected removed, found {got}")
            elif f"{t.name}@signed" in after:  # go install: the binary changed
                if got is None or got == before.get(t.name):
                    out.append(f"{t.name}: the binary was not installed")
            elif got != t.version:
                out.append(f"{t.name}: expected {t.version}, found {got}")
        return out

    def before_run(self, cfg: Config, plan: Plan) -> None:
        """Write the signed ``go.mod`` and ``go.sum`` (the module's, or the tool module's).

        Raises:
            EnvironmentFailure: the files cannot be written.
        """
        assert plan.ecosystem is not None
        install, directory = _location(plan)
        target = _go_dir(cfg) / "install" if install else Path(directory)
        try:
            if install:
                _safe_dir(target, 0o700)
            for f in plan.ecosystem.files:
                if f.name in MODULE_FILES:
                    _write(target, f.name, f.after)
        except OSError as e:
            raise EnvironmentFailure(f"cannot write the module files: {e}") from e

    def rules(self, generic: tuple[Rule, ...]) -> tuple[Rule, ...]:
        """:func:`aegis.ecosystems.go.rules.go_rules`."""
        from aegis.ecosystems.go.rules import go_rules

        return go_rules(generic)


GO = GoEcosystem()
