"""What words mean to bash: brace lists, variables, echo output, interpreters' programs.

Pure: no I/O.

Example:
    >>> expand_braces("{apt-get,install,x}")
    ['apt-get', 'install', 'x']
    >>> program_word("bash", ["bash", "-s", "--", "x"])
    -1
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from aegis.guard.shell_parse import dequote
from aegis.guard.wrappers import SHELLS

TYPE_CHECKING = False  # not typing's: importing typing costs the hook's start-up time
if TYPE_CHECKING:
    from typing import Any

MAX_BRACE_WORDS = 64
"""Brace expansion of one word stops (and the checker refuses) past this many words."""
INTERPRETERS = re.compile(
    r"(python[0-9.]*|perl[0-9.]*|ruby[0-9.]*|node|nodejs|php[0-9.]*|lua[0-9.]*|tclsh|Rscript)"
)
"""Non-shell interpreters that can read a program from stdin."""
_PROGRAM_OPTS = frozenset({"--eval", "--print", "--command"})
_PROGRAM_LETTERS = frozenset("ceEmp")
"""Interpreter options that give the program on the command line (not from stdin)."""
_SHELL_VALUE_OPTS = frozenset({"-o", "+o", "-O", "+O"})
REFERENCE = re.compile(r"\$(?:\{([A-Za-z_][A-Za-z0-9_]*)\}|([A-Za-z_][A-Za-z0-9_]*))")
"""A ``$NAME`` or ``${NAME}`` reference."""
MAX_VALUES = 16
"""Possible values of a command name built from variables that are checked, at most."""


def program_word(name: str, texts: Sequence[str]) -> int | None:
    """Where an interpreter's program comes from: -1 stdin, an argv index, None (-c/-e/-m)."""
    shell = name in SHELLS
    i = 1
    while i < len(texts):
        arg = texts[i]
        if arg == "-":
            return -1
        if arg == "--":
            return i + 1 if i + 1 < len(texts) else -1
        if arg.startswith("--"):
            if arg.split("=", 1)[0] in _PROGRAM_OPTS:
                return None
            i += 1
            continue
        if len(arg) > 1 and (arg[0] == "-" or (shell and arg[0] == "+")):
            letters = set(arg[1:])
            if shell:
                if "c" in letters:
                    return None
                if "s" in letters:
                    return -1
                i += 2 if arg in _SHELL_VALUE_OPTS else 1
            else:
                if letters & _PROGRAM_LETTERS:
                    return None
                i += 2 if arg in ("-W", "-X") else 1
            continue
        return i
    return -1


def program_from_stdin(name: str, texts: Sequence[str]) -> bool:
    """True when the interpreter ``texts`` reads its program from stdin."""
    return program_word(name, texts) == -1


def unquoted_brace(raw: str) -> bool:
    """True when a word's source text has a ``{`` outside quotes (so bash may expand it)."""
    quote = ""
    escaped = False
    for ch in raw:
        if escaped:
            escaped = False
        elif ch == "\\" and quote != "'":
            escaped = True
        elif quote:
            quote = "" if ch == quote else quote
        elif ch in "'\"":
            quote = ch
        elif ch == "{":
            return True
    return False


def expand_braces(text: str) -> list[str] | None:
    """Bash-style comma brace expansion of one word, bounded by MAX_BRACE_WORDS.

    A hand-written bound on purpose: the only question is which words bash would pass,
    and an unbounded expansion (``{a,b}{a,b}...``) must not exhaust memory.
    """
    results = [text]
    done: list[str] = []
    while results:
        current = results.pop()
        span = _first_group(current)
        if span is None:
            done.append(current)
        else:
            start, end, alternatives = span
            results.extend(current[:start] + alt + current[end + 1 :] for alt in alternatives)
        if len(done) + len(results) > MAX_BRACE_WORDS:
            return None
    return list(reversed(done))


def _first_group(text: str) -> tuple[int, int, list[str]] | None:
    for start, ch in enumerate(text):
        if ch != "{":
            continue
        depth = 0
        parts: list[str] = []
        last = start + 1
        for end in range(start, len(text)):
            if text[end] == "{":
                depth += 1
            elif text[end] == "}":
                depth -= 1
                if depth == 0:
                    if parts:
                        return start, end, [*parts, text[last:end]]
                    break
            elif text[end] == "," and depth == 1:
                parts.append(text[last:end])
                last = end + 1
    return None


def heredoc_body(value: str) -> str:
    """Drop the closing delimiter: bashlex keeps it as the last line of a here-document."""
    return value.rsplit("\n", 1)[0] if "\n" in value else ""


def substitute(text: str, variables: dict[str, list[str] | None]) -> list[str] | None:
    """The values of ``text`` with its ``$NAME`` references replaced; None if unknown."""
    values = [""]
    pos = 0
    for m in REFERENCE.finditer(text):
        known = variables.get(m.group(1) or m.group(2))
        if known is None:
            return None
        prefix = text[pos : m.start()]
        values = [v + prefix + k for v in values for k in known][:MAX_VALUES]
        pos = m.end()
    tail = text[pos:]
    if "$" in tail or "`" in tail or any("$" in p or "`" in p for p in values):
        return None
    return [v + tail for v in values]


def literal_output(node: Any, src: str) -> str | None:
    """What ``echo``/``printf`` with literal arguments writes (a pipe into a shell runs it)."""
    if node.kind != "command":
        return None
    texts: list[str] = []
    for part in node.parts:
        if part.kind != "word" or getattr(part, "parts", None):
            return None  # a redirect, an assignment or an expansion: not a known text
        texts.append(dequote(src, part.pos[0], part.pos[1], [])[0])
    if not texts or texts[0].rsplit("/", 1)[-1] not in ("echo", "printf"):
        return None
    args = texts[1:]
    while texts[0].endswith("echo") and args and re.fullmatch(r"-[neE]+", args[0]):
        args = args[1:]
    return " ".join(args)
