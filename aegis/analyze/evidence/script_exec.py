r"""What a parsed maintainer script executes, and what it only prints. Pure.

Reads the bashlex trees of :func:`aegis.analyze.evidence.script_parse.parse_script`
and returns a :class:`ShellReading`:

- ``executed``: shell text the script runs that is not a command of its own where it
  is written: the arguments of ``eval`` and ``trap``, the string of ``sh -c`` /
  ``bash -c`` / ``su -c`` / ``runuser -c`` (also behind ``sudo``, ``env``, ``nohup``,
  ``timeout`` ...), a here-document or here-string fed to a shell reading its program
  from stdin, and what ``echo``/``printf``/``cat <<EOF`` writes into a pipe to such a
  shell. The scanner scans each as a script of its own, at the line that runs it.
- ``messages``: spans of text that are only printed to the terminal: the arguments of
  ``echo``/``printf`` and the body of ``cat <<EOF`` when the command stands on its own
  (not in a pipeline, a command substitution or a function, whose output may be fed
  anywhere), writes to stdout, stderr or /dev/null only, and every enclosing block does
  too. ``echo "To finish, run: curl ... | bash" >&2`` runs nothing; the scanner blanks
  these spans before the text rules read the line. Command and process substitutions
  inside a message run, so they are never blanked, nor is a word bashlex left
  unexpanded (``${x:-$(cmd)}``) or an unquoted here-document holding ``$(`` or a
  backtick.

Only ``echo``/``printf``/``cat`` named directly (or as /bin or /usr/bin paths) print for
sure: behind ``env``/``sudo`` (a PATH lookup) or at another path they may be a program
the package ships. Blanking is off for the whole script (``blank_ok`` False) when the
script could make a print command do something else: a function or alias named like
one, ``enable`` (which turns builtins off), sourcing a file other than debconf's
confmodule (it could define ``echo``), or ``exec`` with only redirections
(``exec 2> >(sh)`` sends every later message to a shell).

Example:
    >>> from aegis.analyze.evidence.script_parse import parse_script
    >>> text = 'echo "run: curl x | sh" >&2\nsh -c "rm -rf /"\n'
    >>> r = read_shell(text, parse_script(text))
    >>> r.messages, r.executed
    ([(5, 23)], [(28, 'rm -rf /')])
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass, field
from typing import Any

from aegis.guard.shell_parse import ansi_c, delimiter_is_quoted, dequote
from aegis.guard.words import heredoc_body, program_from_stdin
from aegis.guard.wrappers import SHELLS

PRINTERS = frozenset({"echo", "printf"})
_PRINT_COMMANDS = frozenset(
    {"echo", "printf", "/bin/echo", "/usr/bin/echo", "/bin/printf", "/usr/bin/printf"}
)
_CAT_COMMANDS = frozenset({"cat", "/bin/cat", "/usr/bin/cat"})
"""What a message is printed with, written exactly so: a builtin or the system's own
binary. ``/tmp/x/echo``, or ``env echo`` (a PATH lookup), may be anything the package
ships, so their arguments are never blanked."""
_SOURCED_OK = frozenset({"/usr/share/debconf/confmodule"})
"""Files a script may source and keep blanking: they define no print command. Sourcing
anything else (a library the package itself ships) could redefine ``echo``."""
_TERMINAL = frozenset({"/dev/null", "/dev/stdout", "/dev/stderr", "/dev/tty"})
_WRAPPERS = frozenset(
    {"sudo", "env", "nohup", "nice", "timeout", "setsid", "stdbuf", "ionice", "command"}
)
"""Commands that run their arguments as a command (``sudo sh -c ...``)."""
_VALUE_OPTS = frozenset(
    {"-u", "-g", "-C", "-D", "-h", "-p", "-r", "-t", "-U", "--user", "--group", "-n", "-s", "-k"}
    | {"-c", "-o", "-e", "-i", "--chdir", "--signal", "--kill-after", "--adjustment"}
)
"""Wrapper options that take a value (``sudo -u root``, ``nice -n 5``, ``timeout -s 9``)."""
_SU = frozenset({"su", "runuser"})
_NAME_VALUE = re.compile(r"[A-Za-z_]\w*=")
_DURATION = re.compile(r"\d+(?:\.\d+)?[smhd]?")
_SUBSTITUTIONS = ("commandsubstitution", "processsubstitution")


@dataclass
class ShellReading:
    """What :func:`read_shell` found; offsets index the parsed text."""

    messages: list[tuple[int, int]] = field(default_factory=list)
    executed: list[tuple[int, str]] = field(default_factory=list)
    blank_ok: bool = True

    def blanked(self, text: str) -> str:
        """``text`` with every message span blanked, or unchanged when blanking is off.

        Newlines and backslashes are kept, so line numbers and continuations stay.
        """
        if not self.blank_ok or not self.messages:
            return text
        chars = list(text)
        for start, end in self.messages:
            for i in range(max(start, 0), min(end, len(chars))):
                if chars[i] not in "\n\\":
                    chars[i] = " "
        return "".join(chars)


def _spans(word: Any) -> list[tuple[int, int]]:
    return [tuple(p.pos) for p in getattr(word, "parts", []) if p.kind in _SUBSTITUTIONS]


class _Walk:
    def __init__(self, src: str) -> None:
        self.src = src
        self.out = ShellReading()

    # --- words ---

    def text(self, word: Any) -> str:
        return dequote(self.src, word.pos[0], word.pos[1], _spans(word))[0]

    def blank_word(self, word: Any) -> None:
        """Blank a message word's literal text, never what runs inside it."""
        for part in getattr(word, "parts", []):
            if part.kind == "parameter" and ("$(" in part.value or "`" in part.value):
                return  # bashlex left a substitution unparsed: it may run
        if "`" in self.src[word.pos[0] : word.pos[1]] and not _spans(word):
            return
        start = word.pos[0]
        for s, e in sorted(_spans(word)):
            self.out.messages.append((start, s))
            start = e
        self.out.messages.append((start, word.pos[1]))

    # --- nodes ---

    def visit(self, node: Any, quiet: bool) -> None:
        kind = node.kind
        if kind == "command":
            self.command(node, quiet)
        elif kind == "pipeline":
            self.pipeline(node)
        elif kind == "compound":
            inner = quiet and self.terminal_only(node.redirects)
            for part in node.list:
                self.visit(part, inner)
            for redirect in node.redirects:
                self.visit(redirect, False)
        elif kind == "function":
            if node.name.word in PRINTERS | {"cat"}:
                self.out.blank_ok = False
            self.visit(node.body, False)
        elif kind in _SUBSTITUTIONS:
            self.visit(node.command, False)
        elif kind == "redirect" and not isinstance(node.output, int):
            self.visit(node.output, False)
        else:
            # list, if, for, while, until keep the context; a word's parts do not.
            keep = kind in ("list", "if", "for", "while", "until")
            for part in getattr(node, "parts", ()):
                self.visit(part, quiet and keep)

    def terminal_only(self, redirects: list[Any]) -> bool:
        """Whether these redirections send output only to the terminal or /dev/null."""
        for r in redirects:
            if r.kind != "redirect" or r.type in ("<", "<<", "<<-", "<<<"):
                continue
            if isinstance(r.output, int):
                if r.output not in (1, 2):
                    return False
            elif r.type in (">&", ">") and self.text(r.output) in ("-",):
                continue  # closing a descriptor
            elif self.text(r.output) not in _TERMINAL:
                return False
        return True

    def words_of(self, node: Any) -> tuple[list[Any], list[str]]:
        """The command's words after wrappers (``sudo``, ``env X=1``, ``timeout 5``)."""
        words = [p for p in node.parts if p.kind == "word"]
        texts = [self.text(w) for w in words]
        while texts and texts[0].rsplit("/", 1)[-1] in _WRAPPERS and len(texts) > 1:
            i = 1
            while i < len(texts) and (
                texts[i].startswith("-")
                or _NAME_VALUE.match(texts[i])
                or _DURATION.fullmatch(texts[i])
            ):
                i += 2 if texts[i] in _VALUE_OPTS else 1
            words, texts = words[i:], texts[i:]
        return words, texts

    def command(self, node: Any, quiet: bool) -> None:
        for part in node.parts:
            self.visit(part, False)
        words, texts = self.words_of(node)
        if not texts:
            return
        name = texts[0].rsplit("/", 1)[-1]
        redirects = [p for p in node.parts if p.kind == "redirect"]
        if (name == "exec" and len(texts) == 1) or name in ("alias", "enable"):
            # exec 2>...: every later message goes there; alias and enable redefine echo.
            self.out.blank_ok = False
        if name in (".", "source") and not set(texts[1:2]) <= _SOURCED_OK:
            self.out.blank_ok = False
        self.out.executed.extend((node.pos[0], program) for program in _programs(name, texts))
        if name in SHELLS and program_from_stdin(name, texts):
            for r in redirects:
                fed = self.fed_by_redirect(r)
                if fed is not None:
                    self.out.executed.append((node.pos[0], fed))
        # Only a printer named directly (not behind sudo/env/command, which look it up
        # on PATH) prints for sure.
        direct = len(words) == len([p for p in node.parts if p.kind == "word"])
        if quiet and direct and self.terminal_only(redirects):
            if texts[0] in _PRINT_COMMANDS:
                for w in words[1:]:
                    self.blank_word(w)
            elif texts[0] in _CAT_COMMANDS and len(texts) == 1:
                for r in redirects:
                    self.blank_heredoc(r)

    def fed_by_redirect(self, r: Any) -> str | None:
        if getattr(r, "heredoc", None) is not None:
            return heredoc_body(r.heredoc.value)
        if r.type == "<<<" and not isinstance(r.output, int):
            return self.text(r.output)
        return None

    def blank_heredoc(self, r: Any) -> None:
        doc = getattr(r, "heredoc", None)
        if doc is None:
            return
        body = heredoc_body(doc.value)
        quoted = delimiter_is_quoted(self.src[r.output.pos[0] : r.output.pos[1]])
        if not quoted and ("$(" in body or "`" in body):
            return  # an unquoted here-document runs its command substitutions
        self.out.messages.append((doc.pos[0], doc.pos[0] + len(body)))

    def output_of(self, node: Any) -> str | None:
        """The text a pipeline stage writes, when it is a printed literal or a here-doc."""
        if node.kind != "command":
            return None
        _, texts = self.words_of(node)
        if not texts:
            return None
        name = texts[0].rsplit("/", 1)[-1]
        if name in PRINTERS:
            printed = " ".join(a for a in texts[1:] if not re.fullmatch(r"-[neE]+", a))
            # printf (and echo -e, and dash's echo) decode backslash escapes: \n ends a line.
            return ansi_c(printed)
        if name == "cat":
            for r in (p for p in node.parts if p.kind == "redirect"):
                fed = self.fed_by_redirect(r)
                if fed is not None:
                    return fed
        return None

    def pipeline(self, node: Any) -> None:
        stages = [p for p in node.parts if p.kind not in ("pipe", "reservedword")]
        for stage in stages:
            self.visit(stage, False)
        for before, after in itertools.pairwise(stages):
            if after.kind != "command":
                continue
            _, texts = self.words_of(after)
            if not texts or texts[0].rsplit("/", 1)[-1] not in SHELLS:
                continue
            if not program_from_stdin(texts[0].rsplit("/", 1)[-1], texts):
                continue
            fed = self.output_of(before)
            if fed:
                self.out.executed.append((node.pos[0], fed))


