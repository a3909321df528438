"""Workflow stage ``auditor``: applied -> audited once the request's audit events verify.

``aegisctl apply`` moves its request to ``audited`` right after the run. When that
could not happen (the client died, the log or the key was not readable then), the
request waits in ``applied`` and ``aegis resume`` asks this stage, which makes the
same check: the whole log verifies against the trusted audit key
(``<keys_dir>/audit.pub``, root-owned) and a checkpoint signed by that key covers the
request's last event. Until then the answer is None and the request stays where it is.

Example:
    >>> make_auditor(cfg).verify(request).trigger
    'audit'
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from aegis.audit.verify import default_public_key_path, request_events_verify
from aegis.workflow.stages import StageOutcome

if TYPE_CHECKING:
    from aegis.config import Config
    from aegis.workflow.records import RequestRecord
    from aegis.workflow.stages import StageOutcome

AUDIT_REASON = "audit events verify"


def request_audit_verifies(cfg: Config, request_id: str) -> bool:
    """True when the log verifies and a signed checkpoint covers the request's events."""
    try:
        pub = default_public_key_path(cfg.keys_dir).read_text(encoding="ascii").strip()
    except (OSError, UnicodeDecodeError):
        return False
    return request_events_verify(cfg.audit_path, request_id, audit_public_key_hex=pub)


@dataclass(frozen=True)
class AuditStage:
    """Answers ``audit`` for an applied request whose events verify; else None."""

    cfg: Config

    def verify(self, request: RequestRecord) -> StageOutcome | None:
        """Return trigger ``audit`` when the events verify; None when not (yet)."""
        if not request_audit_verifies(self.cfg, request.id):
            return None
        return StageOutcome("audit", evidence={"reason": AUDIT_REASON}, note=AUDIT_REASON)


def make_auditor(cfg: Config) -> AuditStage:
    """Factory registered as the ``auditor`` stage."""
    return AuditStage(cfg)
