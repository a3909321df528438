r"""The bashlex parser, with the gaps that matter for agents' command lines closed.

- A here-document whose delimiter is quoted (``cat <<'EOF'``, the usual way agents
  write files) never ends in bashlex 0.18: it compares each line with the delimiter
  *before* quote removal (``'EOF'``). :func:`_make_heredoc` is bashlex's own
  ``heredoc.makeheredoc`` with bash's rule (the delimiter is the quote-removed word).
- bashlex's quote removal is wrong for mixed quoting: ``'a'"'"'b'`` (how ``shlex.quote``
  nests a quote) comes back as ``a'"'"'b``, which would hide ``sh -c 'sh -c '"'"'apt-get
  install x'"'"''``. :func:`dequote` removes quotes from the word's source text the way
  bash does (backslashes, single, double and ``$'...'`` quotes), copying the expansions
  bashlex found (``$x``, ``$(...)``, backticks) verbatim. It is hand-written on purpose:
  it is a security bound, and bashlex gives the positions it needs.
- bashlex has no ``time`` keyword, no ``[[ ... ]]`` and no ``$(( ... ))``. When a parse
  fails, it is tried once more with them masked, each by text of the same length, so
  every offset stays: the word ``time`` (and ``-p``) is blanked, ``[[``/``]]`` become
  ``[``/``]`` (a test command, whose ``$(...)`` is still parsed and checked), and an
  arithmetic expansion becomes zeros unless it holds a ``$(``, a backtick, a quote or a
  backslash (then
  the first error stands and the input is refused). Masking removes no command.

Everything else bashlex cannot parse raises, and the checker refuses it.

Example:
    >>> [t.kind for t in parse("cat <<'EOF'\nhello\nEOF\n")]
    ['command']
"""

from __future__ import annotations

import gc
import re
import sys

TYPE_CHECKING = False  # not typing's: the guard hook imports this module, and starts fast
if TYPE_CHECKING:
    from typing import Any

# Patterns kept as text: re compiles (and caches) them on first use, so the guard hook
# does not compile at start-up what most command lines never need.
_TIME_KEYWORD = r"(?<![\w./-])time(\s+-p)?(?=\s)"
_QUOTING = r"[\"'\\]"


def delimiter_is_quoted(raw: str) -> bool:
    """True when a here-document's body is literal (its delimiter word had quoting)."""
    return bool(re.search(_QUOTING, raw))


def _make_heredoc(tokenizer: Any, redirnode: Any, lineno: int, killleading: bool) -> str:
    """The ``makeheredoc`` of bashlex 0.18, comparing lines with the quote-removed delimiter."""
    from bashlex import ast, errors

    redirword = re.sub(_QUOTING, "", redirnode.output.word)  # the fix: bash's quote removal
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


def _mask_arithmetic(text: str) -> str:
    """``$((expr))`` -> zeros of the same length, when ``expr`` cannot run a command."""
    out = list(text)
    start = text.find("$((")
    while start >= 0:
        depth, end = 0, -1
        for i in range(start + 1, len(text)):
            if text[i] == "(":
                depth += 1
            elif text[i] == ")":
                depth -= 1
                if depth == 0:
                    end = i
                    break
        if end < 0:
            break
        inner = text[start + 3 : end - 1]
        if end - 1 > start + 2 and text[end - 1] == ")" and not re.search(_RUNS, inner):
            out[start : end + 1] = "0" * (end + 1 - start)
        start = text.find("$((", end)
    return "".join(out)


_RUNS = r"\$\(|[`'\"\\]"
"""Inside ``$((...))``, what could run a command or hide one: then the mask is not applied."""
_TEST_OPEN = r"(?<![^\s;&|(!])\[\[(?=\s)"
_TEST_CLOSE = r"(?<=\s)\]\](?=$|[\s;&|)])"


def _masked(text: str) -> str:
    text = re.sub(_TIME_KEYWORD, lambda m: " " * len(m.group(0)), text)
    text = re.sub(_TEST_OPEN, " [", text)
    text = re.sub(_TEST_CLOSE, "] ", text)
    return _mask_arithmetic(text)


