r"""Check a shell command line (or one argv) against the guard's rules.

The command line is parsed with bashlex, a port of bash's own grammar, never with
regexes: every simple command anywhere in it is checked: in pipelines and lists,
subshells, ``{ ...; }`` groups, functions, loops, ``$(...)``, backticks, ``<(...)``,
and in the strings run by ``sh -c``/``bash -c``, ``eval``, ``su -c``, ``watch`` and
shell here-documents, parsed again up to :data:`MAX_DEPTH` levels. Wrappers (``sudo``,
``env``, ``nice``, ``timeout``, ``xargs``, ``command``, ``exec``, ``find -exec`` ...)
are peeled off by :mod:`aegis.guard.wrappers`. Quoting and backslashes are removed by the
parser (``a\pt-get``, ``'apt'-get`` are ``apt-get``); a command name only known at run
time (``$PM install x``, ``$(echo apt-get) install x``, globs, brace lists) is refused
when its arguments would be refused after any known tool.

A download fed to an interpreter (``curl ... | sh``, ``bash <(wget -O- ...)``,
``sh -c "$(curl ...)"``, ``python3 < <(curl ...)``) is refused as ``download.exec``.

Fail closed: input bashlex cannot parse (unsupported syntax such as ``case`` or
``for ((...))``), nesting deeper than :data:`MAX_DEPTH`, or input over :data:`MAX_INPUT`
is refused with a finding that says why. Pure: no I/O.

Example:
    >>> check_command_line("sudo -E sh -c 'apt-get update && apt-get install -y nginx'").allowed
    False
    >>> check_command_line("apt-cache policy nginx | head").allowed
    True
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Sequence

from aegis.guard.argv import Match, split_options
from aegis.guard.rules import any_tool_match, match_argv, rule_for
from aegis.guard.rules_files import config_match, protected_path
from aegis.guard.shell_parse import delimiter_is_quoted, dequote, parse
from aegis.guard.words import (
    INTERPRETERS,
    MAX_BRACE_WORDS,
    MAX_VALUES,
    REFERENCE,
    expand_braces,
    heredoc_body,
    literal_output,
    program_from_stdin,
    program_word,
    substitute,
    unquoted_brace,
)
from aegis.guard.wrappers import (
    ARGUMENTS_FROM_INPUT,
    SHELLS,
    Run,
    Script,
    input_placeholders,
    is_wrapper,
    unwrap,
)

TYPE_CHECKING = False  # not typing's: importing typing costs the hook's start-up time
if TYPE_CHECKING:
    from typing import Any, NamedTuple
else:
    from aegis.guard.tuples import NamedTuple

MAX_DEPTH = 8
"""Nested strings (``sh -c`` in ``sh -c`` ...) and wrappers parsed before refusing."""
MAX_INPUT = 64 * 1024
"""Largest command line accepted (characters)."""

FETCHERS = frozenset({"curl", "wget", "fetch", "http", "https", "xh", "aria2c", "lwp-request"})
"""Commands whose output is a download."""
# Patterns kept as text: re compiles (and caches) them on first use, so the guard hook
# does not compile at start-up what most command lines never need.
_GLOB = r"[*?\[]"
_EXPANDS = r"\$\(|`|\$\{"
_SAME = object()
"""A redirect that leaves stdin as it was."""
_REWRITE = "rewrite the command in plain shell syntax (one command per call), or split it"
_DECLARES = frozenset({"export", "declare", "local", "readonly", "typeset"})
_VARIABLE = r"[A-Za-z_][A-Za-z0-9_]*"
_DOWNLOAD_INSTEAD = (
    "download the script to a file, read it, and plan the changes it would make with Aegis "
    "(aegis apt install <package> --plan); never pipe a download into an interpreter"
)


class Finding(NamedTuple):
    """One command in the checked input that the guard refuses."""

    command: str
    """The offending command, shell-quoted (untrusted text: show it through aegis.text)."""
    rule: str
    """Stable rule id (``apt.mutation``, ``download.exec``, ``parse.failed`` ...)."""
    reason: str
    """Why, in one line."""
    instead: str
    """The Aegis command or step to use instead."""


class Verdict(NamedTuple):
    """The result of a check: allowed when there is no finding."""

    findings: tuple[Finding, ...]
    """Every refused command, in the order found, without duplicates."""

    @property
    def allowed(self) -> bool:
        """True when nothing was refused."""
        return not self.findings


class _Word(NamedTuple):
    text: str
    """The word after quote removal."""
    dynamic: bool
    """It holds an expansion ($VAR, $(...), <(...)) whose value is only known at run time."""
    fetch: bool
    """It holds a substitution that runs a downloader."""


class _Walker:
    """Walks bashlex trees, collecting findings; each walk returns the command names seen."""

    def __init__(self) -> None:
        self.findings: dict[tuple[str, str], Finding] = {}
        self.variables: dict[str, list[str] | None] = {}
        """Shell variables set earlier in the input: their possible values, None if unknown."""
        self.ifs_changed = False

    def add(self, argv: Sequence[str], found: Match | Finding) -> None:
        command = (found.command if isinstance(found, Finding) else "") or shlex.join(argv)
        self.findings.setdefault(
            (command, found.rule), Finding(command, found.rule, found.reason, found.instead)
        )

    def refuse_input(self, text: str, rule: str, reason: str) -> None:
        self.add([], Finding(_clip(text), rule, reason, _REWRITE))

    # ---- command lines ----------------------------------------------------------------

    def script(self, text: str, depth: int, *, stdin_fetch: bool = False) -> set[str]:
        if depth > MAX_DEPTH:
            self.refuse_input(text, "parse.too-deep", f"nested deeper than {MAX_DEPTH} levels")
            return set()
        if len(text) > MAX_INPUT:
            self.refuse_input(text, "parse.too-large", f"longer than {MAX_INPUT} characters")
            return set()
        if not text.strip():
            return set()
        try:
            trees = parse(text)
        except Exception as e:  # bashlex raises several types, and any of its bugs must refuse
            self.refuse_input(text, "parse.failed", f"cannot parse the command line ({_why(e)})")
            return set()
        names: set[str] = set()
        for tree in trees:
            names |= self.node(tree, text, depth, stdin_fetch)
        return names

    def node(
        self, node: Any, src: str, depth: int, stdin_fetch: bool, stdin_script: str | None = None
    ) -> set[str]:
        kind = node.kind
        if kind == "command":
            return self.command(node, src, depth, stdin_fetch, stdin_script)
        if kind == "pipeline":
            names: set[str] = set()
            fed = stdin_fetch
            produced: str | None = None
            for part in node.parts:
                if part.kind in ("pipe", "reservedword"):
                    continue
                seen = self.node(part, src, depth, fed, produced)
                names |= seen
                fed = fed or bool(seen & FETCHERS)
                produced = literal_output(part, src)
            return names
        if kind == "for":
            self.loop_variable(node, src, depth)
        if kind in ("list", "compound", "function", "if", "for", "while", "until"):
            names = set()
            # '{ ...; } < <(curl ...)', '(bash) <<< "..."': a group's redirects feed it all.
            for redirect in getattr(node, "redirects", None) or []:
                fetches, script = self.redirect(redirect, src, depth, names)
                stdin_fetch = stdin_fetch or fetches
                stdin_script = stdin_script if script is _SAME else script
            for part in getattr(node, "list", None) or node.parts:
                names |= self.node(part, src, depth, stdin_fetch, stdin_script)
            return names
        if kind in ("word", "assignment", "redirect"):
            names = set()
            self.word(node if kind != "redirect" else node.output, src, depth, names)
            return names
        if kind in ("reservedword", "operator", "pipe"):
            return set()
        self.refuse_input(src, "parse.failed", f"unsupported shell construct '{kind}'")
        return set()

    def word(self, node: Any, src: str, depth: int, names: set[str]) -> _Word:
        """Walk the substitutions inside a word (they run); note what the word holds."""
        if not hasattr(node, "word"):  # a redirect to a file descriptor (2>&1)
            return _Word("", dynamic=False, fetch=False)
        fetch = False
        spans: list[tuple[int, int]] = []
        for part in getattr(node, "parts", []):
            if part.kind in ("commandsubstitution", "processsubstitution"):
                seen = self.node(part.command, src, depth, False)
                names |= seen
                fetch = fetch or bool(seen & FETCHERS)
            elif part.kind == "parameter":
                value = str(getattr(part, "value", ""))
                if "$(" in value or "`" in value:  # ${x:-$(cmd)}: bashlex leaves it unparsed
                    seen = self.script(value, depth + 1)
                    names |= seen
                    fetch = fetch or bool(seen & FETCHERS)
            if part.kind != "tilde":
                spans.append((part.pos[0], part.pos[1]))
        start, end = node.pos
        if not 0 <= start <= end <= len(src):  # never seen; fail towards "unknown"
            return _Word(str(node.word), dynamic=True, fetch=fetch)
        text, expands = dequote(src, start, end, spans)
        return _Word(text, dynamic=expands, fetch=fetch)

    def command(
        self, node: Any, src: str, depth: int, stdin_fetch: bool, stdin_script: str | None
    ) -> set[str]:
        names: set[str] = set()
        words: list[_Word] = []
        for part in node.parts:
            if part.kind == "word":
                word = self.word(part, src, depth, names)
                raw = src[part.pos[0] : part.pos[1]]
                expanded = _brace_words(word, raw)
                if expanded is None:
                    reason = f"brace expansion to more than {MAX_BRACE_WORDS} words"
                    self.refuse_input(raw, "parse.too-large", reason)
                    return names
                words.extend(expanded)
            elif part.kind == "assignment":
                names |= self.assign(self.word(part, src, depth, names), depth)
            elif part.kind == "redirect":
                fetches, script = self.redirect(part, src, depth, names)
                stdin_fetch = stdin_fetch or fetches
                stdin_script = stdin_script if script is _SAME else script
            elif part.kind not in ("reservedword", "operator"):
                self.refuse_input(src, "parse.failed", f"unsupported shell construct '{part.kind}'")
        if words and words[0].text in _DECLARES:
            for word in words[1:]:
                names |= self.assign(word, depth)
        return names | self.argv(words, depth, stdin_fetch=stdin_fetch, stdin_script=stdin_script)

    def redirect(self, part: Any, src: str, depth: int, names: set[str]) -> tuple[bool, Any]:
        """Walk a redirect; return (stdin is a download, the stdin program text or _SAME)."""
        target = self.word(part.output, src, depth, names)
        fetches = part.type in ("<", "<<<") and target.fetch
        if part.type in (">", ">>", ">|", "&>", "&>>", "<>") and protected_path(target.text):
            self.add([], Finding(f"> {target.text}", "apt.config", *_config(target.text)))
        doc = getattr(part, "heredoc", None)
        if doc is not None:
            body = heredoc_body(str(doc.value))
            if not delimiter_is_quoted(str(part.output.word)) and re.search(_EXPANDS, body):
                # An unquoted here-document expands $(...) and `...` in its body.
                names |= self.script(body, depth + 1)
            return fetches, body
        if part.type == "<<<":
            return fetches, None if target.dynamic else target.text
        if part.type == "<":
            return fetches, None
        return fetches, _SAME

    def loop_variable(self, node: Any, src: str, depth: int) -> None:
        """``for NAME in WORDS``: NAME takes each of WORDS (all unknown if one is dynamic)."""
        parts = list(node.parts)
        if len(parts) < 2 or parts[1].kind != "word":  # noqa: PLR2004
            return
        values: list[str] | None = []
        in_list = False
        for part in parts[2:]:
            if part.kind == "reservedword":
                if in_list:
                    break
                in_list = part.word == "in"
                continue
            if in_list and part.kind == "word" and values is not None:
                word = self.word(part, src, depth, set())
                values = None if word.dynamic else [*values, word.text]
        self.variables[str(parts[1].word)] = values[:MAX_VALUES] if values is not None else None

    def assign(self, word: _Word, depth: int) -> set[str]:
        """Remember ``NAME=value`` (for a later ``$NAME`` command name).

        A literal value holding ``$(...)`` or backticks is code in waiting: ``eval "$x"``,
        and bash's arithmetic (``$((x))``, ``[[ $x -eq 1 ]]``) expands a subscript such as
        ``a[$(cmd)]`` inside a variable's value. It is checked as a command line now.
        """
        name, eq, value = word.text.partition("=")
        if not eq or not re.fullmatch(_VARIABLE, name):
            return set()
        self.variables[name] = None if word.dynamic else [value]
        self.ifs_changed = self.ifs_changed or name == "IFS"
        if not word.dynamic and ("$(" in value or "`" in value):
            return self.script(value, depth + 1)
        return set()

    # ---- one argv -----------------------------------------------------------------------

    def argv(
        self, words: Sequence[_Word], depth: int, *, stdin_fetch: bool, stdin_script: str | None
    ) -> set[str]:
        if not words:
            return set()
        if depth > MAX_DEPTH:
            text = shlex.join(w.text for w in words)
            self.refuse_input(text, "parse.too-deep", f"wrapped deeper than {MAX_DEPTH} levels")
            return set()
        texts = [w.text for w in words]
        first = words[0]
        if first.dynamic or re.search(_GLOB, first.text):
            self.dynamic_name(words, texts, depth)
            return {"?"}
        name = first.text.rsplit("/", 1)[-1]
        names = {name}
        self.interpreter(name, words, stdin_fetch=stdin_fetch)
        if stdin_script is not None and name in SHELLS and program_from_stdin(name, texts):
            names |= self.script(stdin_script, depth + 1)
        for target in unwrap(texts):
            if isinstance(target, Run):
                inner = words[target.start : target.end]
                if name in ARGUMENTS_FROM_INPUT:
                    self.fed(texts, [w.text for w in inner])
                names |= self.argv(
                    inner, depth + 1, stdin_fetch=stdin_fetch, stdin_script=stdin_script
                )
                if _maybe_option_value(texts, target.start):
                    # 'sudo --new-option VALUE apt-get ...': an option nobody listed as
                    # taking a value may have taken this word; check the next one as well.
                    names |= self.argv(
                        inner[1:], depth + 1, stdin_fetch=stdin_fetch, stdin_script=stdin_script
                    )
            else:
                self.script_target(target, words, texts, depth, names)
        found = match_argv(texts)
        if found is not None:
            self.add(texts, found)
        return names

    def script_target(
        self, target: Script, words: Sequence[_Word], texts: list[str], depth: int, names: set[str]
    ) -> None:
        if any(words[i].fetch for i in target.indices):
            self.add(texts, _download(texts[0]))
        names |= self.script(target.text, depth + 1)

    def fed(self, wrapper: list[str], inner: list[str]) -> None:
        """``xargs apt-get`` / ``find -exec dpkg {} ;``: input supplies a package tool's verb."""
        if not inner or rule_for(inner[0].rsplit("/", 1)[-1]) is None:
            return
        holders = input_placeholders(wrapper)
        _, operands = split_options(inner[1:])
        if operands and operands[0] not in holders:
            return  # the verb is on the command line; input adds operands only
        # "-i" stands for an option-action tool (dpkg), whose input can add an action
        # only in the place of a placeholder or when the command line gives none.
        probes = ("install", "-i") if operands or len(inner) == 1 else ("install",)
        for probe in probes:
            if operands:
                candidate = [probe if a == operands[0] else a for a in inner]
            else:
                candidate = [*inner, probe]
            found = match_argv(candidate)
            if found is not None:
                reason = (
                    f"{wrapper[0]} supplies the arguments of {inner[0]} from input the guard "
                    f"cannot see, and they could be '{probe} ...' ({found.reason})"
                )
                self.add(inner, Finding("", "dynamic.command", reason, found.instead))
                return

    def dynamic_name(self, words: Sequence[_Word], texts: list[str], depth: int) -> None:
        """A command name known only at run time: refuse what any known tool would refuse."""
        if words[0].fetch:
            self.add(texts, _download("a command substitution"))
            return
        if self.ifs_changed:
            reason = "IFS was changed, so the guard cannot tell what this command name splits into"
            self.add(texts, Finding("", "dynamic.command", reason, _REWRITE))
            return
        values = substitute(texts[0], self.variables) if REFERENCE.search(texts[0]) else None
        if values is not None:
            # $x with x set earlier in the input: check what it runs (word splitting included).
            rest = f" {shlex.join(texts[1:])}" if texts[1:] else ""
            for value in values:
                self.script(value + rest, depth + 1)
            return
        found = any_tool_match(texts[1:])
        if found is not None:
            reason = (
                f"the command name '{texts[0]}' is only known at run time, and after a "
                f"package tool its arguments would be refused ({found.reason})"
            )
            self.add(texts, Finding(shlex.join(texts), "dynamic.command", reason, found.instead))

    def interpreter(self, name: str, words: Sequence[_Word], *, stdin_fetch: bool) -> None:
        """Refuse an interpreter whose program is a download (``curl | sh``, ``bash <(curl)``)."""
        texts = [w.text for w in words]
        if name in ("source", "."):
            if any(w.fetch for w in words[1:2]) or (stdin_fetch and texts[1:2] == ["/dev/stdin"]):
                self.add(texts, _download(name))
            return
        if name not in SHELLS and not INTERPRETERS.fullmatch(name):
            return
        program = program_word(name, texts)
        if program is None:
            return
        if (program == -1 and stdin_fetch) or (program > 0 and words[program].fetch):
            self.add(texts, _download(name))


