"""Fixtures for workflow tests: a config under a temporary AEGIS_HOME and request builders."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from aegis import api
from aegis.config import Config, load_config
from aegis.devtools.sample_plans import sample_plan
from aegis.workflow.records import RequestRecord

AUTOMATION_PLAN = (
    b'{"approvals":[],"intent":{"operation":"upgrade"},"policy":{"decision":"allow"},'
    b'"signer_id":"automation","targets":[{"action":"upgrade"}]}'
)
"""The shape of an execution plan the automation key signs (the automation_scope guard)."""

PROBED_PLAN = (
    b'{"execution_id":"x-2","verification":{"probes":[{"kind":"unit",'
    b'"unit":"nginx.service"}],"within_s":60}}'
)
"""The shape of an execution plan that holds its change to health probes (issue 15)."""

EVIDENCE = {
    "analyze": ("plan", b"{}", {}),
    "review": ("review", b'{"recommendation":"no-objection"}', {}),
    "decide": ("policy", b'{"decision":"allow"}', {}),
    "deny": ("policy", b'{"decision":"deny"}', {}),
    "sign": ("execution-plan", b'{"execution_id":"x-1"}', {}),
    "sign_automation": ("execution-plan", AUTOMATION_PLAN, {}),
    "start": (None, None, {}),
    "finish": ("executor-result", b'{"exit":0}', {}),
    "fail": ("executor-result", b'{"exit":100}', {}),
    "interrupt": (None, None, {"reason": "started, never finished"}),
    "resolve_applied": ("resolution", b'{"as":"applied"}', {"reason": "dpkg says installed"}),
    "resolve_failed": ("resolution", b'{"as":"failed"}', {"reason": "dpkg says absent"}),
    "audit": (None, None, {}),
    "expire": (None, None, {"reason": "execution plan expired"}),
    "cancel": (None, None, {"reason": "no longer needed"}),
    "verify": (None, None, {"execution_id": "0" * 32}),
    "sign:probes": ("execution-plan", PROBED_PLAN, {}),
    "verified": (None, None, {"reason": "health probes passed", "verification": "passed"}),
    "roll_back": (None, None, {"reason": "probe failed", "cause": "probe-failed"}),
    "rolled_back": (None, None, {"reason": "restored"}),
    "rollback_failed": (None, None, {"reason": "restore failed"}),
}
"""Artifact kind, bytes and evidence that satisfy each trigger's guards."""

PATHS = {
    "intent": [],
    "analyzed": [],
    "reviewed": ["review"],
    "policy": ["review", "decide"],
    "denied": ["review", "deny"],
    "signed": ["review", "decide", "sign"],
    "expired": ["review", "decide", "expire"],
    "applying": ["review", "decide", "sign", "start"],
    "applied": ["review", "decide", "sign", "start", "finish"],
    "failed": ["review", "decide", "sign", "start", "fail"],
    "interrupted": ["review", "decide", "sign", "start", "interrupt"],
    "audited": ["review", "decide", "sign", "start", "finish", "audit"],
    "cancelled": ["cancel"],
    "verifying": ["review", "decide", "sign:probes", "start", "finish", "verify"],
    "rolling_back": ["review", "decide", "sign:probes", "start", "finish", "verify", "roll_back"],
    "rolled_back": [
        *("review", "decide", "sign:probes", "start", "finish", "verify", "roll_back"),
        "rolled_back",
    ],
    "rollback_failed": [
        *("review", "decide", "sign:probes", "start", "finish", "verify", "roll_back"),
        "rollback_failed",
    ],
}
"""Triggers that walk a freshly analyzed request into each state."""


@pytest.fixture
def cfg(aegis_home: Path) -> Config:
    """A configuration whose every path is under the test's AEGIS_HOME."""
    return load_config()


def step(cfg: Config, request_id: str, trigger: str, actor: str = "tester") -> RequestRecord:
    """Fire ``trigger`` with evidence that satisfies its guards (``sign:probes``: ``sign``
    with a plan that names health probes)."""
    kind, body, evidence = EVIDENCE[trigger]
    return api.advance(
        cfg,
        request_id,
        trigger.split(":", maxsplit=1)[0],
        actor,
        artifact_kind=kind,
        artifact=body,
        evidence=evidence,
    )


@pytest.fixture
def make_request(cfg: Config) -> Callable[..., RequestRecord]:
    """Build a request in a given state (through real transitions)."""
    counter = {"n": 0}

    def make(
        state: str = "analyzed",
        *,
        targets: tuple[str, ...] = ("aegis-base",),
        actor: str = "tester",
    ) -> RequestRecord:
        counter["n"] += 1
        if state == "intent":
            return api.create_request(cfg, "apt install", " ".join(targets), actor)
        planned = api.submit_plan(cfg, sample_plan(f"p-{counter['n']}", targets=targets), actor)
        rec = api.get_request(cfg, planned.request_id)
        for trigger in PATHS[state]:
            rec = step(cfg, rec.id, trigger, actor)
        assert rec.state == state
        return rec

    return make