PARSE_SECONDS = 5.0
"""How long one parse may take. bashlex 0.18 loops forever on some malformed words
(``_paramexpand`` not advancing); a hook that never answers would let the call run."""
REPEAT_SECONDS = 0.1
"""After the deadline, the expiry repeats this often until the parse has stopped."""


class _Expired(BaseException):
    """bashlex did not finish within :data:`PARSE_SECONDS`.

    A BaseException, so that no ``except Exception`` on the way (bashlex's own, or a
    caller's) swallows it and lets the loop go on; :func:`parse` turns it into a
    :class:`ParseTimeoutError` (an ordinary exception) once it is out of bashlex.
    """


class ParseTimeoutError(Exception):
    """The parse was stopped: it took longer than :data:`PARSE_SECONDS`."""


def _signals() -> Any:
    """:mod:`signal`'s C module itself: signal.py wraps it in enums, ~1 ms of a hook start."""
    import _signal  # type: ignore[import-not-found]  # typeshed has no stub for it

    return _signal


def _in_bashlex(frame: Any) -> bool:
    """Whether ``frame`` or one of its callers runs bashlex's code."""
    while frame is not None:
        if frame.f_globals.get("__name__", "").startswith("bashlex"):
            return True
        frame = frame.f_back
    return False


class _Deadline:
    """Raise :class:`_Expired` in this (main) thread after ``seconds``, inside bashlex only.

    Signals reach only the main thread; elsewhere the parse runs unbounded (every Aegis
    entry point, the CLI, the hooks and the shims, parses in the main thread). A class
    rather than a ``contextlib`` generator, and :mod:`signal` imported here: the guard
    hook's start-up pays for neither when a line needs no parse.

    The expiry repeats (should one land where Python drops it, in a gc callback, the next
    one still ends the parse) and raises only while bashlex's code is on the stack. An
    expiry handled anywhere else (on the way out of the parse, in ``__exit__`` while the
    timer is being disarmed) returns quietly: had it raised there, on a loaded machine
    where the next expiry comes before the first has unwound, it would skip or abort
    ``__exit__`` and leave the timer armed, raising later in unrelated code.

    Automatic garbage collection is off while armed: a collection that starts inside
    bashlex runs ``gc.callbacks`` with bashlex below them on the stack, so an expiry
    landing there was raised in the callback, where Python only reports it (and, under
    pytest, the next expiry landed in that report). The parse is bounded; what it leaves
    is collected afterwards.
    """

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.armed = False

    def __enter__(self) -> None:
        signal = _signals()

        seconds = self.seconds

        def expire(signum: int, frame: object) -> None:
            if _in_bashlex(frame):
                raise _Expired(f"the parser did not finish within {seconds:g} s")

        try:
            self.previous = signal.signal(signal.SIGALRM, expire)
        except ValueError:  # not the main thread
            return
        self.armed = True
        self.collecting = gc.isenabled()
        gc.disable()
        self.outer = signal.setitimer(signal.ITIMER_REAL, seconds, REPEAT_SECONDS)

    def __exit__(self, *exc: object) -> None:
        if not self.armed:
            return
        signal = _signals()

        # Disarm while our handler (which does not raise here) is still installed: an
        # expiry already delivered is handled by it at the next call below, not by the
        # previous handler (SIG_DFL would end the process; SIG_IGN makes Python report
        # "signal ignored due to race condition").
        signal.setitimer(signal.ITIMER_REAL, *self.outer)
        signal.getitimer(signal.ITIMER_REAL)  # a call: pending handlers run after it
        signal.signal(signal.SIGALRM, self.previous)
        if self.collecting:
            gc.enable()


