"""``aegis audit verify`` as a document (split from :mod:`aegis.api_agent`, which re-exports it).

The CLI and the MCP server's ``audit_verify`` tool both call :func:`audit_verify`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from aegis.agent_text import agent_view
from aegis.errors import AegisError, EnvironmentFailure, InputError

if TYPE_CHECKING:
    from aegis.api_outcome import Outcome
    from aegis.audit.witness import WitnessChoice
    from aegis.config import Config


def audit_verify(
    cfg: Config,
    *,
    path: Path | None = None,
    witness: Path | None = None,
    public_key_hex: str | None = None,
) -> Outcome:
    """Verify the audit log (``aegis audit verify``): hashes, links, checkpoints, witness.

    The error is set for problems found (4) or an unreadable witness (7, tail unchecked).
    ``public_key_hex`` is a checked key (the CLI checks ``--public-key-hex``); by default
    the trusted audit key of the configuration.

    Raises:
        InputError: the log or a given witness does not exist; a malformed key.
        EnvironmentFailure: the log cannot be read.
    """
    from aegis.audit.verify import default_public_key_path, read_public_key_hex, verify
    from aegis.audit.witness import apply_witness_choice
    from aegis.errors import TrustError

    log_path = path or cfg.audit_path
    try:
        os.stat(log_path)
    except FileNotFoundError as e:
        raise InputError(f"audit log {log_path} does not exist") from e
    except OSError as e:
        raise unreadable(log_path, e) from e
    key = public_key_hex or read_public_key_hex(default_public_key_path(cfg.keys_dir))
    choice, witness = _choose_witness(cfg, path, witness)
    try:
        report = verify(log_path, audit_public_key_hex=key, witness=witness)
    except InputError as e:
        if isinstance(e.__cause__, PermissionError):
            raise unreadable(log_path, e.__cause__) from e
        raise
    unchecked = apply_witness_choice(report, choice) if choice is not None else False
    shown = witness or (choice.path if choice is not None else None)
    status = choice.status if choice is not None else "given"
    doc = agent_view(report.to_dict())
    doc["witness"] = str(shown) if shown else None
    doc["witness_status"] = status
    doc["tail_checked"] = not unchecked and witness is not None
    error: AegisError | None = None
    if not report.ok:
        first = report.problems[0]
        error = TrustError(
            f"audit log {log_path} failed verification: {len(report.problems)} problem(s), "
            f"first at {first.file} line {first.line} ({first.kind})"
        )
    elif unchecked:
        error = EnvironmentFailure(
            f"audit log {log_path}: hashes, links and checkpoints verify, but the witness "
            f"{shown} cannot be read: the tail after seq {report.last_checkpoint_seq} is "
            "unchecked",
            hint=_witness_hint(),
        )
    from aegis.api_outcome import Outcome

    return Outcome(doc, error, {"report": report, "shown": shown, "status": status})


def _choose_witness(
    cfg: Config, path: Path | None, witness: Path | None
) -> tuple[WitnessChoice | None, Path | None]:
    """(what to report about the witness, the file to verify against).

    The configured log gets the witness aegisd writes (aegisd.toml witness_file); a
    ``--witness`` that does not exist is a typo (exit 3); one this user may not read
    leaves the tail unchecked, like the default one.
    """
    from aegis.audit.witness import host_witness, probe

    if witness is None and (path is None or path == cfg.audit_path):
        choice = host_witness(cfg)
        return choice, choice.readable
    if witness is None:
        return None, None
    given = probe(witness)
    if given.status == "missing":
        raise InputError(f"witness {witness} does not exist")
    if given.status == "unchecked":
        return given, None
    return None, witness


def _witness_hint() -> str:
    from aegis.config import group_gid, in_group, join_group_hint

    if not in_group(group_gid()):
        return join_group_hint()
    return (
        "aegisd writes the witness 0640 root:aegis in /var/log/aegis by default; an "
        "aegisd.toml witness_file inside aegisd's own 0700 directory cannot be read by "
        "the group (remove that line and restart aegisd)"
    )


def unreadable(path: Path, e: OSError) -> AegisError:
    """The error for an audit log the caller cannot read (with the join hint)."""
    from aegis.config import group_gid, in_group, join_group_hint

    hint = None if in_group(group_gid()) else join_group_hint()
    return EnvironmentFailure(f"cannot read audit log {path}: {e.strerror or e}", hint=hint)
