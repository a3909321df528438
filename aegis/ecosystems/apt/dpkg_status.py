r"""Facts planning reads from dpkg's status file with one line scan. Pure.

- ``references``: installed package names and the names their Depends/Pre-Depends
  name (what a lookalike would imitate, :mod:`aegis.analyze.lookalike`);
- ``holds``: packages on hold (``Status: hold ...``, set by ``apt-mark hold``), so a
  package apt keeps back because of a hold is named as a hold, not as "needs new
  packages".

A line scan, not a deb822 parse: it runs on every plan and needs three fields.

Example:
    >>> scan_status("Package: a\nStatus: hold ok installed\n").holds
    frozenset({'a'})
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from aegis.bounds import MAX_DPKG_STATUS_BYTES as MAX_STATUS_BYTES
from aegis.errors import AegisError
from aegis.safe_read import read_capped


@dataclass(frozen=True)
class StatusFacts:
    """What one scan of dpkg's status file gives planning."""

    references: frozenset[str]
    holds: frozenset[str]


def _dep_names(field: str) -> list[str]:
    out = []
    for alt in field.replace("|", ",").split(","):
        name = alt.strip().split(" ", 1)[0].split(":", 1)[0].split("(", 1)[0]
        if name:
            out.append(name)
    return out


def scan_status(text: str) -> StatusFacts:
    """Scan dpkg's status text (see the module doc)."""
    names: set[str] = set()
    holds: set[str] = set()
    current, installed = "", False
    deps: list[str] = []
    for line in [*text.splitlines(), ""]:
        if not line:
            if installed:
                for field in deps:
                    names.update(_dep_names(field))
            current, installed, deps = "", False, []
        elif line.startswith("Package: "):
            current = line[9:].strip()
        elif line.startswith("Status: "):
            words = line[8:].split()
            if words[-1:] == ["installed"]:
                installed = True
                names.add(current)
            if words[:1] == ["hold"] and current:
                holds.add(current)
        elif line.startswith(("Depends: ", "Pre-Depends: ")):
            deps.append(line.split(":", 1)[1])
    return StatusFacts(frozenset(names), frozenset(holds))


def read_status_facts(path: Path) -> StatusFacts:
    """Scan the status file at ``path``; an absent or unreadable one has no facts."""
    try:
        data = read_capped(path, MAX_STATUS_BYTES, "dpkg status")
    except AegisError:
        return StatusFacts(frozenset(), frozenset())
    return scan_status(data.decode("utf-8", "replace"))
