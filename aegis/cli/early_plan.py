"""Start npm's or pip's resolution for ``aegis npm|pip install ... --plan`` before click loads.

The plan mostly waits for the tool, and importing click, the seam and the plan model takes
about 0.1 s before the planner would start it. :func:`start` reads the words the same way
the ``install`` command's options do, checks them with the ecosystem's own grammars
(:mod:`aegis.early`) and starts the tool exactly as the planner would, into
:mod:`aegis.early.slot`. It only ever speeds up the normal path, never replaces it: the
command then parses its arguments with click as always, and the planner claims the tool
only with the exact key it would start its own with; anything else kills it
(docs/ecosystems.md). Any word it does not expect (``--global``, ``--target``,
``--managed``, ``--help``, ``--``, an unknown option, a bad target or place) means no
early start at all.
"""

from __future__ import annotations

import os

_VALUES = {
    "npm": ("--project", "--registry"),
    "pip": ("--venv", "--index-url"),
}
_FLAGS = ("--plan", "--json")


def _words(ecosystem: str, args: list[str]) -> tuple[dict[str, str], list[str]] | None:
    """(option -> last value, targets), or None for anything but the plainest form."""
    takes = _VALUES[ecosystem]
    options: dict[str, str] = {}
    targets: list[str] = []
    flags: set[str] = set()
    i = 0
    while i < len(args):
        word = args[i]
        name, eq, value = word.partition("=")
        if name in takes:
            if not eq:
                if i + 1 >= len(args):
                    return None
                i, value = i + 1, args[i + 1]
            options[name] = value
        elif word in _FLAGS:
            flags.add(word)
        elif word.startswith("-"):
            return None
        else:
            targets.append(word)
        i += 1
    return (options, targets) if "--plan" in flags and targets else None


def start(ecosystem: str, args: list[str]) -> None:
    """Start the tool for ``aegis ECOSYSTEM install ARGS`` when they are plain; else nothing."""
    try:
        words = _words(ecosystem, args)
        if words is not None:
            (_npm if ecosystem == "npm" else _pip)(*words)
    except Exception:  # noqa: S110 - only an optimisation: the normal path checks and reports
        pass


def _npm(options: dict[str, str], targets: list[str]) -> None:
    from pathlib import Path

    from aegis.early import slot
    from aegis.early.npm_names import DEFAULT_REGISTRY, check_targets, project_dir, project_location
    from aegis.early.npm_tool import Resolution
    from aegis.early.pip_names import check_index_url

    if "--project" not in options:
        return
    check_targets(tuple(targets))
    registry = check_index_url(options.get("--registry") or DEFAULT_REGISTRY)
    location = project_location(os.path.abspath(options["--project"]))
    key = ("npm", location, registry, tuple(targets), ())
    slot.put(key, Resolution(Path(project_dir(location)), registry, tuple(targets), {}))


def _pip(options: dict[str, str], targets: list[str]) -> None:
    from aegis.early import slot
    from aegis.early.pip_names import (
        DEFAULT_INDEX,
        check_index_url,
        check_targets,
        location_dir,
        pip_head,
        venv_location,
    )
    from aegis.early.pip_tool import PipRun, dry_run_argv

    if "--venv" not in options:
        return
    check_targets(tuple(targets))
    index = check_index_url(options.get("--index-url") or DEFAULT_INDEX)
    location = venv_location(os.path.abspath(options["--venv"]))
    argv = dry_run_argv(location_dir(location), index, tuple(targets), head=pip_head(location))
    slot.put(("pip", argv), PipRun(argv))