def _programs(name: str, texts: list[str]) -> list[str]:
    """Shell text a command runs from its arguments: eval, trap, sh -c, su -c."""
    if name == "eval" and len(texts) > 1:
        return [" ".join(texts[1:])]
    if name == "trap":
        action = [t for t in texts[1:] if t != "--"][:1]
        return action if action and action[0] != "-" else []
    if name in SHELLS or name in _SU:
        program = _dash_c(texts, su=name in _SU)
        return [program] if program is not None else []
    return []


def _dash_c(texts: list[str], *, su: bool) -> str | None:
    """The program string of ``sh -c STRING`` / ``su -c STRING`` (``--command=``)."""
    for i, arg in enumerate(texts[1:], start=1):
        if su and arg.startswith("--command="):
            return arg.split("=", 1)[1]
        if arg in ("-c", "--command") or (
            not su and re.fullmatch(r"[-+][a-zA-Z]*c[a-zA-Z]*", arg) is not None
        ):
            rest = [t for t in texts[i + 1 :] if not (t.startswith("-") and not su)]
            if su:
                rest = texts[i + 1 :]
            return rest[0] if rest else None
    return None


def read_shell(text: str, trees: list[Any]) -> ShellReading:
    """What ``trees`` (parsed from ``text``) execute and only print; see the module doc."""
    walk = _Walk(text)
    for tree in trees:
        walk.visit(tree, True)
    return walk.out
