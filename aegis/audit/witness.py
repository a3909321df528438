"""Which witness a verify of the host's log uses, and what it may conclude without one.

aegisd copies every signed checkpoint to its witness file (``witness_file`` in
aegisd.toml, default ``<log_dir>/audit-witness.jsonl``, 0640 root:aegis), so every
member of group ``aegis`` checks truncation, not only root. The file holds signed
checkpoints only: reading it gives away nothing the log does not already show.

Without the witness, a verify cannot see lines removed from the end of the log, so it
must not say "verified" as if it could:

- the witness cannot be read (permissions): the tail after the log's last checkpoint
  is *unchecked*; the verify exits 7 and says so;
- the witness is missing beside a log that has events: aegisd creates the witness when
  it first starts (empty, with the empty log) and copies every checkpoint to it, so the
  file was removed: a ``witness-missing`` problem (exit 4). Whether the log still holds
  a checkpoint does not matter: truncation may have removed them all;
- the witness is empty and the log holds no checkpoint yet (a fresh host): nothing was
  ever witnessed; verified (an empty witness beside checkpoints is a problem,
  :func:`aegis.audit.verify.verify` reports it);
- the operator turned the witness off (``witness_file = ""``): verified, with a warning.

Example:
    >>> choice = host_witness(cfg)
    >>> report = verify(cfg.audit_path, audit_public_key_hex=key, witness=choice.readable)
    >>> apply_witness_choice(report, choice)
"""

from __future__ import annotations

import errno
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from aegis.audit.report import Problem

if TYPE_CHECKING:
    from aegis.audit.report import VerifyReport
    from aegis.config import Config

WITNESS_NAME = "audit-witness.jsonl"
UNCHECKED = "unchecked"
MISSING = "missing"


@dataclass(frozen=True)
class WitnessChoice:
    """Where the witness is and whether this user can read it."""

    path: Path | None
    """The witness file aegisd writes; None when it is turned off."""
    status: str
    """``readable``, ``missing``, ``unchecked`` (cannot be read) or ``off``."""
    reason: str = ""

    @property
    def readable(self) -> Path | None:
        """The path to hand to :func:`aegis.audit.verify.verify`, when it can be read."""
        return self.path if self.status == "readable" else None


def probe(path: Path | None) -> WitnessChoice:
    """Classify ``path`` for this user without raising (``stat`` itself may be refused)."""
    if path is None:
        return WitnessChoice(None, "off")
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK | os.O_NOCTTY)
    except FileNotFoundError:
        return WitnessChoice(path, MISSING)
    except OSError as e:
        if e.errno == errno.ENOTDIR:
            return WitnessChoice(path, MISSING)
        return WitnessChoice(path, UNCHECKED, e.strerror or str(e))
    os.close(fd)
    return WitnessChoice(path, "readable")


def host_witness(cfg: Config) -> WitnessChoice:
    """The witness aegisd writes (aegisd.toml ``witness_file``), probed for this user."""
    # Lazy: aegisd's settings load its key directories' readers; `aegis audit verify`
    # and doctor import this module without asking for the host's witness.
    from aegis.execute.settings import configured_witness_file  # noqa: PLC0415

    return probe(configured_witness_file(cfg))


def apply_witness_choice(report: VerifyReport, choice: WitnessChoice) -> bool:
    """Add what the missing or unreadable witness means to ``report``.

    Returns:
        True when the tail is unchecked (the witness exists but could not be read).
    """
    if choice.status == "off":
        report.warnings.append(
            "no witness is configured (witness_file): lines removed from the end of the "
            "log cannot be detected"
        )
        return False
    assert choice.path is not None
    if choice.status == MISSING:
        if report.lines:
            report.problems.append(
                Problem(
                    choice.path.name,
                    0,
                    "witness-missing",
                    f"the witness {choice.path} is missing although the log has events "
                    "(aegisd creates it on its first start): lines removed from the end of "
                    "the log cannot be ruled out",
                )
            )
        return False
    if choice.status == UNCHECKED:
        report.warnings.append(
            f"cannot read the witness {choice.path} ({choice.reason}): the tail after seq "
            f"{report.last_checkpoint_seq} is unchecked (lines removed from the end of the "
            "log would not be seen)"
        )
        return True
    return False
