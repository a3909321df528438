"""The click classes every ecosystem's planning command shares.

``aegis npm|pip|go|cargo|docker|podman|container``: a group that refuses the verbs Aegis
cannot plan as a direct mutation (exit 3), and a command for which an option-shaped
target is a bad target (exit 3) rather than a usage error: ``aegis npm install
--registry=http://evil/ x`` is refused by the ecosystem's own grammar.

Example:
    >>> _NpmGroup = verb_group(frozenset({"install"}), "npm install", "npm install <package>")
"""

from __future__ import annotations

import importlib
from collections.abc import Callable

import click


def verb_group(verbs: frozenset[str], planned: str, example: str) -> type[click.Group]:
    """A group refusing every verb outside ``verbs``; ``example`` may name ``{name}``."""

    class _VerbGroup(click.Group):
        def resolve_command(
            self, ctx: click.Context, args: list[str]
        ) -> tuple[str | None, click.Command | None, list[str]]:
            if args and args[0] not in verbs and not args[0].startswith("-"):
                from aegis.cli.render import PLAN_FLOW, DirectMutationRefusedError
                from aegis.text import inert

                name = self.name or "?"
                raise DirectMutationRefusedError(
                    f"refusing to run 'aegis {name} {inert(' '.join(args), max_chars=200)}': "
                    f"Aegis never mutates directly, and it plans only {planned}",
                    hint=PLAN_FLOW.format(example=example.format(name=name)),
                )
            return super().resolve_command(ctx, args)

    _VerbGroup.__doc__ = f"Refuses verbs other than {', '.join(sorted(verbs))} with exit 3."
    return _VerbGroup


def target_command(checker: str) -> type[click.Command]:
    """A command whose option-shaped words not among its options go to ``checker``.

    ``checker`` is ``module:function``, imported only when such a word is seen (the CLI's
    start-up stays lazy); it raises InputError (exit 3) for a bad target.
    """

    class _TargetCommand(click.Command):
        def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
            known = {o for p in self.get_params(ctx) for o in (*p.opts, *p.secondary_opts)}
            for arg in args:
                if arg == "--":
                    break
                if arg.startswith("-") and arg.split("=", 1)[0] not in known:
                    _load(checker)(arg)
            return super().parse_args(ctx, args)

    return _TargetCommand


def _load(path: str) -> Callable[[str], object]:
    module, _, name = path.partition(":")
    check: Callable[[str], object] = getattr(importlib.import_module(module), name)
    return check