def _config(path: str) -> tuple[str, str]:
    found = config_match(path)
    return found.reason, found.instead


def _maybe_option_value(texts: Sequence[str], start: int) -> bool:
    """Whether ``texts[start]`` (taken as the wrapped command) may be an option's value."""
    name = texts[start].rsplit("/", 1)[-1] if start < len(texts) else ""
    follows_option = start > 1 and texts[start - 1].startswith("-") and texts[start - 1] != "--"
    return follows_option and rule_for(name) is None and not is_wrapper(name)


def _download(name: str) -> Finding:
    reason = f"{name} would run a download (curl/wget) as a program"
    return Finding("", "download.exec", reason, _DOWNLOAD_INSTEAD)


def _brace_words(word: _Word, raw: str) -> list[_Word] | None:
    """``{apt-get,install,x}`` is three words to bash: expand unquoted comma braces.

    Returns None when the expansion passes :data:`MAX_BRACE_WORDS` (the caller refuses).
    """
    if word.dynamic or "," not in word.text or not unquoted_brace(raw):
        return [word]
    expanded = expand_braces(word.text)
    if expanded is None:
        return None
    return [_Word(text, dynamic=False, fetch=False) for text in expanded]


def _why(e: Exception) -> str:
    text = str(e).strip() or type(e).__name__
    if isinstance(e, NotImplementedError):
        text = f"bashlex does not support this construct: {text}"
    return _clip(text, 160)


