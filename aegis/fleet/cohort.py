"""Cohorts: hosts whose plans make the same change, named by one hash (pure).

A cohort is the part of a host's plan and decision that an approver judges when they
approve "this change on these hosts": what changes (package set, versions from and to,
the exact file installed), which signed repository each file comes from, and the
decision policy reached. Two hosts whose plans agree on all of that are in one cohort,
and one approval of the cohort hash can stand for both (docs/design.md "Cohort
approvals"). Everything that is a fact about one host is left out, so the hash is the
same across hosts that make the same change:

In the cohort document (canonical JSON; its SHA-256 is the cohort hash):

- ``intent``: tool, operation, the requested targets, and for pip and npm the
  location and registry (the same intent is planned on every host);
- ``changes``: every package of the delta, sorted: name, arch, action, the version
  installed now and the version afterwards, essential, and the SHA-256 and size of
  the exact file installed (none for removals);
- ``repositories``: every repository the delta installs from, by identity (URI,
  suite, component, signer fingerprint) and trust verdict (signature, approved,
  distribution source, problems);
- ``artifacts`` (pip, npm): name, version, kind, SHA-256 and integrity of each;
- ``decision``: decision, policy version, the rules that fired, required controls,
  approval count and roles.

Left out, as host-specific: machine-id and hostname, plan and request ids, every
timestamp and requester, the hash of the whole package state (the rest of dpkg's
database differs between hosts that make the same change; each host's execution plan
still binds its own), where on the host sources and keyrings are configured, the
InRelease/Packages hash chain and the Release dates (a mirror synced at another time
serves the same files), file URIs, aegisd's .deb directory, the argv (it names that
directory), content findings and vulnerability data (they follow from the files'
hashes, and the decision carries their effect), the model's review and the policy
result's own hash (it binds the host's plan hash and evaluation time).

Example:
    >>> cohort_hash(plan_a, binding_a) == cohort_hash(plan_b, binding_b)
    True  # same delta, same repositories, same decision: one cohort
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from aegis.canonical import canonical_bytes, sha256_hex

if TYPE_CHECKING:
    from aegis.model import Plan
    from aegis.sign.execution_plan import PolicyBinding

COHORT_SCHEMA = "aegis.cohort/1"


def _intent(plan: Plan) -> dict[str, Any]:
    intent = plan.intent
    out: dict[str, Any] = {
        "tool": intent.tool.value,
        "operation": intent.operation.value,
        "targets": list(intent.targets),
    }
    if intent.location is not None:
        out["location"] = intent.location
    if intent.registry is not None:
        out["registry"] = intent.registry
    return out


def _changes(plan: Plan) -> list[dict[str, Any]]:
    files = {(p.package, p.arch, p.version): (p.sha256, p.size) for p in plan.provenance}
    for d in plan.snapshot_debs:
        files.setdefault((d.package, d.arch, d.version), (d.sha256, d.size))
    out = []
    for c in plan.changes:
        sha256, size = files.get((c.name, c.arch, c.candidate_version or ""), (None, None))
        out.append(
            {
                "name": c.name,
                "arch": c.arch,
                "action": c.action.value,
                "from": c.current_version,
                "to": c.candidate_version,
                "essential": c.essential,
                "sha256": sha256,
                "size": size,
            }
        )
    return sorted(out, key=lambda c: (c["name"], c["arch"], c["action"]))


def _repositories(plan: Plan) -> list[dict[str, Any]]:
    used = {c.repository for c in plan.changes if c.repository}
    out = [
        {
            "uri": r.uri,
            "suite": r.suite,
            "component": r.component,
            "signer_fingerprint": r.signer_fingerprint,
            "signature": r.signature,
            "approved": r.approved,
            "distribution": r.distribution,
            "problems": sorted(r.problems),
        }
        for r in plan.repositories
        if r.id in used
    ]
    return sorted(out, key=lambda r: (r["uri"], r["suite"], r["component"]))


def _artifacts(plan: Plan) -> list[dict[str, Any]]:
    if plan.ecosystem is None:
        return []
    out = [
        {
            "name": a.name,
            "version": a.version,
            "kind": a.kind,
            "sha256": a.sha256,
            "integrity": a.integrity,
        }
        for a in plan.ecosystem.artifacts
    ]
    return sorted(out, key=lambda a: (a["name"], a["version"], a["kind"]))


def cohort_document(plan: Plan, policy: PolicyBinding) -> dict[str, Any]:
    """The cohort document of ``plan`` decided as ``policy`` (see the module doc)."""
    doc: dict[str, Any] = {
        "schema_version": COHORT_SCHEMA,
        "intent": _intent(plan),
        "changes": _changes(plan),
        "repositories": _repositories(plan),
        "decision": {
            "decision": policy.decision,
            "policy_version": policy.policy_version,
            "rule_ids": sorted(policy.rule_ids),
            "controls": sorted(policy.controls),
            "required_approvals": policy.required_approvals,
            "required_roles": sorted(policy.required_roles),
        },
    }
    artifacts = _artifacts(plan)
    if artifacts:
        doc["artifacts"] = artifacts
    return doc


def cohort_bytes(doc: dict[str, Any]) -> bytes:
    """The file bytes of a cohort document: canonical JSON plus a newline."""
    return canonical_bytes(doc) + b"\n"


def document_hash(doc: dict[str, Any]) -> str:
    """SHA-256 of a cohort document's canonical JSON: the cohort hash."""
    return sha256_hex(canonical_bytes(doc))


def cohort_hash(plan: Plan, policy: PolicyBinding) -> str:
    """The cohort hash of ``plan`` decided as ``policy``."""
    return document_hash(cohort_document(plan, policy))
