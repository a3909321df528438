"""A plan's time, id and host: what every ecosystem's planner stamps on the plans it makes.

Kept apart from :mod:`aegis.ecosystems.apt.plan` (the apt analyzer, whose imports cost pip's and
npm's planners ~60 ms of CPU while their tool runs beside them), which stamps apt
plans with the same three functions.
"""

from __future__ import annotations

import secrets
import socket
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from aegis.model import Host

if TYPE_CHECKING:
    from aegis.config import Config


def format_time(dt: datetime) -> str:
    """UTC ISO-8601 with ``Z``, second precision (the plan's time format)."""
    return dt.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def new_plan_id() -> str:
    """A fresh, unguessable plan id."""
    return "plan-" + secrets.token_hex(10)


def this_host(cfg: Config) -> Host:
    """This machine's identity (``host_id`` overrides /etc/machine-id in tests and demo)."""
    machine_id = cfg.host_id
    if not machine_id:
        try:
            machine_id = Path("/etc/machine-id").read_text(encoding="ascii").strip()
        except OSError:
            machine_id = "unknown"
    return Host(machine_id=machine_id, hostname=socket.gethostname())