def _clip(text: str, limit: int = 300) -> str:
    return text if len(text) <= limit else text[:limit] + "..."


def check_command_line(text: str) -> Verdict:
    """Check a shell command line as an agent would run it.

    Args:
        text: the command line (one or more lines of shell).

    Returns:
        The verdict; ``allowed`` is False when any part is refused or cannot be parsed.
    """
    plain = _plain_argv(text)
    if plain is not None:
        return check_argv(plain)
    walker = _Walker()
    walker.script(text, 0)
    return Verdict(tuple(walker.findings.values()))


_PLAIN = re.compile(r"[A-Za-z0-9_./:,@%+=-]+(?: +[A-Za-z0-9_./:,@%+=-]+)* *")
"""A command line of plain words: no quoting, expansion, glob, operator or comment."""
_RESERVED = frozenset(
    {"!", "case", "coproc", "do", "done", "elif", "else", "esac", "fi", "for", "function"}
    | {"if", "in", "select", "then", "time", "until", "while"}
)


def _plain_argv(text: str) -> list[str] | None:
    """The argv of a one-command line of plain words, or None (then bashlex parses it).

    For such a line bash's parse is its words split at spaces, so checking that argv is
    checking what bash would run, without loading bashlex (its parser tables take most of
    a hook's time). A first word that bash reads as a keyword (``coproc``, ``time``) or an
    assignment (``X=1 cmd``) goes to the parser.
    """
    if len(text) > MAX_INPUT or not _PLAIN.fullmatch(text.lstrip(" ")):
        return None
    words = text.split()
    if not words or words[0] in _RESERVED or "=" in words[0]:
        return None
    return words


def check_argv(argv: Sequence[str]) -> Verdict:
    """Check one already-expanded command (what a PATH shim receives).

    Args:
        argv: the command and its arguments, e.g. ``["sudo", "apt-get", "install", "x"]``.

    Returns:
        The verdict for that command and whatever it wraps (``sudo``, ``sh -c`` ...).
    """
    walker = _Walker()
    words = [_Word(a, dynamic=False, fetch=False) for a in argv]
    walker.argv(words, 0, stdin_fetch=False, stdin_script=None)
    return Verdict(tuple(walker.findings.values()))
