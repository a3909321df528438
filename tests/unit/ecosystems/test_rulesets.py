"""The engine's list of ecosystem rules agrees with each ecosystem's own ``rules()``."""

from __future__ import annotations

import pytest

from aegis.ecosystems import for_tool
from aegis.ecosystems.rulesets import ecosystem_rules
from aegis.errors import InputError
from aegis.model import Tool
from aegis.policy.ruleset import default_rules


@pytest.mark.parametrize("tool", list(Tool))
def test_each_tool_gets_the_rules_its_ecosystem_names(tool: Tool) -> None:
    generic = default_rules()
    assert ecosystem_rules(tool, generic) == for_tool(tool).rules(generic)


def test_an_unknown_tool_is_refused() -> None:
    with pytest.raises(InputError, match="unknown package tool"):
        ecosystem_rules("dnf", ())  # type: ignore[arg-type]
