"""The automation scope, branch by branch, on plans shaped like real upgrades."""

from __future__ import annotations

from dataclasses import replace

import pytest

from aegis.devtools.sample_plans import sample_plan
from aegis.model import Action, Intent, Operation, Plan, Repository, Tool
from aegis.policy.config import parse_policy_config
from aegis.unattended.scope import out_of_scope

FPR = "A" * 40
SEC = Repository(
    id="sec",
    uri="http://security.example/debian-security",
    suite="bookworm-security",
    component="main",
    source_entry="",
    source_file="",
    signed_by_form="keyring-path",
    signed_by=None,
    keyring_trusted_dir=False,
    keyring_root_only=True,
    signature="good",
    signer_fingerprint=FPR,
    date=None,
    valid_until=None,
    expired=False,
    frozen=False,
    trusted_yes=False,
    distribution=True,
    approved=True,
    allowed_packages=(),
)
MAIN = replace(SEC, id="main", suite="bookworm", uri="http://deb.example/debian")
POLICY = (
    'format = "aegis.policy-config/1"\nruleset = "aegis.rules/1"\n'
    '[automation]\nenabled = true\nmax_delta = 2\ndeny_packages = ["openssh-*"]\n'
    f'[[automation.sources]]\nuri = "{SEC.uri}/"\nsuite = "{SEC.suite}"\n'
    f'signer_fingerprint = "{FPR.lower()}"\n'
)


def _upgrade(*names: str, repo: str = "sec") -> Plan:
    p = sample_plan("p-1", targets=names)
    changes = tuple(
        replace(c, action=Action.UPGRADE, current_version="0.9", repository=repo) for c in p.changes
    )
    intent = Intent(Tool.APT, Operation.UPGRADE, (), "automation", p.created_at)
    return replace(p, intent=intent, changes=changes, repositories=(SEC, MAIN))


def test_a_security_upgrade_is_inside() -> None:
    assert out_of_scope(_upgrade("libssl3"), "allow", parse_policy_config(POLICY)) == []
    assert (
        out_of_scope(_upgrade("libssl3"), "allow-with-snapshot", parse_policy_config(POLICY)) == []
    )


@pytest.mark.parametrize(
    ("plan", "decision", "policy", "why"),
    [
        (_upgrade("bash", repo="main"), "allow", POLICY, "not an automation source"),
        (_upgrade("libssl3"), "require-approval", POLICY, "require-approval"),
        (_upgrade("openssh-server"), "allow", POLICY, "deny_packages"),
        (_upgrade("linux-image-amd64"), "allow", POLICY, "kernel"),
        (_upgrade("a", "b", "c"), "allow", POLICY, "max_delta = 2"),
        (
            _upgrade("libssl3"),
            "allow",
            POLICY.replace("enabled = true", "enabled = false"),
            "not enabled",
        ),
        (sample_plan("p-2", targets=("x",)), "allow", POLICY, "not an upgrade"),
    ],
)
def test_outside(plan: Plan, decision: str, policy: str, why: str) -> None:
    reasons = out_of_scope(plan, decision, parse_policy_config(policy))
    assert any(why in r for r in reasons), reasons


def test_a_new_package_or_removal_is_outside() -> None:
    plan = _upgrade("libssl3", "libnew")
    plan = replace(plan, changes=(plan.changes[0], replace(plan.changes[1], action=Action.INSTALL)))
    assert any(
        "libnew" in r and "install" in r
        for r in out_of_scope(plan, "allow", parse_policy_config(POLICY))
    )
