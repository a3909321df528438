"""Container images behind the ecosystem seam: ``docker``/``podman pull`` (docs/ecosystems.md).

Planned with ``skopeo inspect`` (:mod:`aegis.ecosystems.image.resolve`), never touching a
container store. The argv pulls by digest only (``podman pull REPOSITORY@sha256:...``); a
plan whose reference has no digest derives no argv at all, and policy denies it
(``image.tag-mutable``): ``--pin`` plans the tag's current digest instead. aegisd re-inspects
before the run (a moved tag or a vanished manifest is a re-derivation refusal), pulls, then
checks the store holds the planned digest as the planned image id (the config digest). The
repository's images in the store before the pull are recorded as ``previous_images``: the
rollback is one of those digests, still in the store (a pull by digest moves no tag).
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import datetime
from typing import TYPE_CHECKING

from aegis.ecosystems.image.names import (
    DEFAULT_STORES,
    check_targets,
    is_loopback,
    parse_reference,
    registry_url,
    split_location,
    store_location,
)
from aegis.ecosystems.interface import Planning
from aegis.errors import EnvironmentFailure, InputError
from aegis.model import Action, Intent, Plan, Tool

if TYPE_CHECKING:
    from aegis.config import Config
    from aegis.ecosystems.interface import InstalledState
    from aegis.policy.rules import Rule
    from aegis.sign.execution_plan import ExactTarget

PODMAN = "/usr/bin/podman"
DOCKER = "/usr/bin/docker"
STORE_TIMEOUT_S = 120.0


RUNROOTS = "/run/aegis-podman"


def runroot_for(root: str) -> str:
    """The podman run root for a graph root that is not the system's own. Pure.

    One per graph root, so its locks and mount state never mix with /run/containers/storage;
    under root-only ``/run`` (never /tmp), and short: podman refuses a run root longer than
    50 characters, which a path under a relocated ``AEGIS_HOME`` easily is.
    """
    return f"{RUNROOTS}/{hashlib.sha256(root.encode()).hexdigest()[:16]}"


def runtime_prefix(cfg: Config, location: str | None) -> tuple[str, ...]:
    """The runtime's argv up to its verb, store options included. Pure.

    Raises:
        InputError: an unsupported location.
    """
    runtime, path = split_location(location)
    if runtime == "docker":
        # Only the daemon aegisd's own configuration names (an agent picks no socket), and
        # named explicitly: no DOCKER_HOST or docker context of root's redirects the pull.
        if path != cfg.docker_socket:
            raise InputError(f"docker socket {path[:100]!r} is not the configured docker_socket")
        return (DOCKER, "-H", f"unix://{path}")
    if path == DEFAULT_STORES["podman"]:
        return (PODMAN,)
    return (PODMAN, "--root", path, "--runroot", runroot_for(path))


def _pull_ref(plan: Plan) -> str | None:
    eco = plan.ecosystem
    if plan.failure is not None or eco is None or eco.image is None or not plan.changes:
        return None
    try:
        (ref,) = check_targets(plan.intent.targets)
    except InputError:
        return None
    if not ref.digest or ref.digest != eco.image.digest:
        return None  # a mutable tag is never applied, whatever policy says
    return ref.by_digest(ref.digest)


def plain_http(cfg: Config, host: str) -> bool:
    """Does the policy in force mark this (loopback) registry plain HTTP?"""
    from aegis.policy.config import PolicyConfig
    from aegis.policy.run import load_policy

    policy = load_policy(cfg)
    if not isinstance(policy, PolicyConfig):
        return False
    return any(r.ecosystem == "image" and r.url.startswith(f"http://{host}/")
               for r in policy.registries)  # fmt: skip


class ImageEcosystem:
    """Container images into a podman store (or docker's daemon)."""

    tool = Tool.IMAGE
    planning = Planning(
        verbs={"install": True},
        where="--storage DIR, a podman graph root (default: the system's store), or "
        "'docker' for the docker daemon aegisd is configured with; the registry comes "
        "from the reference, pin it as REPO@sha256:DIGEST",
    )

    def check_targets(self, targets: Sequence[str]) -> None:
        """The strict grammar of :mod:`aegis.ecosystems.image.names`."""
        check_targets(tuple(targets))

    def place(
        self, cfg: Config, targets: Sequence[str], where: str | None, registry: str | None
    ) -> tuple[str | None, str | None]:
        """A podman store (or ``docker``: the daemon's), and the registry the reference names."""
        ref = parse_reference(targets[0])
        location = store_location("docker", None) if where == "docker" else (
            store_location("podman", where))  # fmt: skip
        return location, registry_url(ref, plain_http(cfg, ref.host))

    def plan(
        self, cfg: Config, intent: Intent, now: datetime, *, inspect_contents: bool = True
    ) -> Plan:
        """:func:`aegis.ecosystems.image.resolve.plan_image`."""
        from aegis.ecosystems.image.resolve import plan_image

        plan = plan_image(cfg, intent, now)
        return replace(plan, command_preview=self.derive_argv(plan, cfg))

    def derive_argv(self, plan: Plan, cfg: Config) -> tuple[str, ...]:
        """``podman pull REPOSITORY@sha256:...``; ``()`` for a tag or anything off."""
        ref = _pull_ref(plan)
        if ref is None:
            return ()
        try:
            prefix = runtime_prefix(cfg, plan.intent.location)
        except InputError:
            return ()
        (ref_parsed,) = check_targets(plan.intent.targets)
        # Plain HTTP only to a loopback registry the plan names http:// (policy approved it).
        plain = plan.intent.registry == f"http://{ref_parsed.host}/" and is_loopback(
            ref_parsed.hostname
        )
        if prefix[0] == DOCKER:
            # docker has no per-pull TLS switch: it speaks plain HTTP to loopback registries
            # by itself, and to no other unless its daemon is configured so (not Aegis's).
            return (*prefix, "pull", "--quiet", ref)
        return (*prefix, "pull", "--quiet", f"--tls-verify={'false' if plain else 'true'}", ref)

    def exact_targets(self, plan: Plan) -> tuple[ExactTarget, ...]:
        """The image at its digest."""
        from aegis.sign.execution_plan import derive_targets

        return derive_targets(plan)

    def preflight(self, cfg: Config, plan: Plan, env: Mapping[str, str]) -> str | None:
        """The runtime must be installed (and docker's daemon socket present)."""
        runtime, path = split_location(plan.intent.location)
        binary = DOCKER if runtime == "docker" else PODMAN
        if not os.access(binary, os.X_OK):
            return f"{binary} is not installed"
        if runtime == "docker" and not os.path.exists(path):
            return f"no docker daemon at {path}"
        return None

    def installed_state(self, cfg: Config, plan: Plan, env: Mapping[str, str]) -> InstalledState:
        """``repository@digest`` -> image id, for the plan's repository only.

        Raises:
            EnvironmentFailure: the runtime could not list its images.
        """
        (ref,) = check_targets(plan.intent.targets)
        prefix = runtime_prefix(cfg, plan.intent.location)
        argv = (*prefix, "images", "--no-trunc", "--digests", "--format", "json")
        if prefix[0] == DOCKER:
            argv = (*prefix, "images", "--no-trunc", "--digests", "--format", "{{json .}}")
        try:
            proc = subprocess.run(argv, env=dict(env), capture_output=True, check=False,
                                  timeout=STORE_TIMEOUT_S, stdin=subprocess.DEVNULL)  # fmt: skip
        except (OSError, subprocess.TimeoutExpired) as e:
            raise EnvironmentFailure(f"cannot list the images: {e}") from e
        if proc.returncode != 0:
            raise EnvironmentFailure(
                "cannot list the images: " + proc.stderr[-500:].decode("utf-8", "replace")
            )
        return _images(proc.stdout, ref.repository)

    def drift(
        self, before: InstalledState, after: InstalledState, targets: Sequence[ExactTarget]
    ) -> list[str]:
        """The planned digest missing afterwards, or stored as another image id."""
        out: list[str] = []
        for t in targets:
            if t.action is Action.REMOVE:
                continue
            key = f"{t.name}@{t.version}"
            if key not in after:
                out.append(f"{key}: not in the store after the pull")
            elif t.sha256 and after[key] != f"sha256:{t.sha256}":
                out.append(f"{key}: stored as image {after[key]}, planned sha256:{t.sha256}")
        for key in sorted(set(after) - set(before)):
            if not any(key == f"{t.name}@{t.version}" for t in targets):
                out.append(f"{key}: appeared, not in the plan")
        return out

    def before_run(self, cfg: Config, plan: Plan) -> None:
        """Nothing to write: the argv names the digest."""

    def rules(self, generic: tuple[Rule, ...]) -> tuple[Rule, ...]:
        """:func:`aegis.ecosystems.image.rules.image_rules`."""
        from aegis.ecosystems.image.rules import image_rules

        return image_rules(generic)


def _images(raw: bytes, repository: str) -> dict[str, object]:
    """Parse podman's JSON array (or docker's JSON lines) strictly enough; bounded."""
    text = raw[: 64 * 1024 * 1024].decode("utf-8", "replace").strip()
    try:
        rows = json.loads(text) if text.startswith("[") else [
            json.loads(line) for line in text.splitlines() if line.strip()]  # fmt: skip
    except ValueError as e:
        raise EnvironmentFailure(f"unreadable image list: {e}") from e
    out: dict[str, object] = {}
    for row in rows if isinstance(rows, list) else []:
        if not isinstance(row, dict):
            continue
        image_id = str(row.get("Id") or row.get("ID") or "")
        image_id = image_id if image_id.startswith("sha256:") else "sha256:" + image_id
        digests = row.get("RepoDigests") or []
        if row.get("Repository") and row.get("Digest"):  # docker's one row per name
            digests = [f"{row['Repository']}@{row['Digest']}"]
        for d in digests if isinstance(digests, list) else []:
            repo, _, digest = str(d).rpartition("@")
            try:
                # The same normalisation as plans (docker prints Hub names short: "nginx").
                name = parse_reference(repo).repository
            except InputError:
                continue
            if name == repository and digest.startswith("sha256:"):
                out[f"{name}@{digest}"] = image_id
    return out


IMAGE = ImageEcosystem()
