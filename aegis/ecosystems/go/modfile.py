"""A strict reader of ``go.mod`` files: requirements, replacements, retractions. Pure.

Planning used to ask ``go mod edit -json`` for these (two go processes per plan, each costing
more than a third of the whole ``go mod download`` the plan is measured against). The lexer
follows golang.org/x/mod/modfile (``//`` comments, ``"..."`` strings, ``( ) [ ] ,``
punctuation, every other printable run an identifier; ``verb (`` ... ``)`` blocks) and is
stricter where that is cheaper: an escape inside a quoted string, a ``/*`` or a
non-printable character is refused (:class:`ModFileError`), and the caller fails closed (a
main module's file) or asks go itself (a dependency's).

Versions are made canonical as go does (``v1.2`` is ``v1.2.0``; build metadata dropped but
``+incompatible`` kept); :func:`compare` orders them as ``golang.org/x/mod/semver`` does.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

MAX_LINES = 100_000

_TOKEN = re.compile(
    r"[ \t\r]+|(?P<c>//.*)|(?P<s>\"[^\"\\]*\")|(?P<p>[()\[\]{},])"
    r"|(?P<i>(?!//)[^\s()\[\]{},\"`](?:(?!//)[^\s()\[\]{},])*)"
)
_NUM = r"(?:0|[1-9][0-9]*)"
_IDENT = r"[0-9A-Za-z-]+"
_SEMVER = re.compile(
    rf"v(?P<maj>{_NUM})(?:\.(?P<min>{_NUM})(?:\.(?P<pat>{_NUM})"
    rf"(?:-(?P<pre>{_IDENT}(?:\.{_IDENT})*))?(?:\+(?P<build>{_IDENT}(?:\.{_IDENT})*))?)?)?"
)


class ModFileError(ValueError):
    """A go.mod this reader does not accept."""


@dataclass(frozen=True)
class Retraction:
    """``retract low`` or ``retract [low, high]``, with its comment (the rationale)."""

    low: str
    high: str
    rationale: str


@dataclass
class ModFile:
    """The parts of a go.mod planning reads (``go mod edit -json``'s names)."""

    require: dict[str, str] = field(default_factory=dict)
    replace: list[dict[str, dict[str, str]]] = field(default_factory=list)
    retract: list[Retraction] = field(default_factory=list)


def canonical(v: str) -> str:
    """Go's ``module.CanonicalVersion``: ``""`` when ``v`` is not a semantic version."""
    m = _SEMVER.fullmatch(v)
    if m is None:
        return ""
    if m["min"] is None or m["pat"] is None:
        return f"v{m['maj']}.{m['min'] or 0}.0"  # short forms carry no pre-release or build
    if m["pre"] and any(p.isdigit() and len(p) > 1 and p[0] == "0" for p in m["pre"].split(".")):
        return ""
    out = f"v{m['maj']}.{m['min']}.{m['pat']}" + (f"-{m['pre']}" if m["pre"] else "")
    return out + ("+incompatible" if m["build"] == "incompatible" else "")


def is_valid(v: str) -> bool:
    """``semver.IsValid``."""
    return canonical(v) != ""


def sort_key(v: str) -> tuple[int, tuple[int, int, int], int, tuple[tuple[int, int, str], ...]]:
    """Sorts versions as :func:`compare` orders them."""
    m = _SEMVER.fullmatch(v)
    if m is None:
        return (0, (0, 0, 0), 0, ())  # invalid versions sort below every valid one
    nums = (int(m["maj"]), int(m["min"] or 0), int(m["pat"] or 0))
    pre = m["pre"] or ""
    ids = tuple((0, int(p), "") if p.isdigit() else (1, 0, p) for p in pre.split(".")) if pre \
        else ()  # fmt: skip
    return (1, nums, 0 if pre else 1, ids)


def compare(a: str, b: str) -> int:
    """-1, 0 or 1 as ``semver.Compare`` (build metadata ignored)."""
    ka, kb = sort_key(a), sort_key(b)
    return (ka > kb) - (ka < kb)


def _unquote(tok: str) -> str:
    if tok.startswith('"'):
        return tok[1:-1]  # the lexer admits no escapes
    if any(q in tok for q in "\"'`"):
        raise ModFileError(f"unquoted string cannot contain quote: {tok[:80]!r}")
    return tok


def _version(tok: str) -> str:
    v = canonical(_unquote(tok))
    if not v:
        raise ModFileError(f"invalid version {tok[:80]!r}")
    return v


def _lex(line: str, n: int) -> tuple[list[str], str | None]:
    toks: list[str] = []
    pos = 0
    while pos < len(line):
        m = _TOKEN.match(line, pos)
        if m is None:
            raise ModFileError(f"line {n}: unexpected input {line[pos : pos + 20]!r}")
        pos = m.end()
        if m["c"] is not None:
            return toks, m["c"]
        tok = m["s"] or m["p"] or m["i"]
        if tok:
            if "/*" in tok or not tok.isprintable():
                raise ModFileError(f"line {n}: unexpected input in {tok[:40]!r}")
            toks.append(tok)
    return toks, None


def _note(comments: list[str]) -> str:
    return "\n".join(c[2:].strip() for c in comments if c.startswith("//"))


def _directive(
    mf: ModFile, verb: str, args: list[str], rationale: str, *, strict: bool, n: int
) -> None:
    try:
        if verb == "require":
            if len(args) != 2:  # noqa: PLR2004 - path and version
                raise ModFileError("usage: require module/path v1.2.3")
            mf.require[_unquote(args[0])] = _version(args[1])
        elif verb == "replace":
            arrow = 2 if len(args) >= 3 and args[2] == "=>" else 1  # noqa: PLR2004
            if len(args) < arrow + 2 or len(args) > arrow + 3 or args[arrow] != "=>":
                raise ModFileError("usage: replace module/path [v1.2.3] => other [v1.2.3]")
            old = {"Path": _unquote(args[0])}
            if arrow == 2:  # noqa: PLR2004
                old["Version"] = _version(args[1])
            new = {"Path": _unquote(args[arrow + 1])}
            if len(args) == arrow + 3:
                new["Version"] = _version(args[arrow + 2])
            mf.replace.append({"Old": old, "New": new})
        elif verb == "retract":
            if len(args) == 1:
                low = high = _version(args[0])
            elif len(args) == 5 and args[0] == "[" and args[2] == "," and args[4] == "]":  # noqa: PLR2004
                low, high = _version(args[1]), _version(args[3])
            else:
                raise ModFileError("usage: retract v1.2.3 or retract [v1.2.3, v1.3.0]")
            mf.retract.append(Retraction(low, high, rationale))
    except ModFileError as e:
        if strict or verb != "retract":  # go skips a dependency's malformed interval
            raise ModFileError(f"line {n}: {e}") from e


def parse(text: str, *, strict: bool = True) -> ModFile:
    """The requirements, replacements and retractions of a go.mod.

    ``strict``: the main module's file (every ``retract`` must parse); a dependency's file
    skips retractions go would skip.

    Raises:
        ModFileError: outside the grammar above.
    """
    mf = ModFile()
    lines = text.split("\n")
    if len(lines) > MAX_LINES:
        raise ModFileError(f"more than {MAX_LINES} lines")
    block: str | None = None
    block_note: list[str] = []
    block_lines = 0
    before: list[str] = []
    for n, line in enumerate(lines, 1):
        toks, comment = _lex(line, n)
        if not toks:
            if comment is not None:
                before.append(comment)
            elif block is None:
                before = []  # at top level a blank line ends a comment group
            elif (before and before[-1]) or (not before and block_lines):
                before.append("")  # in a block go keeps it as an empty comment
            continue
        suffix = [comment] if comment is not None else []
        if block is not None:
            if toks == [")"]:
                block, block_note, before = None, [], []
                continue
            # A line's own comments (a blank line counts), else the block's: go's rule.
            note = _note(before + suffix) if before or suffix else _note(block_note)
            _directive(mf, block, toks, note, strict=strict, n=n)
            block_lines += 1
        elif toks[-1] == "(" and len(toks) == 2:  # noqa: PLR2004 - verb (
            block, block_note, block_lines = toks[0], before + suffix, 0
        elif toks[-2:] == ["(", ")"] and len(toks) == 3:  # noqa: PLR2004 - verb ()
            pass
        else:
            _directive(mf, toks[0], toks[1:], _note(before + suffix), strict=strict, n=n)
        before = []
    if block is not None:
        raise ModFileError(f"unterminated {block} block")
    return mf
