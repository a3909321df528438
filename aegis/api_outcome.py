"""What an agent-facing call returns (:mod:`aegis.api_agent`, :mod:`aegis.api_audit`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from aegis.errors import AegisError


@dataclass
class Outcome:
    """A ``--json`` document and the error the CLI exits with after printing it."""

    doc: dict[str, Any]
    error: AegisError | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    """What the CLI's human rendering needs besides the document."""
