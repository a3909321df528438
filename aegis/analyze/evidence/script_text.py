"""How a maintainer script is read: logical lines, de-obfuscation and line predicates.

The shared ground of :mod:`aegis.analyze.evidence.script_rules` (the per-line rule
table) and :mod:`aegis.analyze.evidence.scripts` (the scanner), kept apart so each
stays reviewable on its own. Pure: strings in, strings and booleans out.

A script is read as logical lines (backslash continuations joined; the line number
is the first physical line's). Each :class:`Line` carries the text twice:

- ``raw``, as written: rules look here for the *shape* of obfuscation;
- ``norm``, de-obfuscated by :func:`normalise`: quotes removed (``s""h`` -> ``sh``),
  backslash-escaped letters unescaped, ``$IFS`` turned into a space, printf/echo
  escapes decoded, and known variables substituted.

Example:
    >>> normalise("c'u'rl$IFS-s $u", {"u": "http://e.invalid/i"})
    'curl -s http://e.invalid/i'
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass

HOSTILE = "hostile"
SENSITIVE = "sensitive"
CHANGED = "changed"
RANK = {HOSTILE: 2, SENSITIVE: 1, CHANGED: 0}
"""Severity order: a finding keeps the highest severity seen for its (rule, line)."""


@dataclass(frozen=True)
class Line:
    """One logical line of a script."""

    number: int
    raw: str
    norm: str
    package: str = ""
    """The package the script belongs to (its own services may be stopped)."""


# --- normalisation ---------------------------------------------------------------------

_ESC = re.compile(r"\\(x[0-9A-Fa-f]{2}|[0-7]{3})")


def _decode_escapes(text: str) -> str:
    def one(m: re.Match[str]) -> str:
        code = m.group(1)
        value = int(code[1:], 16) if code[0] == "x" else int(code, 8)
        ch = chr(value)
        return ch if ch.isprintable() else m.group(0)

    return _ESC.sub(one, text)


def normalise(raw: str, variables: Mapping[str, str]) -> str:
    """De-obfuscated form of ``raw``, with ``variables`` substituted."""
    text = raw.replace("${IFS}", " ").replace("$IFS", " ")
    text = _decode_escapes(text)
    text = text.replace('"', "").replace("'", "")
    text = re.sub(r"\\([A-Za-z0-9/._-])", r"\1", text)
    if variables:
        text = re.sub(
            r"\$\{?([A-Za-z_]\w*)\}?",
            lambda m: variables.get(m.group(1), m.group(0)),
            text,
        )
    return text


def logical_lines(text: str) -> list[tuple[int, str]]:
    """(first physical line number, joined text) of every logical line of ``text``."""
    out: list[tuple[int, str]] = []
    start = 0
    buf: list[str] = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not buf:
            start = number
        if line.endswith("\\") and not line.endswith("\\\\"):
            buf.append(line[:-1])
            continue
        buf.append(line)
        out.append((start, " ".join(buf)))
        buf = []
    if buf:
        out.append((start, " ".join(buf)))
    return out


# --- helpers over one line ---------------------------------------------------------------

SHELL = r"(?:/[\w/]*/)?(?:ba|da|z|k|c|tc|fi|a)?sh\b"
INTERP = r"(?:/[\w/]*/)?(?:python[0-9.]*|perl|ruby|php|node|lua)\b"
FETCH = r"\b(?:curl|wget|fetch|aria2c|lwp-download|lwp-request)\b"
_WRITE_CMD = (
    r"\b(?:cp|mv|install|ln|rsync|dd|sed\s+-i\S*|truncate|chmod|chown|chattr|touch|mkdir"
    r"|perl\s+-\S*i\S*)\b"
)


_SEPARATOR = re.compile(r"&&|\|\||;")
_FETCH_WORD = re.compile(rf"(?:^|/){FETCH}")
_OUTPUT_FLAG = re.compile(r"-[A-Za-z]*?[oO]|--output(?:-document)?(?==|$)")


def commands(norm: str) -> list[list[str]]:
    """The words of each command of ``norm``, split at ``;``, ``&&`` and ``||``.

    Rules that relate two commands of one line walk these lists instead of a regex
    with two ``.*``: on a hostile line of repeated ``curl -o x`` such a regex
    backtracks cubically (minutes for 20 KB), and aegisd re-runs this scanner.
    """
    return [part.split() for part in _SEPARATOR.split(norm)]


def download_target(words: list[str]) -> str | None:
    """The file a fetch command writes (``curl -so /tmp/x``, ``wget -O/tmp/x``), if any."""
    if not any(_FETCH_WORD.search(w) for w in words):
        return None
    for i, word in enumerate(words):
        m = _OUTPUT_FLAG.match(word)
        if m is None:
            continue
        rest = word[m.end() :].removeprefix("=")
        target = rest if rest else (words[i + 1] if i + 1 < len(words) else "")
        if target and not target.startswith("-") and "|" not in target:
            return target
    return None


def redirects_into(norm: str, path: str) -> bool:
    """Whether ``norm`` writes script text into ``path`` (``>``, ``>>``, ``tee``)."""
    return re.search(rf"(?:>>?|\btee\s+(?:-a\s+)?)\s*[^\s;|&]*(?:{path})", norm) is not None


def writes(norm: str, path: str) -> bool:
    """Whether ``norm`` writes to something matching the regex ``path`` (any way)."""
    if redirects_into(norm, path):
        return True
    return re.search(rf"{_WRITE_CMD}.*(?:{path})", norm) is not None


def path_rule(
    path: str, write: str, mention: str | None, *, manage: str | None = None
) -> Callable[[Line], str | None]:
    """A rule over a sensitive path.

    ``write`` when the line writes text into it by redirection or tee; ``manage``
    (default ``write``) when a file command (cp, mv, chmod, sed -i ...) touches it;
    ``mention`` otherwise. Distribution packages *manage* such files (sudo moves
    its own /etc/sudoers aside and back); injecting text is what attacks do.
    """

    def check(line: Line) -> str | None:
        if not re.search(path, line.norm):
            return None
        if redirects_into(line.norm, path):
            return write
        if writes(line.norm, path):
            return manage or write
        return mention

    return check


def any_of(*patterns: str, on: str = "norm", flags: int = 0) -> Callable[[str, str], bool]:
    """A predicate over (raw, norm): whether any of ``patterns`` matches the ``on`` form."""
    compiled = [re.compile(p, flags) for p in patterns]

    def match(raw: str, norm: str) -> bool:
        text = raw if on == "raw" else norm
        return any(c.search(text) for c in compiled)

    return match
