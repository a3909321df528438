"""Package ecosystems behind one seam (:mod:`aegis.ecosystems.interface`).

:func:`for_tool` is the one dispatch from a plan's ``intent.tool`` to its ecosystem. It is
exhaustive (mypy checks ``assert_never``); a tool this Aegis does not know never gets this
far, because :class:`aegis.model.Tool` parses strictly, and :func:`for_tool` raises
:class:`InputError` for anything else, so aegisd refuses and the policy engine denies
(``ecosystem.unsupported``). Adding an ecosystem: docs/ecosystems.md.
"""

from __future__ import annotations

from typing import assert_never

from aegis.ecosystems.interface import Ecosystem
from aegis.errors import InputError
from aegis.model import Tool

__all__ = ["Ecosystem", "for_tool"]


def for_tool(tool: Tool) -> Ecosystem:
    """The ecosystem that plans, derives and applies changes for ``tool``.

    Raises:
        InputError: not a tool this Aegis knows (fail closed).
    """
    if not isinstance(tool, Tool):
        raise InputError(f"unknown package tool {str(tool)[:40]!r}: Aegis refuses it")
    match tool:
        case Tool.APT:
            from aegis.ecosystems.apt import APT

            return APT
        case Tool.PIP:
            from aegis.ecosystems.pip import PIP

            return PIP
        case Tool.NPM:
            from aegis.ecosystems.npm import NPM

            return NPM
        case Tool.IMAGE:
            from aegis.ecosystems.image import IMAGE

            return IMAGE
        case Tool.CARGO:
            from aegis.ecosystems.cargo import CARGO

            return CARGO
        case Tool.GO:
            from aegis.ecosystems.go import GO

            return GO
        case _:
            assert_never(tool)