def parse(text: str) -> list[Any]:
    """Parse ``text`` into bashlex trees, within :data:`PARSE_SECONDS`.

    Raises:
        Exception: whatever bashlex raises for input it cannot parse, or
            :class:`ParseTimeoutError` (callers refuse).
    """
    from aegis.guard.lr_tables import import_bashlex

    bashlex = import_bashlex()  # its parse tables from aegis/guard/bashlex_lr.json
    from bashlex import heredoc

    heredoc.makeheredoc = _make_heredoc
    try:
        with _Deadline(PARSE_SECONDS):
            try:
                return list(bashlex.parse(text))
            except Exception as first:
                masked = _masked(text)
                if masked == text:
                    raise
                try:
                    return list(bashlex.parse(masked))
                except Exception:
                    raise first from None  # the error about what was written, not the mask
    except _Expired as e:
        raise ParseTimeoutError(str(e)) from None


_SIMPLE_ESCAPES = {
    "a": "\a",
    "b": "\b",
    "e": "\x1b",
    "E": "\x1b",
    "f": "\f",
    "n": "\n",
    "r": "\r",
    "t": "\t",
    "v": "\v",
    "\\": "\\",
    "'": "'",
    '"': '"',
    "?": "?",
}
_NUMERIC_ESCAPE = r"x([0-9a-fA-F]{1,2})|u([0-9a-fA-F]{1,4})|U([0-9a-fA-F]{1,8})|([0-7]{1,3})"


def ansi_c(body: str) -> str:
    """Decode the inside of ``$'...'`` as bash does."""
    out: list[str] = []
    i = 0
    while i < len(body):
        ch = body[i]
        if ch != "\\" or i + 1 >= len(body):
            out.append(ch)
            i += 1
            continue
        nxt = body[i + 1]
        if nxt in _SIMPLE_ESCAPES:
            out.append(_SIMPLE_ESCAPES[nxt])
            i += 2
            continue
        if nxt == "c" and i + 2 < len(body):
            out.append(chr(ord(body[i + 2]) & 0x1F))
            i += 3
            continue
        m = re.compile(_NUMERIC_ESCAPE).match(body, i + 1)
        if m is None:
            out.append(body[i : i + 2])
            i += 2
            continue
        digits = next(g for g in m.groups() if g is not None)
        code = int(digits, 8 if m.group(4) is not None else 16)
        out.append(chr(code) if code <= sys.maxunicode else "\ufffd")
        i = m.end()
    return "".join(out)


def _ansi_c_end(src: str, i: int, end: int) -> int:
    """Index of the quote closing the ``$'`` that starts at ``i``."""
    j = i + 2
    while j < end and src[j] != "'":
        j += 2 if src[j] == "\\" else 1
    return min(j, end)


def dequote(src: str, start: int, end: int, spans: list[tuple[int, int]]) -> tuple[str, bool]:
    """Bash's quote removal on ``src[start:end]``, one word.

    Args:
        src: the text bashlex parsed.
        start: the word's start offset in ``src``.
        end: its end offset.
        spans: (start, end) of the expansions bashlex found in the word; copied verbatim.

    Returns:
        (the word after quote removal, whether it holds an expansion other than ``$'...'``).
    """
    starts = dict(spans)
    out: list[str] = []
    expands = False
    quoted = False  # inside "..."
    i = start
    while i < end:
        ch = src[i]
        if not quoted and src.startswith("$'", i):
            close = _ansi_c_end(src, i, end)
            out.append(ansi_c(src[i + 2 : close]))
            i = close + 1
        elif i in starts and starts[i] > i:
            out.append(src[i : starts[i]])
            expands = True
            i = starts[i]
        elif ch == "\\":
            nxt = src[i + 1 : i + 2]
            if nxt == "\n":
                i += 2
            elif not quoted or (nxt and nxt in '$`"\\'):
                out.append(nxt or ch)
                i += 2
            else:
                out.append(ch)
                i += 1
        elif ch == '"':
            quoted = not quoted
            i += 1
        elif ch == "'" and not quoted:
            close = src.find("'", i + 1, end)
            close = end if close < 0 else close
            out.append(src[i + 1 : close])
            i = close + 1
        elif not quoted and src.startswith('$"', i):
            i += 1  # $"..." is a translatable "...": the $ goes
        else:
            out.append(ch)
            i += 1
    return "".join(out), expands
