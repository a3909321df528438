"""Cargo behind the ecosystem seam: crate binaries into an Aegis-managed root (docs/ecosystems.md).

Planned read-only from the registry's index and the ``.crate`` files (no cargo resolver, no
crate code). aegisd re-plans, then (after ``started`` is recorded) builds a private local
registry in its own directory holding exactly the signed crates, each checked against the
signed cksum, and runs ``cargo install --locked --offline`` against it with a private
``CARGO_HOME`` whose only configuration points crates.io at that registry. The argv starts
with ``/usr/bin/env -i`` so that cargo sees no inherited environment and no user config.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import stat
from collections.abc import Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aegis.ecosystems.cargo.argv import cargo_argv, work_dir
from aegis.ecosystems.cargo.names import check_targets as _check_targets
from aegis.ecosystems.cargo.names import root_dir
from aegis.ecosystems.interface import Planning
from aegis.errors import EnvironmentFailure, InputError
from aegis.model import Action, Intent, Plan, Tool

if TYPE_CHECKING:
    from aegis.config import Config
    from aegis.ecosystems.interface import InstalledState
    from aegis.policy.rules import Rule
    from aegis.sign.execution_plan import ExactTarget

SOURCE_NAME = "aegis-plan"


def cargo_config(cfg: Config) -> str:
    """The private CARGO_HOME's config: crates.io replaced by the plan's crates, offline."""
    registry = work_dir(cfg) / "registry"
    return (f'[source.crates-io]\nreplace-with = "{SOURCE_NAME}"\n\n'
            f'[source.{SOURCE_NAME}]\nlocal-registry = "{registry}"\n\n'
            "[net]\noffline = true\n")  # fmt: skip


class CargoEcosystem:
    """Cargo crate binaries into the Aegis-managed root."""

    tool = Tool.CARGO
    planning = Planning(
        verbs={"install": True},
        registry="--registry-dir DIR (a cargo local registry) or --index URL (a sparse "
        "index); required",
    )

    def check_targets(self, targets: Sequence[str]) -> None:
        """The strict grammar of :mod:`aegis.ecosystems.cargo.names`."""
        _check_targets(tuple(targets))

    def place(
        self, cfg: Config, targets: Sequence[str], where: str | None, registry: str | None
    ) -> tuple[str | None, str | None]:
        """The managed root, and the source: a local registry's directory or an index URL."""
        from aegis.ecosystems.cargo.names import index_url, registry_dir_url, root_location

        if registry is None:
            raise InputError(
                "name one source: --registry-dir DIR (a local registry) or --index URL",
                hint="the source must be a cargo entry in policy's [[registries]]",
            )
        url = index_url(registry) if "://" in registry else registry_dir_url(registry)
        return root_location(str(cfg.cargo_root)), url

    def plan(
        self, cfg: Config, intent: Intent, now: datetime, *, inspect_contents: bool = True
    ) -> Plan:
        """:func:`aegis.ecosystems.cargo.resolve.plan_cargo` (its argv filled as it is built)."""
        from aegis.ecosystems.cargo.resolve import plan_cargo

        return plan_cargo(cfg, intent, now)

    def derive_argv(self, plan: Plan, cfg: Config) -> tuple[str, ...]:
        """:func:`aegis.ecosystems.cargo.argv.cargo_argv` of the plan's parts."""
        return cargo_argv(cfg, plan.intent, plan.failure, plan.changes, plan.ecosystem)

    def exact_targets(self, plan: Plan) -> tuple[ExactTarget, ...]:
        """The change at its exact version, bound to the crate's cksum."""
        from aegis.sign.execution_plan import derive_targets

        return derive_targets(plan)

    def preflight(self, cfg: Config, plan: Plan, env: Mapping[str, str]) -> str | None:
        """The managed root is a real directory (or not there yet)."""
        root = Path(root_dir(plan.intent.location))
        try:
            st = root.lstat()
        except FileNotFoundError:
            return None
        if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.geteuid():
            return f"{root} is not a directory owned by aegisd's user"
        return None

    def installed_state(self, cfg: Config, plan: Plan, env: Mapping[str, str]) -> InstalledState:
        """Crate -> version, from cargo's tracking file in the root."""
        from aegis.ecosystems.cargo.resolve import read_installed

        return read_installed(root_dir(plan.intent.location))

    def drift(
        self, before: InstalledState, after: InstalledState, targets: Sequence[ExactTarget]
    ) -> list[str]:
        """A target not at its version afterwards, or another installed crate changed."""
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
        """Build the private CARGO_HOME and a local registry of exactly the signed crates.

        Each crate and its index line are read again from the plan's source and must carry
        the signed cksum; a moved one fails the run before cargo starts.

        Raises:
            EnvironmentFailure: the source moved or cannot be read, or the directory written.
        """
        from aegis.ecosystems.cargo.source import Source, SourceError, index_path, parse_index

        work = work_dir(cfg)
        try:
            if work.exists():
                shutil.rmtree(work)
            (work / "home").mkdir(parents=True, mode=0o700)
            (work / "home" / "config.toml").write_text(cargo_config(cfg))
            (work / "registry" / "index").mkdir(parents=True, mode=0o700)
        except OSError as e:
            raise EnvironmentFailure(f"cannot prepare {work}: {e}") from e
        eco = plan.ecosystem
        if eco is None or plan.changes[0].action is Action.REMOVE:
            return
        src = Source(plan.intent.registry or "")
        lines: dict[str, list[bytes]] = {}
        try:
            for a in eco.artifacts:
                found = [e for e in parse_index(src.index_file(a.name) or b"", a.name)
                         if e.version == a.version]  # fmt: skip
                if not found or found[0].cksum != a.sha256:
                    raise EnvironmentFailure(f"{a.name} {a.version}: the index cksum moved")
                data = src.crate(a.name, a.version)
                if hashlib.sha256(data).hexdigest() != a.sha256:
                    raise EnvironmentFailure(f"{a.name}-{a.version}.crate: cksum mismatch")
                (work / "registry" / f"{a.name}-{a.version}.crate").write_bytes(data)
                lines.setdefault(a.name, []).append(found[0].line)
            for name, got in lines.items():
                path = work / "registry" / "index" / index_path(name)
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(b"".join(x + b"\n" for x in got))
        except (SourceError, OSError) as e:
            raise EnvironmentFailure(f"cannot stage the signed crates: {e}") from e

    def rules(self, generic: tuple[Rule, ...]) -> tuple[Rule, ...]:
        """:func:`aegis.ecosystems.cargo.rules.cargo_rules`."""
        from aegis.ecosystems.cargo.rules import cargo_rules

        return cargo_rules(generic)


CARGO = CargoEcosystem()
