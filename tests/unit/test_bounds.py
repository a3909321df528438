"""The shared id grammars refuse what ``^...$`` used to let through."""

from __future__ import annotations

import re

import pytest

from aegis.bounds import EXECUTION_ID_RE, HEX64_RE


@pytest.mark.parametrize(("grammar", "good"), [(HEX64_RE, "ab" * 32), (EXECUTION_ID_RE, "cd" * 16)])
def test_one_exact_id_and_nothing_around_it(grammar: re.Pattern[str], good: str) -> None:
    assert grammar.match(good)
    for bad in (good + "\n", good.upper(), good[:-1], good + "0", " " + good, good[:-1] + "g"):
        assert grammar.match(bad) is None
