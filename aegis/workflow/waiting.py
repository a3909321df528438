"""Requests the automation left waiting for a human, as ``aegis requests`` lists them.

An ``aegis unattended run`` pass whose plan falls outside the automation scope leaves its
request in ``policy`` and appends a note (an ``attach`` row by actor ``automation``, no
artifact) with ``waiting_for = "human"``, the reason and the delta's digest. Nobody asked
for that request, so nobody is waiting on it: it counts as stuck at once (``aegis requests
--stuck``, the stuck metric), not after the state's threshold. Once a human acts on it
(an approval, a sign, a cancel) the note is no longer the last row and the request is an
ordinary one again.

The note is display only: group ``aegis`` writes the store, so a forged note can at most
make a request show as waiting; whether it may be approved or signed is decided from its
verified evidence (aegis/standing.py), never from this.

Example:
    >>> waiting_reason(history)
    'outside the automation scope: aegis-benign 1.1: comes from ..., not an automation source'
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

from aegis.workflow.records import HistoryRecord

NOTE_TRIGGER = "attach"
WAITING_FOR = "waiting_for"
MAX_REASON_CHARS = 2000


@dataclass(frozen=True)
class RequestNote:
    """What ``aegis requests`` shows beside a request row."""

    actor: str
    """Who made the request (its first history row's actor), e.g. ``automation``."""
    waiting: str | None
    """Why it waits for a human, when the automation left it so and no human has acted."""


def waiting_facts(reasons: Sequence[str], delta: str) -> dict[str, str]:
    """The facts of the note an automation pass appends to a request it leaves waiting."""
    reason = "outside the automation scope: " + "; ".join(reasons)
    return {WAITING_FOR: "human", "reason": reason[:MAX_REASON_CHARS], "delta": delta}


def waiting_reason(history: Sequence[HistoryRecord]) -> str | None:
    """Why the request waits for a human, when its last row is the automation's note."""
    if not history:
        return None
    last = history[-1]
    if last.trigger != NOTE_TRIGGER or last.facts.get(WAITING_FOR) != "human":
        return None
    reason = last.facts.get("reason")
    return reason[:MAX_REASON_CHARS] if isinstance(reason, str) else "waiting for a human"


def waiting_delta(history: Sequence[HistoryRecord]) -> str | None:
    """The delta digest of the automation's note, when the request still waits on it."""
    if waiting_reason(history) is None:
        return None
    delta = history[-1].facts.get("delta")
    return delta if isinstance(delta, str) else None


def note_for(history: Sequence[HistoryRecord]) -> RequestNote:
    """The note ``aegis requests`` shows for a request with this verified history."""
    actor = history[0].actor if history else ""
    return RequestNote(actor, waiting_reason(history))


def delta_digest(lines: Sequence[str]) -> str:
    """SHA-256 of a plan's changes (one ``name action from -> to`` line each, any order)."""
    return hashlib.sha256("\n".join(sorted(lines)).encode()).hexdigest()
