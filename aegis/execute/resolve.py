"""``aegisctl resolve``: an operator settles an interrupted request, signed and audited.

An interrupted request (aegisd recorded ``started`` without ``finished``) is never
re-run. An operator looks at the host and resolves it ``--as applied`` or
``--as failed``. The claim is checked against dpkg's status first (applied: every
target of the signed delta is in its signed state; failed: not all of them are),
signed with the operator's key (a resolution document, ``aegis.resolution/1``),
sent to aegisd, which verifies the signature with its trusted operator (signer)
keys, checks its ledger says ``started``, records the resolution in the ledger and
writes the audit event; then the request moves ``interrupted -> applied|failed``
(and ``applied -> audited`` when its audit events verify). A plan with health probes is
verified by aegisd from the resolution on, like a run that just finished: kept and
audited when its probes pass, the delta restored when they fail.

Example:
    aegisctl resolve r-1a2b --as applied --reason "dpkg shows 1.2 installed" --key ops.key
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import Any

from aegis.canonical import canonical_bytes, loads_strict
from aegis.codec import from_dict, to_dict
from aegis.config import Config
from aegis.ecosystems.apt import dpkg
from aegis.ecosystems.apt.drift import compare_with_delta
from aegis.ed25519 import public_hex, sign_canonical, verify_canonical
from aegis.errors import InputError, StateError, TrustError
from aegis.execute import runner, verify_client
from aegis.execute.client import _refusal_error, socket_path
from aegis.execute.protocol import Request, call
from aegis.execute.service import _advance, _audit
from aegis.sign.execution_plan import parse_execution_plan
from aegis.sign.keys import load_signing_key
from aegis.sign.times import format_time
from aegis.workflow import access
from aegis.workflow.files import write_atomic

RESOLUTION_SCHEMA = "aegis.resolution/1"
OUTCOMES = ("applied", "failed")
MAX_RESOLUTION_BYTES = 64 * 1024


@dataclass(frozen=True)
class Resolution:
    """An operator's signed statement of what an interrupted execution did."""

    schema_version: str
    request_id: str
    execution_id: str
    resolved_as: str
    reason: str
    dpkg_check: tuple[str, ...]
    """One line per target: what dpkg showed when the operator resolved."""
    operator_id: str
    operator_public_key_hex: str
    created_at: str
    signature_hex: str


def _body(res: Resolution) -> dict[str, Any]:
    body: dict[str, Any] = to_dict(res)
    body.pop("signature_hex")
    return body


def sign_resolution(res: Resolution, key: Any) -> Resolution:
    """Return ``res`` signed by ``key`` (its public key recorded)."""
    unsigned = replace(res, operator_public_key_hex=public_hex(key), signature_hex="")
    return replace(unsigned, signature_hex=sign_canonical(_body(unsigned), key))


def resolution_bytes(res: Resolution) -> bytes:
    """Canonical bytes of the document."""
    return canonical_bytes(to_dict(res))


def parse_resolution(data: bytes) -> Resolution:
    """Parse a resolution strictly.

    Raises:
        InputError: malformed.
    """
    doc = loads_strict(data, max_bytes=MAX_RESOLUTION_BYTES)
    if not isinstance(doc, dict) or doc.get("schema_version") != RESOLUTION_SCHEMA:
        raise InputError(f"not a resolution ({RESOLUTION_SCHEMA})")
    res = from_dict(Resolution, doc)
    if res.resolved_as not in OUTCOMES:
        raise InputError(f"resolved_as must be one of {OUTCOMES}")
    if not res.reason.strip():
        raise InputError("a resolution needs a reason")
    return res


def verify_resolution(res: Resolution, trusted_keys: tuple[str, ...]) -> None:
    """Check the signature and that the key is a trusted operator key.

    Raises:
        TrustError: untrusted key or bad signature.
    """
    if res.operator_public_key_hex.lower() not in {k.lower() for k in trusted_keys}:
        raise TrustError("the resolution is not signed by a trusted operator key")
    if not verify_canonical(_body(res), res.signature_hex, res.operator_public_key_hex):
        raise TrustError("the resolution's signature does not verify")


