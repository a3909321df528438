"""Each ecosystem's own policy rules, reachable without loading the ecosystem itself.

The policy engine needs every ecosystem's rules (to evaluate a plan, and to check the
overrides of ``policy.toml``), but an ecosystem reaches up into the stages (apt plans
through the analyzer, images read the policy in force), so the engine cannot import
:func:`aegis.ecosystems.for_tool` without an import circle. The rule modules sit below
the engine (they import only ``aegis.policy.rules`` and their ecosystem's names); this
dispatch lists them. Each ecosystem's ``rules()`` returns the same rules (a unit test
compares the two for every tool).
"""

from __future__ import annotations

from typing import assert_never

from aegis.ecosystems.apt.rules import apt_rules
from aegis.ecosystems.cargo.rules import cargo_rules
from aegis.ecosystems.go.rules import go_rules
from aegis.ecosystems.image.rules import image_rules
from aegis.ecosystems.npm.rules import npm_rules
from aegis.ecosystems.pip.rules import pip_rules
from aegis.errors import InputError
from aegis.model import Tool
from aegis.policy.rules import Rule


def ecosystem_rules(tool: Tool, generic: tuple[Rule, ...]) -> tuple[Rule, ...]:
    """``generic`` plus the own rules of ``tool``'s ecosystem.

    Raises:
        InputError: not a tool this Aegis knows (fail closed, like ``for_tool``).
    """
    if not isinstance(tool, Tool):
        raise InputError(f"unknown package tool {str(tool)[:40]!r}: Aegis refuses it")
    match tool:
        case Tool.APT:
            return apt_rules(generic)
        case Tool.PIP:
            return pip_rules(generic)
        case Tool.NPM:
            return npm_rules(generic)
        case Tool.IMAGE:
            return image_rules(generic)
        case Tool.CARGO:
            return cargo_rules(generic)
        case Tool.GO:
            return go_rules(generic)
        case _:
            assert_never(tool)
