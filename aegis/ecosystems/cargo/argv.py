"""The argv aegisd runs for a cargo plan, and the private directory it runs in.

Derived from the plan's parts, so that the planner can fill ``command_preview`` while it
builds the plan (one record, not a second copy made by ``dataclasses.replace``) and the
executor derives the same argv from a signed plan.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from aegis.ecosystems.cargo.names import root_dir
from aegis.errors import InputError
from aegis.model import Action, AnalysisFailure, EcosystemEvidence, Intent, PackageChange

if TYPE_CHECKING:
    from aegis.config import Config

ENV = "/usr/bin/env"
SHA256_HEX = 64


def work_dir(cfg: Config) -> Path:
    """The root-only cargo directory of aegisd: the private CARGO_HOME and local registry."""
    return cfg.aegisd_dir / "cargo"


def _prefix(cfg: Config) -> tuple[str, ...]:
    work = work_dir(cfg)
    path = f"{os.path.dirname(cfg.cargo)}:/usr/bin:/bin"
    return (ENV, "-i", "-C", str(work), f"PATH={path}", f"CARGO_HOME={work / 'home'}",
            "LANG=C", cfg.cargo)  # fmt: skip


def cargo_argv(
    cfg: Config,
    intent: Intent,
    failure: AnalysisFailure | None,
    changes: Sequence[PackageChange],
    eco: EcosystemEvidence | None,
) -> tuple[str, ...]:
    """``cargo install --locked --offline`` of the exact version; ``()`` when off."""
    if failure is not None or eco is None or len(changes) != 1:
        return ()
    try:
        root = root_dir(intent.location)
    except InputError:
        return ()
    change = changes[0]
    if root != str(cfg.cargo_root):
        return ()
    if change.action is Action.REMOVE:
        return (*_prefix(cfg), "uninstall", "--root", root, "--", change.name)
    if not eco.artifacts or any(len(a.sha256) != SHA256_HEX for a in eco.artifacts):
        return ()
    top = eco.artifacts[0]
    if not top.requested or top.name != change.name or top.version != change.candidate_version:
        return ()
    return (*_prefix(cfg), "install", "--locked", "--offline", "--root", root,
            "--version", top.version, "--", top.name)  # fmt: skip