def dpkg_check(targets: Any, state: dict[str, tuple[str, str]]) -> tuple[list[str], bool]:
    """Return one line per target and whether every target is in its signed state."""
    lines, all_done = [], True
    for t in targets:
        key = f"{t.name}:{t.arch}"
        found = state.get(key) or next(
            (v for k, v in state.items() if k.split(":", 1)[0] == t.name), None
        )
        lines.append(
            f"{t.name}: signed {t.action.value} {t.version}; dpkg shows "
            f"{' '.join(found) if found else 'absent'}"
        )
        if compare_with_delta({}, {key: found} if found else {}, [t]):
            all_done = False
    return lines, all_done


def resolve(
    cfg: Config,
    request_id: str,
    resolved_as: str,
    reason: str,
    key_path: Path,
    *,
    operator_id: str,
    now: datetime,
    socket: Path | None = None,
    passphrase: bytes | None = None,
) -> tuple[str, Path]:
    """Resolve an interrupted request; return its new state and the resolution file.

    Raises:
        InputError: bad outcome or no reason.
        StateError: the request is not interrupted, or dpkg contradicts the claim.
        TrustError: aegisd refused the resolution's signature.
    """
    if resolved_as not in OUTCOMES:
        raise InputError(f"--as must be one of {', '.join(OUTCOMES)}")
    if not reason.strip():
        raise InputError("--reason is required")
    rec = access.get_request(cfg, request_id)
    if rec.state != "interrupted":
        raise StateError(f"request {request_id} is {rec.state}; only interrupted requests resolve")
    found = access.latest_artifact(cfg, request_id, "execution-plan")
    if found is None:
        raise StateError(f"request {request_id} has no execution plan")
    ep = parse_execution_plan(found[1])
    lines, all_done = dpkg_check(
        ep.targets, dpkg.dpkg_status(cfg.dpkg_root, runner.child_env(None))
    )
    if resolved_as == "applied" and not all_done:
        raise StateError(
            "dpkg does not show the signed delta applied: " + "; ".join(lines),
            hint="resolve --as failed, or plan a recovery (aegisctl recover --plan)",
        )
    if resolved_as == "failed" and all_done and ep.targets:
        raise StateError(
            "dpkg shows every target in its signed state: " + "; ".join(lines),
            hint="resolve --as applied",
        )
    key = load_signing_key(key_path, passphrase)
    res = sign_resolution(
        Resolution(
            RESOLUTION_SCHEMA,
            request_id,
            ep.execution_id,
            resolved_as,
            reason,
            tuple(lines),
            operator_id,
            "",
            format_time(now),
            "",
        ),
        key,
    )
    data = resolution_bytes(res)
    answer = call(
        socket_path(cfg, socket),
        Request(
            op="resolve",
            execution_id=ep.execution_id,
            request_id=request_id,
            document=data.decode("utf-8"),
        ),
        timeout_s=60,
    )
    if not answer.ok:
        raise _refusal_error(answer.refusal, answer.message)

    # The store is group-writable and the name predictable: never through a planted link.
    path = cfg.state_dir / "resolutions" / f"{request_id}.resolution.json"
    write_atomic(path, data + b"\n", host_install=cfg.home is None)
    state = _advance(
        cfg,
        request_id,
        f"resolve_{resolved_as}",
        artifact_kind="resolution",
        artifact=data,
        artifact_path=str(path),
        evidence={"reason": reason[:1000], "execution_id": ep.execution_id},
    )
    verification = (answer.result or {}).get("verification")
    if state == "applied" and verification:
        # Signed health probes: aegisd verifies from the resolution on, as after a run;
        # record its verdict (kept -> audited, or restored), or leave it for aegis resume.
        state, verification = verify_client.settle(
            cfg, request_id, ep.execution_id, str(socket_path(cfg, socket)), verification
        )
        failed = verify_client.outcome_error(ep.execution_id, request_id, verification)
        if failed is not None:
            raise failed
    elif state == "applied" and ep.verification is None and _audit(cfg, request_id):
        state = "audited"
    return state, path
