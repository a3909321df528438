r"""The bashlex parser, with the two gaps that matter for agents' command lines closed.

- A here-document whose delimiter is quoted (``cat <<'EOF'``, the usual way agents
  write files) never ends in bashlex 0.18: it compares each line with the delimiter
  *before* quote removal (``'EOF'``). :func:`_make_heredoc` is bashlex's own
  ``heredoc.makeheredoc`` with bash's rule (the delimiter is the quote-removed word).
- bashlex has no ``time`` keyword: the standalone word ``time`` (and its ``-p``) is
  blanked before a second attempt. Blanking removes no command and keeps every offset.

Everything else bashlex cannot parse raises, and the checker refuses it.

Example:
    >>> [t.kind for t in parse("cat <<'EOF'\nhello\nEOF\n")]
    ['command']
"""

from __future__ import annotations

import re
from typing import Any

_TIME_KEYWORD = re.compile(r"(?<![\w./-])time(\s+-p)?(?=\s)")
_QUOTING = re.compile(r"[\"'\\]")


def delimiter_is_quoted(raw: str) -> bool:
    """True when a here-document's body is literal (its delimiter word had quoting)."""
    return bool(_QUOTING.search(raw))


def _make_heredoc(tokenizer: Any, redirnode: Any, lineno: int, killleading: bool) -> str:
    """The ``makeheredoc`` of bashlex 0.18, comparing lines with the quote-removed delimiter."""
    from bashlex import ast, errors

    redirword = _QUOTING.sub("", redirnode.output.word)  # the fix: bash's quote removal
    document = []
    startpos = tokenizer._shell_input_line_index
    fullline = tokenizer.readline(False)
    while fullline:
        if killleading:
            fullline = fullline.lstrip("\t")
        if fullline[:-1] == redirword and fullline[len(redirword)] == "\n":
            document.append(fullline[:-1])
            break
        document.append(fullline)
        fullline = tokenizer.readline(False)
    if not fullline:
        raise errors.ParsingError(
            f"here-document at line {lineno} delimited by end-of-file (wanted {redirword!r})",
            tokenizer._shell_input_line,
            tokenizer._shell_input_line_index,
        )
    text = "".join(document)
    endpos = tokenizer._shell_input_line_index - 1
    redirnode.heredoc = ast.node(kind="heredoc", value=text, pos=(startpos, endpos))
    if redirnode.pos[1] + 1 == startpos:
        redirnode.pos = (redirnode.pos[0], endpos)
    return text


def parse(text: str) -> list[Any]:
    """Parse ``text`` into bashlex trees.

    Raises:
        Exception: whatever bashlex raises for input it cannot parse (callers refuse).
    """
    import bashlex
    import bashlex.heredoc

    bashlex.heredoc.makeheredoc = _make_heredoc
    try:
        return list(bashlex.parse(text))
    except NotImplementedError as e:
        if "time" not in str(e):
            raise
    blanked = _TIME_KEYWORD.sub(lambda m: " " * len(m.group(0)), text)
    return list(bashlex.parse(blanked))
