"""What verifying an audit log finds: the report, its problems, the lines it reads.

:mod:`aegis.audit.verify` reads the segments into :class:`Entry` records and fills a
:class:`VerifyReport`; :mod:`aegis.audit.walk` checks the hash chain over those
entries. Both record findings with :func:`add_problem`, so every problem names the
segment file and the 1-based line where it is.

Example:
    >>> report = VerifyReport(path="/var/log/aegis/audit.jsonl")
    >>> report.ok
    True
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from aegis.audit.event import GENESIS_HASH


@dataclass(frozen=True)
class Problem:
    """One finding, located at a line of a file."""

    file: str
    """Segment file name."""
    line: int
    """1-based line number in that file."""
    kind: str
    """modified, inserted, deleted, reordered, duplicated, malformed, torn-tail, sequence,
    checkpoint, truncated, witness-mismatch, witness."""
    message: str


@dataclass
class VerifyReport:
    """The outcome of :func:`aegis.audit.verify.verify`."""

    path: str
    segments: list[str] = field(default_factory=list)
    lines: int = 0
    events: int = 0
    head_seq: int = 0
    head_hash: str = GENESIS_HASH
    checkpoints: int = 0
    last_checkpoint_seq: int = 0
    """Highest sequence number covered by a valid signed checkpoint in the log."""
    covered_seq: int = 0
    """Highest sequence number vouched for: a signed checkpoint's head, or the checkpoint
    event right after it that carries the signed document (it cannot sign itself)."""
    witness_seq: int | None = None
    problems: list[Problem] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    request_last_seq: dict[str, int] = field(default_factory=dict)
    """For each request id, the sequence number of its last event."""

    @property
    def ok(self) -> bool:
        """True when no problem was found."""
        return not self.problems

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dict (without the per-request index)."""
        out = asdict(self)
        out.pop("request_last_seq")
        out["ok"] = self.ok
        return out


@dataclass(slots=True)
class Entry:
    """One line of a segment as the verifier read it."""

    file: str
    """Segment file name."""
    line: int
    """1-based line number in that file."""
    raw: bytes
    """The line's bytes, kept only when it is not an event (to match a recorded torn tail)."""
    body: dict[str, Any] | None
    """The event's fields the walk needs; None when the line is not an event."""
    digest: str | None
    """The ``event_hash`` the line claims; None when the line is not an event."""
    hash_ok: bool
    """True when the body hashes to ``digest``."""
    error: str | None = None
    """Why the line is not an event."""


def add_problem(report: VerifyReport, entry: Entry, kind: str, message: str) -> None:
    """Record a problem of ``kind`` at ``entry``'s file and line."""
    report.problems.append(Problem(entry.file, entry.line, kind, message))
