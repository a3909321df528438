"""The signed execution plan: its schema, strict parsing and building (pure).

An execution plan (schema ``aegis.execution-plan/2``) is what aegisd runs. It binds
exactly what docs/design.md "Trust" lists: the intent and exact targets (each with the
ecosystem's own artifact integrity), the operation
plan (embedded, so aegisd can compare its own re-derivation) and its hash, the
policy result hash with decision and controls, the review hash, the approvals,
the argv, the package-state hash, the host identity, a one-time execution id,
created and expires (TTL capped at :data:`MAX_TTL`), and the signer's id and key;
the signature covers the canonical JSON of every other field.

A stored execution plan must be *exactly* its canonical bytes (plus an optional
newline): any changed byte is refused either as malformed or by the signature.

Parsing is the first step of aegisd's order; the other named checks (signature,
host, time window, ledger, approvals, re-derivation, policy, argv) are in
:mod:`aegis.sign.checks`, kept apart so the document and the judgement of it can
each be read on their own. Nothing here does I/O or reads the clock: time and
keys are arguments.

Example:
    >>> ep = parse_execution_plan(path.read_bytes())  # refused:malformed on any bad byte
    >>> parse_execution_plan(execution_plan_bytes(ep)) == ep
    True
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import orjson

from aegis.canonical import canonical_bytes, encode_checked, loads_strict, sha256_hex
from aegis.codec import OMIT_DEFAULT, canonical_of, checked_plain, from_dict, to_dict
from aegis.errors import InputError, PolicyDenied
from aegis.health.spec import Verification, check_probe, check_verification
from aegis.model import PLAN_SCHEMA, Action, Host, Intent, Plan, Tool, plan_hash
from aegis.sign.approvals import Approval, approval_from_dict, check_approver_id
from aegis.sign.cohort_approval import CohortApproval, cohort_approval_from_dict
from aegis.sign.keys import public_hex, sign_canonical
from aegis.sign.refusals import Refusal, RefusalCode
from aegis.sign.times import format_time, parse_time

if TYPE_CHECKING:
    from nacl.signing import SigningKey

    from aegis.policy.result import PolicyResult

EXECUTION_PLAN_SCHEMA = "aegis.execution-plan/2"
"""What every plan signed now carries: exact targets bind the artifact integrity."""
EXECUTION_PLAN_SCHEMA_V1 = "aegis.execution-plan/1"
"""Plans signed before target integrity existed. Read for apt only, whose targets bind the
.deb's SHA-256 anyway; a version 1 plan of any other ecosystem is refused as malformed.
Such plans expire within :data:`MAX_TTL` of an upgrade, after which none is left."""
_SCHEMAS = (EXECUTION_PLAN_SCHEMA, EXECUTION_PLAN_SCHEMA_V1)
MAX_EXECUTION_PLAN_BYTES = 4 * 1024 * 1024
MAX_TTL = timedelta(hours=24)
DEFAULT_TTL = timedelta(hours=1)
MAX_ARGV_ITEMS = 4096

DECISIONS = ("allow", "allow-with-snapshot", "require-approval", "deny")
"""Policy decisions, least strict first (issue 4)."""

_EXEC_ID_RE = re.compile(r"\A[0-9a-f]{32}\Z")
_HEX64_RE = re.compile(r"\A[0-9a-f]{64}\Z")
_SIG_RE = re.compile(r"\A[0-9a-f]{128}\Z")
_VERSIONED = {Action.INSTALL, Action.UPGRADE, Action.DOWNGRADE, Action.REINSTALL}
_REMOVING = {Action.REMOVE, Action.PURGE}


@dataclass(frozen=True)
class ExactTarget:
    """One package of the delta at its exact version."""

    name: str
    arch: str
    action: Action
    version: str | None
    """Version installed afterwards; for removals the version being removed."""
    sha256: str | None = None
    """SHA-256 of the exact .deb installed (its provenance, or the kept snapshot .deb);
    None for removals. aegisd installs only a file with this hash."""
    size: int | None = None
    uri: str | None = None
    """Where that file is fetched from (the build apt's own resolution picked), or the
    path of the kept snapshot .deb."""
    integrity: str | None = field(default=None, metadata={OMIT_DEFAULT: True})
    """The ecosystem's own integrity of the artifact installed, self-describing
    (:attr:`aegis.model.PackageChange.integrity`: ``sha256:<hex>``, ``sha512-...``,
    ``h1:...``); None for removals, when none was verified, and in version 1 plans."""


@dataclass(frozen=True)
class PolicyBinding:
    """What the signer saw of the policy result."""

    result_hash: str
    """SHA-256 of the policy result's canonical JSON; approvals bind it too."""
    decision: str
    """One of :data:`DECISIONS`; never ``deny`` in a signed plan."""
    policy_version: str
    controls: tuple[str, ...]
    """Required controls, e.g. ``approval``, ``snapshot``."""
    required_approvals: int
    required_roles: tuple[str, ...]
    rule_ids: tuple[str, ...]
    """Rules that fired, for the audit event."""


@dataclass(frozen=True)
class ExecutionPlan:
    """A signed execution plan."""

    schema_version: str
    execution_id: str
    """One-time id, 128 random bits as 32 hex characters."""
    request_id: str | None
    intent: Intent
    targets: tuple[ExactTarget, ...]
    plan_hash: str
    plan: Plan
    """The operation plan itself; aegisd compares its re-derivation with it."""
    policy: PolicyBinding
    review_hash: str | None
    approvals: tuple[Approval, ...]
    argv: tuple[str, ...]
    package_state_hash: str
    host: Host
    created_at: str
    expires_at: str
    signer_id: str
    signer_public_key_hex: str
    signature_hex: str
    cohort_approvals: tuple[CohortApproval, ...] = field(default=(), metadata={OMIT_DEFAULT: True})
    """Approvals of this host's cohort (docs/design.md "Cohort approvals"); absent from
    a plan without them, whose bytes stay as before."""
    verification: Verification | None = field(default=None, metadata={OMIT_DEFAULT: True})
    """Health probes and the confirmation deadline aegisd holds the change to after the
    run (aegis/health); None: the change is kept once it ran (plans before issue 15)."""


def policy_binding(result: PolicyResult, result_hash: str) -> PolicyBinding:
    """The :class:`PolicyBinding` of a policy result whose canonical hash is ``result_hash``.

    The signer binds the recorded result this way; aegisd builds the same binding
    from its own re-evaluation (:func:`aegis.execute.apply.binding_from_result`).
    """
    controls: list[str] = []
    if result.controls.approval.count:
        controls.append("approval")
    if result.controls.snapshot:
        controls.append("snapshot")
    return PolicyBinding(
        result_hash=result_hash,
        decision=result.decision.value,
        policy_version=result.policy_version,
        controls=tuple(controls),
        required_approvals=result.controls.approval.count,
        required_roles=tuple(result.controls.approval.roles),
        rule_ids=tuple(f.rule_id for f in result.fired),
    )


def derive_targets(plan: Plan) -> tuple[ExactTarget, ...]:
    """The exact targets of ``plan``'s delta (held-back packages are not changes).

    A package installed is bound to its file: SHA-256, size and URI from the plan's
    provenance, or the kept .deb of a rollback snapshot; and to the integrity its
    ecosystem recorded on the change (every ecosystem fills it the same way).
    """
    files = {(p.package, p.arch, p.version): (p.sha256, p.size, p.uri) for p in plan.provenance}
    for d in plan.snapshot_debs:
        files.setdefault((d.package, d.arch, d.version), (d.sha256, d.size, d.path))
    out: list[ExactTarget] = []
    for change in plan.changes:
        integrity: str | None = None
        if change.action in _VERSIONED:
            version = change.candidate_version
            sha256, size, uri = files.get((change.name, change.arch, version or ""), (None,) * 3)
            integrity = change.integrity or None
        elif change.action in _REMOVING:
            version, sha256, size, uri = change.current_version, None, None, None
        else:
            continue
        out.append(
            ExactTarget(
                change.name, change.arch, change.action, version, sha256, size, uri, integrity
            )
        )
    return tuple(out)


def execution_plan_to_dict(ep: ExecutionPlan) -> dict[str, Any]:
    """Return the JSON structure of ``ep``."""
    out: dict[str, Any] = to_dict(ep)
    return out


def execution_plan_body(ep: ExecutionPlan) -> dict[str, Any]:
    """The signed part: every field except the signature."""
    body = execution_plan_to_dict(ep)
    body.pop("signature_hex")
    return body


# parse_execution_plan has the document's JSON structure in hand when it checks the
# canonical form; it keeps the signed body's bytes on the record it returns so the
# signature check (next in aegisd's order) does not convert the whole plan again. The
# record is frozen and nothing changes a parsed plan, so these stay its body's bytes
# (a record built any other way has none and its body is encoded on demand).
_SIGNED_BODY = "_aegis_signed_body"


def execution_plan_body_bytes(ep: ExecutionPlan) -> bytes:
    """The signed bytes: ``canonical_bytes(execution_plan_body(ep))``."""
    kept = ep.__dict__.get(_SIGNED_BODY)
    if isinstance(kept, bytes):
        return kept
    return canonical_of(ep, omit=("signature_hex",))


def execution_plan_bytes(ep: ExecutionPlan) -> bytes:
    """The file bytes: canonical JSON plus a newline."""
    return canonical_of(ep) + b"\n"


def execution_plan_hash(ep: ExecutionPlan) -> str:
    """SHA-256 over the canonical JSON of the whole execution plan."""
    return sha256_hex(canonical_of(ep))


def _consistency_problem(ep: ExecutionPlan, plan_digest: str | None = None) -> str | None:
    """Why the document contradicts itself, or None; such a document is malformed."""
    for check in (_field_problem, _binding_problem, _probe_problem):
        problem = check(ep)
        if problem is not None:
            return problem
    return _plan_copy_problem(ep, plan_digest)


def _field_problem(ep: ExecutionPlan) -> str | None:
    """Why the document's own fields are malformed (identifiers, key, signature, times)."""
    if ep.schema_version not in _SCHEMAS:
        return f"schema_version must be {EXECUTION_PLAN_SCHEMA!r}"
    if ep.schema_version == EXECUTION_PLAN_SCHEMA_V1 and ep.plan.intent.tool is not Tool.APT:
        # Version 1 binds no target integrity; only apt's were ever signed that way.
        return (
            f"a {EXECUTION_PLAN_SCHEMA_V1} plan is accepted for apt only, not "
            f"{ep.plan.intent.tool.value}: sign it again ({EXECUTION_PLAN_SCHEMA})"
        )
    if not _EXEC_ID_RE.match(ep.execution_id):
        return "execution_id must be 32 lower-case hex characters"
    if not _HEX64_RE.match(ep.signer_public_key_hex):
        return "signer_public_key_hex must be 64 lower-case hex characters"
    if not _SIG_RE.match(ep.signature_hex):
        return "signature_hex must be 128 lower-case hex characters"
    try:
        check_approver_id(ep.signer_id)
        created = parse_time(ep.created_at, "created_at")
        expires = parse_time(ep.expires_at, "expires_at")
    except InputError as e:
        return e.message
    if expires <= created:
        return "expires_at must be after created_at"
    return None


def _binding_problem(ep: ExecutionPlan) -> str | None:
    """Why the policy binding, the argv or the embedded plan's schema is malformed."""
    if ep.policy.decision not in DECISIONS:
        return f"policy decision {ep.policy.decision[:40]!r} is not one of {DECISIONS}"
    if ep.policy.required_approvals < 0 or not _HEX64_RE.match(ep.policy.result_hash):
        return "policy binding is malformed"
    if not ep.argv or len(ep.argv) > MAX_ARGV_ITEMS or any("\0" in a for a in ep.argv):
        return "argv must be a non-empty list of strings without NUL"
    if ep.plan.schema_version != PLAN_SCHEMA:
        return f"embedded plan schema_version must be {PLAN_SCHEMA!r}"
    return None


def _probe_problem(ep: ExecutionPlan) -> str | None:
    """Why a probe (signed or the intent's) is outside its grammar, e.g. off loopback."""
    try:
        for p in ep.intent.probes:
            check_probe(p, "intent probe")
        if ep.verification is not None:
            check_verification(ep.verification)
    except InputError as e:
        return e.message
    return None


def _plan_copy_problem(ep: ExecutionPlan, plan_digest: str | None) -> str | None:
    """Which copy of a plan fact differs from the embedded plan's own, or None."""
    # The copies of plan facts must be the plan's own, so no check can be steered
    # by a field that disagrees with what aegisd re-derives.
    if (plan_digest or plan_hash(ep.plan)) != ep.plan_hash:
        return "plan_hash is not the hash of the embedded plan"
    if ep.intent != ep.plan.intent:
        return "intent differs from the embedded plan's intent"
    if ep.host != ep.plan.host:
        return "host differs from the embedded plan's host"
    if ep.package_state_hash != ep.plan.package_state_hash:
        return "package_state_hash differs from the embedded plan's"
    if ep.targets != derive_targets(ep.plan):
        return "targets differ from the embedded plan's delta"
    return None


def build_execution_plan(
    *,
    execution_id: str,
    request_id: str | None,
    plan: Plan,
    policy: PolicyBinding,
    review_hash: str | None,
    approvals: Sequence[Approval],
    argv: Sequence[str],
    now: datetime,
    expires_in: timedelta,
    signer_id: str,
    key: SigningKey,
    cohort_approvals: Sequence[CohortApproval] = (),
    verification: Verification | None = None,
) -> ExecutionPlan:
    """Build and sign an execution plan.

    The plan expires at ``now + expires_in`` or when the first included approval
    expires, whichever is earlier, so an approval is never used past its window.

    Args:
        execution_id: 32 hex characters from a CSPRNG (the caller draws it).
        request_id: the change request, if any.
        plan: the operation plan (already re-derived and compared by the caller).
        policy: the policy binding (decision must not be deny).
        review_hash: SHA-256 of the review record, if any.
        approvals: approvals that count (the caller verified them).
        argv: the derived argv.
        now: creation time (aware UTC).
        expires_in: requested validity, at most :data:`MAX_TTL`.
        signer_id: the signer's identity.
        key: the signer's key.
        cohort_approvals: cohort approvals of this plan's cohort (the caller verified them).
        verification: probes and deadline from policy and the intent (aegis/health).

    Raises:
        InputError: out-of-range validity or a malformed field.
        PolicyDenied: the decision is deny.
    """
    if expires_in <= timedelta(0) or expires_in > MAX_TTL:
        raise InputError(
            f"--expires-in must be positive and at most {MAX_TTL // timedelta(hours=1)}h"
        )
    if policy.decision == "deny":
        raise PolicyDenied("the policy decision is deny; a denied plan is never signed")
    expires = now + expires_in
    for ends in [a.expires_at for a in approvals] + [a.expires_at for a in cohort_approvals]:
        expires = min(expires, parse_time(ends))
    unsigned = ExecutionPlan(
        schema_version=EXECUTION_PLAN_SCHEMA,
        execution_id=execution_id,
        request_id=request_id,
        intent=plan.intent,
        targets=derive_targets(plan),
        plan_hash=plan_hash(plan),
        plan=plan,
        policy=policy,
        review_hash=review_hash,
        approvals=tuple(approvals),
        argv=tuple(argv),
        package_state_hash=plan.package_state_hash,
        host=plan.host,
        created_at=format_time(now),
        expires_at=format_time(expires),
        signer_id=signer_id,
        signer_public_key_hex=public_hex(key),
        signature_hex="0" * 128,
        cohort_approvals=tuple(cohort_approvals),
        verification=verification,
    )
    body = execution_plan_body(unsigned)
    signed = replace(unsigned, signature_hex=sign_canonical(body, key))
    problem = _consistency_problem(signed)
    if problem:
        raise InputError(f"cannot build execution plan: {problem}")
    return signed


def _parse_canonical(data: bytes) -> ExecutionPlan | None:
    """The record of a canonical, self-consistent execution plan, read fast; else None.

    ``data`` is read with a lenient parser (orjson). Every check of the strict path
    below runs here too (approvals, strict decoding, the canonical form,
    self-consistency), except the parser's own refusals: duplicate keys, floats, NaN, a
    BOM or bad UTF-8 can never survive the comparison with the canonical bytes (which
    hold none of them), and what the lenient parser rejects goes to the strict path. A
    document this returns None for is parsed again by the strict path, which names its
    problem; one it accepts, the strict path accepts equally.
    """
    try:
        doc = orjson.loads(data)
        if not isinstance(doc, dict) or doc.get("schema_version") not in _SCHEMAS:
            return None
        raw_approvals = doc.get("approvals")
        if isinstance(raw_approvals, list):
            for item in raw_approvals:
                approval_from_dict(item)
        _validate_cohort_approvals(doc.get("cohort_approvals"))
        ep = from_dict(ExecutionPlan, doc)
    except (orjson.JSONDecodeError, InputError):
        return None
    plain = checked_plain(ep)
    if plain is None:
        return None
    canonical = encode_checked(plain)
    if data not in (canonical, canonical + b"\n"):
        return None
    if _consistency_problem(ep, sha256_hex(encode_checked(plain["plan"]))) is not None:
        return None
    del plain["signature_hex"]
    ep.__dict__[_SIGNED_BODY] = encode_checked(plain)
    return ep


def _validate_cohort_approvals(raw: Any) -> None:
    """Strict per-approval validation of ``cohort_approvals`` (absent is fine)."""
    if isinstance(raw, list):
        for item in raw:
            cohort_approval_from_dict(item)


def parse_execution_plan(
    data: bytes, *, max_bytes: int = MAX_EXECUTION_PLAN_BYTES
) -> ExecutionPlan:
    """Parse execution-plan bytes strictly; the first step of aegisd's order.

    Refused (``refused:oversized``) above ``max_bytes``; refused
    (``refused:malformed``) on invalid UTF-8 or JSON, duplicate keys, floats,
    unknown or missing keys, wrong types, non-canonical bytes, fields that
    contradict the embedded plan, or a version 1 plan of an ecosystem other than apt.

    Raises:
        MalformedExecutionPlanError: with the named refusal.
    """
    if len(data) > max_bytes:
        raise Refusal(
            RefusalCode.OVERSIZED, f"{len(data)} bytes, more than the {max_bytes} allowed"
        ).error()
    fast = _parse_canonical(data)
    if fast is not None:
        return fast
    try:
        doc = loads_strict(data, max_bytes=max_bytes)
        if not isinstance(doc, dict) or doc.get("schema_version") not in _SCHEMAS:
            raise InputError(f"not an execution plan ({EXECUTION_PLAN_SCHEMA})")
        raw_approvals = doc.get("approvals")
        if isinstance(raw_approvals, list):
            for item in raw_approvals:
                approval_from_dict(item)  # strict per-approval validation first
        _validate_cohort_approvals(doc.get("cohort_approvals"))
        ep = from_dict(ExecutionPlan, doc)
    except InputError as e:
        raise Refusal(RefusalCode.MALFORMED, e.message).error() from e
    plain = checked_plain(ep)  # JSON types only, or None: the checking encoder decides
    as_dict = execution_plan_to_dict(ep) if plain is None else plain
    encode = canonical_bytes if plain is None else encode_checked
    canonical = encode(as_dict)
    # Exactly the canonical bytes of the parsed record: whitespace, key order, escapes
    # and omitted defaults cannot vary, so "a changed byte anywhere" is always caught
    # here or by the signature.
    if data not in (canonical, canonical + b"\n"):
        raise Refusal(RefusalCode.MALFORMED, "document is not in canonical form").error()
    problem = _consistency_problem(ep, sha256_hex(encode(as_dict["plan"])))
    if problem:
        raise Refusal(RefusalCode.MALFORMED, problem).error()
    if plain is not None:
        del plain["signature_hex"]
        ep.__dict__[_SIGNED_BODY] = encode_checked(plain)
    return ep
