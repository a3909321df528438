"""What every client of aegisd shares: its socket, its refusals as errors, a run's status.

Below :mod:`aegis.execute.service` (``aegisctl apply``), :mod:`aegis.execute.resolve` and
:mod:`aegis.execute.verify_client`, which all talk to aegisd and none of which may import
another's module just for these.
"""

from __future__ import annotations

import os
from pathlib import Path

from aegis.config import Config
from aegis.errors import (
    AegisError,
    EnvironmentFailure,
    InputError,
    PolicyDenied,
    StateError,
    TrustError,
)
from aegis.execute import ledger as ledger_mod
from aegis.execute.protocol import Answer, Request, call
from aegis.execute.status_file import read_status
from aegis.execute.verifications import Verifications

RETRYABLE = (
    "refused:dpkg-locked",
    "refused:audit-log",
    "refused:deb-unavailable",
    "refused:verifying",
)
"""aegisd refusals that leave the execution id unused: the request is never failed."""


def socket_path(cfg: Config, override: Path | None) -> str:
    """The aegisd socket to use."""
    return str(override or cfg.aegisd_socket)


def _refusal_error(code: str | None, message: str) -> AegisError:
    """Map a named refusal to its error class (docs/design.md "Trust")."""
    code = code or ""
    if code in ("refused:malformed", "refused:oversized", "refused:slow-client"):
        return InputError(f"{code}: {message}")
    if code == "refused:policy":
        return PolicyDenied(f"{code}: {message}")
    if code in ("refused:replayed", "refused:revoked", "refused:state"):
        return StateError(f"{code}: {message}", hint="sign a new execution plan")
    if code == "refused:dpkg-audit":
        return StateError(f"{code}: {message}", hint="aegisctl recover --plan")
    if code == "refused:deb-unavailable":
        return EnvironmentFailure(
            f"{code}: {message}", hint="check the repository, then apply again"
        )
    if code in RETRYABLE:
        return EnvironmentFailure(
            f"{code}: {message}",
            hint="nothing ran and the execution id is unused: aegisctl apply the same "
            "execution plan again once that is fixed",
        )
    if code == "refused:peer":
        return TrustError(f"{code}: {message}", hint="submit as root or a member of aegis-apply")
    return TrustError(f"{code}: {message}")


def ledger_status(cfg: Config, execution_id: str, sock: str | None = None) -> Answer | None:
    """Ask aegisd's ledger through the first channel this user has.

    Its socket, else the ledger file when readable (root), else the status file aegisd
    publishes for group aegis (:mod:`aegis.execute.status_file`).

    Returns:
        aegisd's status answer, or None when neither is reachable.
    """
    try:
        return call(
            sock or str(cfg.aegisd_socket),
            Request(op="status", execution_id=execution_id),
            timeout_s=30,
        )
    except AegisError:
        pass
    if not os.access(cfg.ledger_path, os.R_OK):
        # Not root (aegis-monitor): what aegisd publishes for group aegis.

        return read_status(cfg, execution_id)
    try:
        entry = ledger_mod.Ledger(cfg.ledger_path, create=False).lookup(execution_id)
    except AegisError:
        return None
    if entry is None:
        return Answer(ok=True, message="unknown to the ledger", execution_id=execution_id)

    row = Verifications(cfg.ledger_path).get(execution_id)
    return Answer(
        ok=True,
        message=f"execution {entry.state}",
        execution_id=execution_id,
        state=entry.state,
        exit_status=entry.exit_status,
        result={
            "outcome": entry.outcome,
            **({"verification": row.public()} if row is not None else {}),
        },
    )
