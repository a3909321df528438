"""The guard's ``NamedTuple`` stand-in builds what :class:`typing.NamedTuple` builds."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import NamedTuple as TypingNamedTuple

import pytest

from aegis.guard.tuples import NamedTuple

REPO = Path(__file__).resolve().parents[3]


class Ours(NamedTuple):
    """A record."""

    name: str
    count: int = 0
    tags: frozenset[str] = frozenset()

    @property
    def empty(self) -> bool:
        return not self.count


class Theirs(TypingNamedTuple):
    name: str
    count: int = 0
    tags: frozenset[str] = frozenset()


def test_same_fields_defaults_methods_and_tuple_behaviour() -> None:
    assert Ours._fields == Theirs._fields
    assert Ours._field_defaults == Theirs._field_defaults
    a = Ours("x")
    assert a == ("x", 0, frozenset()) == Theirs("x")
    assert a.empty
    assert a._replace(count=2).count == 2
    assert hash(a) == hash(Theirs("x"))
    assert Ours.__doc__ == "A record."
    assert Ours.__qualname__ == "Ours"
    assert repr(a) == "Ours(name='x', count=0, tags=frozenset())"
    with pytest.raises(AttributeError):
        a.other = 1  # type: ignore[attr-defined]


def test_a_field_without_default_after_one_with_is_refused() -> None:
    with pytest.raises(TypeError, match="without a default"):

        class Bad(NamedTuple):
            a: int = 0
            b: int


def test_the_hook_path_loads_none_of_the_costly_modules() -> None:
    code = (
        "import sys\n"
        "from aegis.guard.hooks import respond\n"
        'respond(\'claude-code\', b\'{"tool_name": "Bash", "tool_input": '
        '{"command": "sudo apt-get install -y x | cat"}}\')\n'
        "print(sorted(m for m in ('typing', 'threading', 'inspect', 'contextlib', 'signal') "
        "if m in sys.modules))\n"
    )
    out = subprocess.run(
        [sys.executable, "-I", "-c", code], capture_output=True, text=True, check=True, cwd=REPO
    )
    assert out.stdout.strip() == "[]"
