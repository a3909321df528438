"""The automation signer in the lifecycle graph: one narrow edge, held by its guard."""

from __future__ import annotations

import json

import pytest

from aegis.workflow.graph import default_workflow_path, parse_workflow
from aegis.workflow.guards import GUARDS, GuardInput
from aegis.workflow.machine import WorkflowError

SHIPPED = default_workflow_path().read_text()
START = (
    'trigger = "start"\nsource = ["signed"]\ndest = "applying"\nguards = ["has_execution_plan"]\n'
)
AUTO_EDGE = (
    '[[transitions]]\ntrigger = "sign_automation"\nsource = ["policy"]\ndest = "signed"\n'
    'guards = ["has_policy", "supplies_execution_plan", "automation_scope"]\n'
    'needs = "automation"\n'
)


def test_shipped_graph_has_the_automation_edge_only_into_signed() -> None:
    wf = parse_workflow(SHIPPED.encode())
    auto = [(s, d, t.trigger) for s, d, t in wf.edges() if t.needs == "automation"]
    assert auto == [("policy", "signed", "sign_automation")]


@pytest.mark.parametrize(
    ("old", "new", "error"),
    [
        # Dropping the scope guard: the automation key would sign anything policy allows.
        (
            '"supplies_execution_plan", "automation_scope"]',
            '"supplies_execution_plan"]',
            "lacks guard(s) automation_scope",
        ),
        # The automation signer moved to starting runs, or to any other edge.
        (
            START + 'needs = "key"',
            START + 'needs = "automation"',
            "the automation signer only signs",
        ),
        (
            'dest = "cancelled"\nguards = ["gives_reason"]\nneeds = "human"',
            'dest = "cancelled"\nguards = ["gives_reason"]\nneeds = "automation"',
            "the automation signer only signs",
        ),
    ],
)
def test_graphs_that_widen_the_automation_signer_do_not_load(
    old: str, new: str, error: str
) -> None:
    assert AUTO_EDGE in SHIPPED
    assert old in SHIPPED
    with pytest.raises(WorkflowError, match=error.replace("(", r"\(").replace(")", r"\)")):
        parse_workflow(SHIPPED.replace(old, new).encode())


def _doc(**over: object) -> bytes:
    doc = {
        "approvals": [],
        "intent": {"operation": "upgrade"},
        "policy": {"decision": "allow"},
        "signer_id": "automation",
        "targets": [{"action": "upgrade"}],
    }
    doc.update(over)
    return json.dumps(doc).encode()


@pytest.mark.parametrize(
    ("over", "ok"),
    [
        ({}, True),
        ({"policy": {"decision": "allow-with-snapshot"}}, True),
        ({"signer_id": "alice"}, False),
        ({"policy": {"decision": "require-approval"}}, False),
        ({"intent": {"operation": "install"}}, False),
        ({"targets": [{"action": "upgrade"}, {"action": "install"}]}, False),
        ({"targets": [{"action": "remove"}]}, False),
        ({"targets": []}, False),
        ({"approvals": [{"approver_id": "bob"}]}, False),
    ],
)
def test_automation_scope_guard(over: dict[str, object], ok: bool) -> None:
    inp = GuardInput(
        "sign_automation", "policy", frozenset({"policy"}), "execution-plan", _doc(**over)
    )
    assert GUARDS["automation_scope"].check(inp) is ok
