"""aegisd's ``ping`` answer: readiness, and what would refuse an apply right now.

A client asks before it moves its request to ``applying``, so a busy dpkg lock or an
unusable audit log leaves the request ``signed`` (docs/design.md "dpkg's lock").
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from aegis.errors import AegisError
from aegis.execute.dpkg_lock import admin_dir, probe
from aegis.execute.protocol import Answer

if TYPE_CHECKING:
    from aegis.execute.daemon import Aegisd


def ping_answer(d: Aegisd) -> Answer:
    """Readiness, and what would refuse an apply right now (a client asks first).

    ``dpkg_locked`` says another package manager holds dpkg's lock and ``audit_log``
    why the audit log cannot be opened, so the client can leave its request ``signed``;
    ``audit_append_failures`` counts failed appends, checkpoints and probes of the
    audit log since aegisd started.
    """
    audit_log = None
    try:
        d.audit.probe(count=False)
    except AegisError as e:
        audit_log = e.message
    dpkg_locked = probe(admin_dir(d.cfg.dpkg_root))
    return Answer(
        ok=True,
        message=d.settings.keys_problem or "aegisd ready",
        result={
            "trusted_signer_keys": len(d.settings.signer_keys),
            "trusted_approver_keys": len(d.settings.approver_keys),
            "dpkg_locked": dpkg_locked,
            "audit_log": audit_log,
            "audit_append_failures": d.audit.failures,
            "audit_last_failure": d.audit.last_failure,
        },
    )
