"""``[[registries]]`` in policy.toml: parsed strictly; approved by URL and ecosystem."""

from __future__ import annotations

import pytest

from aegis.devtools import policy_plans
from aegis.policy.config import PolicyConfigError, parse_policy_config


def _with(entry: str) -> str:
    return policy_plans.policy_toml() + "\n[[registries]]\n" + entry


def test_a_registry_entry_is_parsed_with_one_trailing_slash() -> None:
    cfg = parse_policy_config(_with('name = "pypi"\necosystem = "pip"\nurl = "https://x/simple"\n'))
    assert [(r.ecosystem, r.url) for r in cfg.registries] == [("pip", "https://x/simple/")]


@pytest.mark.parametrize(
    "entry",
    [
        'name = "x"\necosystem = "gem"\nurl = "https://x/"\n',
        'name = "x"\necosystem = "pip"\nurl = "file:///srv/simple/"\n',
        'name = "x"\necosystem = "pip"\nurl = "https://user:pw@x/simple/"\n',
        'name = "x"\necosystem = "pip"\nurl = "ftp://x/simple/"\n',
        'name = "x"\necosystem = "npm"\nurl = "https://x/"\nextra = 1\n',
        'ecosystem = "npm"\nurl = "https://x/"\n',
    ],
)
def test_bad_registry_entries_are_refused(entry: str) -> None:
    with pytest.raises(PolicyConfigError):
        parse_policy_config(_with(entry))
