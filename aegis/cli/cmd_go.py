"""``aegis go get|install ... --plan``: plan a Go change (read-only).

``go get MODULE[@VERSION] --module DIR`` plans the change to that module's ``go.mod`` and
``go.sum``; ``go install PACKAGE@VERSION`` plans a binary into the Aegis-managed GOBIN
(``/var/lib/aegis/go/bin``). The source is ``--proxy URL`` (GOPROXY for this plan, default
``https://proxy.golang.org/``, ``file:///dir`` allowed), approved in policy's
``[[registries]]``. Bad targets (options, URLs, paths, lookalikes) are refused (exit 3)
before anything runs; without ``--plan`` the command is refused like every mutation-shaped
command (docs/ecosystems.md "Go").
"""

from __future__ import annotations

import os
from datetime import UTC, datetime

import click

from aegis.cli.planning_cli import target_command, verb_group

_VERBS = frozenset({"get", "install"})
_CALLER_KEYS = ("GOSUMDB", "GONOSUMDB", "GONOSUMCHECK", "GOPRIVATE", "GOINSECURE", "GOFLAGS",
                "GOPROXY")  # fmt: skip


_GoGroup = verb_group(_VERBS, "go get and go install", "go get <module>@<version> --module DIR")


_TargetCommand = target_command("aegis.ecosystems.go.names:split_target")


@click.group(
    "go",
    cls=_GoGroup,
    help=(
        "Plan Go module changes (read-only); nothing runs until the plan is\n"
        "reviewed, decided, signed and applied by aegisd.\n\n"
        "Examples:\n\n"
        "  aegis go get golang.org/x/text@v0.14.0 --module /srv/app --plan\n\n"
        "  aegis go install golang.org/x/tools/cmd/stringer@v0.20.0 --plan"
    ),
)
def go_group() -> None:
    """Group the Go planning verbs; the help text is set on the decorator."""


def _ignored_caller_settings() -> list[str]:
    """The caller's Go settings planning ignores (it pins its own), to say so."""
    return [f"{k}={os.environ[k][:80]}" for k in _CALLER_KEYS if os.environ.get(k)]


def _user() -> str:
    """As ``aegis.api.current_user`` (``user`` or ``uid:N``), without importing the store."""
    import pwd

    try:
        return pwd.getpwuid(os.getuid()).pw_name
    except KeyError:
        return f"uid:{os.getuid()}"


def _submit(targets: tuple[str, ...], location: str, proxy: str, as_json: bool) -> None:
    from concurrent.futures import ThreadPoolExecutor

    from aegis.config import load_config
    from aegis.ecosystems import for_tool
    from aegis.model import Intent, Operation, Tool, plan_to_dict

    cfg = load_config()
    now = datetime.now(UTC)
    if location == "gobin:":
        from aegis.ecosystems.go.names import gobin_dir

        location = "gobin:" + gobin_dir(cfg)
    intent = Intent(tool=Tool.GO, operation=Operation.INSTALL, targets=targets,
                    requested_by=_user(), requested_at=now.strftime("%Y-%m-%dT%H:%M:%SZ"),
                    location=location, registry=proxy)  # fmt: skip
    with ThreadPoolExecutor(max_workers=1) as pool:
        # go resolves (another process) while this one imports the store and the renderer.
        future = pool.submit(for_tool(Tool.GO).plan, cfg, intent, now)
        from aegis import api
        from aegis.api_agent import analysis_failed_error
        from aegis.cli.cmd_apt import render_plan

        result = future.result()
    planned = api.submit_plan(cfg, result, api.current_user())
    if as_json:
        from aegis.cli.render import emit_json

        emit_json({"plan": plan_to_dict(result), "plan_path": str(planned.plan_path),
                   "plan_hash": planned.plan_hash, "request_id": planned.request_id})  # fmt: skip
    else:
        from aegis.cli.render import print_line, print_path

        render_plan(result)
        print_line(f"into {location} from {proxy}")
        ignored = _ignored_caller_settings()
        if ignored:
            print_line(f"ignored (the plan pins its own): {', '.join(ignored)}")
        click.echo(f"request: {planned.request_id}")
        print_path("plan", planned.plan_path)
    if result.failure is not None:
        raise analysis_failed_error(result, planned.request_id)


_PROXY_HELP = "GOPROXY for this plan: one URL (https, http or file:///dir)."


@go_group.command(
    "get",
    cls=_TargetCommand,
    help="Plan a change to a module's go.mod and go.sum.\n\nExample:\n\n"
    "  aegis go get golang.org/x/text@v0.14.0 --module /srv/app --plan",
)
@click.argument("modules", nargs=-1, required=True)
@click.option("--module", "module", default=None, help="Required: the module directory.")
@click.option("--proxy", "proxy", default=None, help=_PROXY_HELP)
@click.option("--plan", "plan", is_flag=True, help="Required: only plan, never change.")
@click.option("--json", "as_json", is_flag=True, help="Print the plan and its path as JSON.")
def get_cmd(
    modules: tuple[str, ...], module: str | None, proxy: str | None, plan: bool, as_json: bool
) -> None:
    """Plan a go get."""
    from aegis.cli.render import refuse_direct_mutation
    from aegis.ecosystems.go.names import DEFAULT_PROXY, check_proxy_url, check_targets
    from aegis.errors import InputError

    check_targets(modules)
    url = check_proxy_url(proxy or DEFAULT_PROXY)
    if not plan:
        raise refuse_direct_mutation("go get " + " ".join(modules))
    if module is None:
        raise InputError("go get changes a module: --module DIR is required",
                         hint="the directory holding go.mod")  # fmt: skip
    from aegis.ecosystems.go.names import module_location

    _submit(modules, module_location(module), url, as_json)


@go_group.command(
    "install",
    cls=_TargetCommand,
    help="Plan a binary into the Aegis-managed GOBIN (/var/lib/aegis/go/bin).\n\nExample:\n\n"
    "  aegis go install golang.org/x/tools/cmd/stringer@v0.20.0 --plan",
)
@click.argument("packages", nargs=-1, required=True)
@click.option("--proxy", "proxy", default=None, help=_PROXY_HELP)
@click.option("--plan", "plan", is_flag=True, help="Required: only plan, never change.")
@click.option("--json", "as_json", is_flag=True, help="Print the plan and its path as JSON.")
def install_cmd(packages: tuple[str, ...], proxy: str | None, plan: bool, as_json: bool) -> None:
    """Plan a go install."""
    from aegis.cli.render import refuse_direct_mutation
    from aegis.ecosystems.go.names import DEFAULT_PROXY, check_proxy_url, check_targets

    check_targets(packages, install=True)
    url = check_proxy_url(proxy or DEFAULT_PROXY)
    if not plan:
        raise refuse_direct_mutation("go install " + " ".join(packages))
    _submit(packages, "gobin:", url, as_json)
