"""The automation scope: which plans the host-local automation key may sign. Pure.

A plan is inside the scope only when every one of these holds (policy ``[automation]``,
aegis/policy/automation.py):

- automation is enabled in policy;
- the intent is ``apt upgrade`` and the analysis succeeded with at least one change;
- the policy decision is ``allow`` or ``allow-with-snapshot`` (never one that needs an
  approval, never deny);
- every change is an upgrade: no new package, no removal, no downgrade or reinstall,
  nothing held back;
- no more changes than ``max_delta``; no package matching ``deny_packages``; no kernel
  or boot-chain package unless ``allow_kernel``;
- every package comes from a source listed in ``[[automation.sources]]`` (URI, suite,
  signer fingerprint, and component when given), as the plan's repository evidence
  names it.

The unattended run asks this before it signs; aegisd asks it again on its own
re-derived plan and its own policy evaluation before it runs a plan the automation key
signed (aegis/execute/apply.py), and refuses, audited, anything outside it.

Example:
    >>> out_of_scope(plan, "allow", policy)
    ['aegis-tool 2.0: comes from aegis-test (http://...), not an automation source']
"""

from __future__ import annotations

from aegis.model import Action, Operation, Plan, Repository
from aegis.policy.automation import AutomationPolicy, AutomationSource
from aegis.policy.config import PolicyConfig, name_matches
from aegis.policy.fields import normalize_fingerprint, normalize_uri
from aegis.policy.rules import BUILTIN_KERNEL

IN_SCOPE_DECISIONS = frozenset({"allow", "allow-with-snapshot"})
SIGNER_ID = "automation"
"""The signer id every automation-signed execution plan carries."""


def _matches(repo: Repository, src: AutomationSource) -> bool:
    return (
        normalize_uri(repo.uri) == src.uri
        and repo.suite == src.suite
        and normalize_fingerprint(repo.signer_fingerprint) == src.signer_fingerprint
        and (src.component is None or repo.component == src.component)
    )


def out_of_scope(plan: Plan, decision: str, policy: PolicyConfig) -> list[str]:
    """Every reason ``plan`` may not be applied by the automation key; empty: in scope."""
    auto = policy.automation or AutomationPolicy()
    reasons: list[str] = []
    if not auto.enabled:
        reasons.append("automation is not enabled in policy ([automation] enabled = true)")
    if plan.intent.operation is not Operation.UPGRADE:
        reasons.append(f"the intent is {plan.intent.operation.value}, not an upgrade")
    if plan.failure is not None:
        reasons.append(f"the analysis failed: {plan.failure.kind}")
    if not plan.changes:
        reasons.append("nothing to upgrade")
    if decision not in IN_SCOPE_DECISIONS:
        reasons.append(f"the policy decision is {decision}, not allow or allow-with-snapshot")
    if len(plan.changes) > auto.max_delta:
        reasons.append(f"{len(plan.changes)} changes, more than max_delta = {auto.max_delta}")
    repos = {r.id: r for r in plan.repositories}
    kernel = (*BUILTIN_KERNEL, *policy.packages.kernel)
    boot = {s.package for s in plan.signals if s.name in ("kernel", "boot-chain") and s.package}
    for c in plan.changes:
        label = f"{c.name} {c.candidate_version or c.current_version or ''}".strip()
        if c.action is not Action.UPGRADE:
            reasons.append(f"{label}: {c.action.value}, not an upgrade")
            continue
        if name_matches(c.name, auto.deny_packages):
            reasons.append(f"{label}: matches [automation] deny_packages")
        if not auto.allow_kernel and (name_matches(c.name, kernel) or c.name in boot):
            reasons.append(f"{label}: a kernel or boot-chain package (allow_kernel = false)")
        repo = repos.get(c.repository or "")
        if repo is None:
            reasons.append(f"{label}: no repository evidence")
        elif not any(_matches(repo, s) for s in auto.sources):
            reasons.append(f"{label}: comes from {repo.uri} {repo.suite}, not an automation source")
    return reasons
