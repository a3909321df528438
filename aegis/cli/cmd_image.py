"""``aegis docker|podman pull REF --plan`` and ``aegis container pull REF --runtime R --plan``.

Plans one image pull (read-only, ``skopeo inspect``; docs/ecosystems.md "Container images").
The registry comes from the reference itself: ``https://HOST/``, or ``http://HOST/`` when
policy's ``[[registries]]`` marks that loopback registry plain HTTP. A reference without a
digest is planned and denied (``image.tag-mutable``): ``--pin`` plans the digest the tag
names now instead (``REPO:TAG@sha256:...``, the tag kept so aegisd sees if it moves).
Without ``--plan`` the command is refused like every mutation-shaped command (exit 3).
"""

from __future__ import annotations

import click

from aegis.cli.planning_cli import target_command, verb_group

_VERBS = frozenset({"pull"})


_Group = verb_group(_VERBS, "image pulls", "{name} pull <image>")


_RefCommand = target_command("aegis.ecosystems.image.names:parse_reference")


def _plain_http(host: str) -> bool:
    """Does the policy in force mark this (loopback) registry plain HTTP?"""
    from aegis.config import load_config
    from aegis.ecosystems.image import plain_http

    return plain_http(load_config(), host)


def _pinned(ref_text: str, plain_http: bool) -> str:
    """``REPO:TAG@<digest the tag names now>`` (the manifest's own SHA-256)."""
    from aegis.ecosystems.image.names import parse_reference
    from aegis.ecosystems.image.resolve import _digest, _skopeo
    from aegis.errors import EnvironmentFailure

    ref = parse_reference(ref_text)
    if ref.digest:
        return ref.canonical
    got = _skopeo(f"{ref.repository}:{ref.tag}", plain_http)
    if not got.ok:
        raise EnvironmentFailure(f"cannot resolve {ref.canonical}: {got.error[:300]}")
    return f"{ref.canonical}@{_digest(got.data)}"


def plan_pull(runtime: str, reference: str, storage: str | None, *, pin: bool, plan: bool,
              as_json: bool) -> None:  # fmt: skip
    """Plan one pull and record it as a request (the three commands share this)."""
    from aegis.cli.render import refuse_direct_mutation
    from aegis.ecosystems.image.names import parse_reference, store_location

    ref = parse_reference(reference)
    store_location(runtime, storage)  # a bad runtime or --storage: exit 3 before anything
    if not plan:
        raise refuse_direct_mutation(f"{runtime} pull {reference}")
    target = _pinned(reference, _plain_http(ref.host)) if pin else ref.canonical

    from aegis.api_agent import plan_change
    from aegis.cli.render import PEOPLE
    from aegis.config import load_config

    # The same function as the MCP server's plan tool: one code path for both.
    out = plan_change(
        load_config(),
        "image",
        "install",
        (target,),
        where="docker" if runtime == "docker" else storage,
        preload=() if as_json else PEOPLE,
    )
    result, planned = out.extra["plan"], out.extra["planned"]
    if as_json:
        from aegis.cli.render import emit_json

        emit_json(out.doc)
    else:
        from aegis.cli.cmd_apt import render_plan
        from aegis.cli.render import print_line, print_path

        render_plan(result)
        image = result.ecosystem.image if result.ecosystem else None
        if image is not None:
            print_line(f"{image.reference} -> {image.digest} ({image.platform}, "
                       f"{len(image.layers)} layers, user {image.user or 'root'!r}, "
                       f"signature {image.signature})")  # fmt: skip
        print_line(f"into {result.intent.location} from {result.intent.registry}")
        click.echo(f"request: {planned.request_id}")
        print_path("plan", planned.plan_path)
    if out.error is not None:
        raise out.error


_HELP = (
    "Plan pulling an image (read-only: skopeo inspect); nothing runs until the plan is\n"
    "reviewed, decided, signed and applied by aegisd, which pulls by digest only.\n\n"
    "Example:\n\n  aegis {runtime} pull docker.io/library/nginx:1.27 --pin --plan"
)


def _pull_options(f: click.decorators.FC) -> click.decorators.FC:
    for deco in reversed((
        click.argument("reference"),
        click.option("--pin", is_flag=True, help="Plan the digest the tag names now."),
        click.option("--plan", "plan", is_flag=True, help="Required: only plan, never change."),
        click.option("--json", "as_json", is_flag=True, help="Print the plan as JSON."),
    )):  # fmt: skip
        f = deco(f)
    return f


@click.group("docker", cls=_Group, help=_HELP.format(runtime="docker"))
def docker_group() -> None:
    """Group docker's planning verb."""


@docker_group.command(
    "pull",
    cls=_RefCommand,
    help="Plan a docker pull (by digest).\n\nExample:\n\n"
    "  aegis docker pull nginx:1.27 --pin --plan",
)
@_pull_options
def docker_pull_cmd(reference: str, pin: bool, plan: bool, as_json: bool) -> None:
    """Plan a docker pull."""
    plan_pull("docker", reference, None, pin=pin, plan=plan, as_json=as_json)


@click.group("podman", cls=_Group, help=_HELP.format(runtime="podman"))
def podman_group() -> None:
    """Group podman's planning verb."""


_STORAGE = click.option(
    "--storage", "storage", default=None,
    help="podman's graph root (default /var/lib/containers/storage).",
)  # fmt: skip


@podman_group.command(
    "pull",
    cls=_RefCommand,
    help="Plan a podman pull (by digest).\n\nExample:\n\n"
    "  aegis podman pull nginx:1.27 --pin --plan",
)
@_pull_options
@_STORAGE
def podman_pull_cmd(reference: str, pin: bool, plan: bool, as_json: bool,
                    storage: str | None) -> None:  # fmt: skip
    """Plan a podman pull."""
    plan_pull("podman", reference, storage, pin=pin, plan=plan, as_json=as_json)


@click.group("container", cls=_Group, help=_HELP.format(runtime="container"))
def container_group() -> None:
    """Group the runtime-neutral planning verb."""


@container_group.command(
    "pull",
    cls=_RefCommand,
    help="Plan an image pull for a runtime.\n\nExample:\n\n"
    "  aegis container pull nginx:1.27 --runtime podman --pin --plan",
)
@_pull_options
@_STORAGE
@click.option("--runtime", type=click.Choice(["podman", "docker"]), default=None,
              help="Required: the runtime whose store takes the image.")  # fmt: skip
def container_pull_cmd(  # noqa: PLR0917 - click passes every option by keyword
    reference: str, pin: bool, plan: bool, as_json: bool, storage: str | None,
    runtime: str | None,
) -> None:  # fmt: skip
    """Plan an image pull."""
    from aegis.cli.render import refuse_direct_mutation
    from aegis.errors import InputError

    if not plan:  # the refusal first, as for every mutation-shaped command (exit 3)
        raise refuse_direct_mutation(f"container pull {reference}")
    if runtime is None:
        raise InputError("--runtime podman|docker is required: the store the image lands in")
    plan_pull(runtime, reference, storage, pin=pin, plan=plan, as_json=as_json)
