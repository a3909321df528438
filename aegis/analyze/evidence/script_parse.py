r"""Maintainer scripts parsed as shell: bashlex, bounded, with ``case`` supported.

bashlex 0.18 has the grammar of ``case ... esac`` but its actions raise
``NotImplementedError``; nearly every maintainer script is one ``case "$1" in``.
:func:`parse_script` binds actions that build the statement as a ``compound`` node
(``case``, the word, ``in``, then each clause's pattern words, ``)``, its command list
and ``;;``, then ``esac``), so every bashlex visitor still walks it. The actions are
bound only while :func:`parse_script` runs (a context variable): the command guard
(:mod:`aegis.guard.check`) still refuses ``case``, as its tests require.

The input is untrusted, so a parse is bounded three ways:

- size: :data:`MAX_PARSE_CHARS` (real scripts are at most tens of kilobytes);
- time: :data:`PARSE_SECONDS`. bashlex loops forever on some words (``${`` without a
  closing brace); that one is refused before it loops, and a deadline stops the rest:
  SIGALRM in the main thread (:mod:`aegis.guard.shell_parse`), a trace function that
  checks the clock on every call in other threads (contents are scanned on a pool);
- recursion: nested substitutions recurse in bashlex; ``RecursionError`` is caught.

Anything bashlex raises (its errors, ``NotImplementedError``, ``AssertionError``, bugs)
becomes :class:`ScriptParseError`; the caller falls back to reading text.

Example:
    >>> [t.kind for t in parse_script('case "$1" in\n configure) true ;;\nesac\n')]
    ['compound']
"""

from __future__ import annotations

import contextvars
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Any

from aegis.guard import shell_parse
from aegis.guard.lr_tables import import_bashlex

# bashlex's parser from the tables shipped in aegis/guard/bashlex_lr.json when its grammar
# matches (else built as bashlex builds it): its own build is ~0.1 s of every plan's start.
import_bashlex()

from bashlex import ast, errors, parser, subst  # noqa: E402 - after the tables are in place

MAX_PARSE_CHARS = 512 * 1024
"""Characters of one script that are parsed; a longer one is read as text only."""

PARSE_SECONDS = 5.0
"""Wall time for one parse (the longest script on a Debian host parses in ~0.3 s)."""

_BOUND: list[bool] = []
"""Non-empty once the actions are bound (once per process)."""
_CASES: contextvars.ContextVar[bool] = contextvars.ContextVar("aegis_case", default=False)


class ScriptParseError(Exception):
    """bashlex could not parse the script (or was stopped); ``str()`` says why."""


class _Expired(BaseException):
    """The deadline passed.

    A BaseException, so that no ``except Exception`` inside bashlex swallows it (see
    :mod:`aegis.guard.shell_parse`).
    """


# --- case ... esac ---------------------------------------------------------------------


def _parts(p: Any) -> list[Any]:

    return list(parser._makeparts(p))


def _case_command(p: Any) -> None:

    parts = _parts(p)
    p[0] = ast.node(
        kind="compound", list=parts, redirects=[], pos=parser._partsspan(parts), case=True
    )


def _flatten(p: Any) -> None:
    p[0] = _parts(p)


_WHILE_CONDITION = 2
"""Index of a while/until condition in the production (``WHILE compound_list DO ...``)."""


def _shell_command(p: Any, original: Callable[[Any], None]) -> None:
    """A ``while``/``until`` whose condition is one command on its own line.

    bashlex builds a bare command node for it and then asserts a list; give it one (bash
    accepts ``while read x<newline>do`` in every script).
    """
    if len(p) > _WHILE_CONDITION and getattr(p[2], "kind", "list") != "list":
        p[2] = ast.node(kind="list", parts=[p[2]], pos=p[2].pos)
    original(p)


def _bind_case_actions() -> None:
    """Wrap bashlex's case actions: ours inside :func:`parse_script`, the original outside."""
    if _BOUND:
        return
    _BOUND.append(True)
    ours: dict[str, Callable[[Any, Callable[[Any], None]], None]] = {
        "p_shell_command": _shell_command,
        "p_case_command": lambda p, _: _case_command(p),
        "p_case_clause": lambda p, _: _flatten(p),
        "p_pattern_list": lambda p, _: _flatten(p),
        "p_case_clause_sequence": lambda p, _: _flatten(p),
        "p_pattern": lambda p, _: _flatten(p),
    }
    for production in parser.yaccparser.productions:
        if production.func not in ours or getattr(production.callable, "aegis_case", False):
            continue
        original = production.callable
        mine = ours[production.func]

        def action(
            p: Any,
            original: Callable[[Any], None] = original,
            mine: Callable[[Any, Callable[[Any], None]], None] = mine,
        ) -> None:
            if _CASES.get():
                mine(p, original)
            else:
                original(p)

        action.aegis_case = True  # type: ignore[attr-defined]
        production.callable = action


def _bind_paramexpand_guard() -> None:
    """``${`` with no ``}`` after it in the word: bashlex 0.18 loops forever; refuse it."""
    original = subst._paramexpand
    if getattr(original, "aegis_guard", False):
        return

    def paramexpand(parserobj: Any, string: str, sindex: int) -> Any:
        if (
            _CASES.get()
            and string[sindex + 1 : sindex + 2] == "{"
            and string.find("}", sindex + 2) < 0
        ):
            raise errors.ParsingError("bad substitution: no closing '}'", string, sindex)
        return original(parserobj, string, sindex)

    paramexpand.aegis_guard = True  # type: ignore[attr-defined]
    subst._paramexpand = paramexpand


# --- the deadline outside the main thread -----------------------------------------------


@contextmanager
def _thread_deadline(seconds: float) -> Iterator[None]:
    """Raise :class:`_Expired` from the next Python call after ``seconds`` (this thread).

    Only call events are traced (the local trace is None), so the cost is one clock read
    per call. Left alone when a tracer (a debugger, coverage) is already installed.
    """
    if threading.current_thread() is threading.main_thread() or sys.gettrace() is not None:
        yield
        return
    end = time.monotonic() + seconds

    def trace(frame: FrameType, event: str, arg: object) -> None:
        if event == "call" and time.monotonic() > end:
            raise _Expired(f"the parser did not finish within {seconds:g} s")

    sys.settrace(trace)
    try:
        yield
    finally:
        sys.settrace(None)


def parse_script(text: str) -> list[Any]:
    """The bashlex trees of a whole script, ``case`` included, within the bounds above.

    Raises:
        ScriptParseError: too long, too slow, too deep, or not parseable by bashlex.
    """
    if len(text) > MAX_PARSE_CHARS:
        raise ScriptParseError(f"longer than {MAX_PARSE_CHARS} characters")

    _bind_case_actions()
    _bind_paramexpand_guard()
    token = _CASES.set(True)
    try:
        with _thread_deadline(PARSE_SECONDS):
            return shell_parse.parse(text)
    except _Expired as e:
        raise ScriptParseError(str(e)) from None
    except shell_parse.ParseTimeoutError as e:
        raise ScriptParseError(str(e)) from None
    except RecursionError:
        raise ScriptParseError("nested too deeply") from None
    except Exception as e:  # bashlex raises several types, and any of its bugs must fall back
        reason = str(e).splitlines()[0][:120] if str(e) else type(e).__name__
        raise ScriptParseError(f"{type(e).__name__}: {reason}") from None
    finally:
        _CASES.reset(token)
