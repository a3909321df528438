"""The lifecycle graph: the shipped file, the loader's invariants, firing triggers."""

from __future__ import annotations

from pathlib import Path

import pytest

from aegis.errors import StateError
from aegis.workflow.graph import default_workflow_path, load_workflow, parse_workflow
from aegis.workflow.guards import GuardInput
from aegis.workflow.machine import (
    GuardRefusedError,
    IllegalTransitionError,
    WorkflowError,
    _Attempt,
    _check_no_callbacks,
    _edge_machine,
    _EdgeMachine,
    fire,
    mermaid,
    text_graph,
)

CONTRACT = {
    "analyze": ({"intent"}, "analyzed"),
    "review": ({"analyzed"}, "reviewed"),
    "decide": ({"reviewed"}, "policy"),
    "deny": ({"reviewed"}, "denied"),
    "sign": ({"policy"}, "signed"),
    "sign_automation": ({"policy"}, "signed"),
    "expire": ({"policy", "signed"}, "expired"),
    "start": ({"signed"}, "applying"),
    "finish": ({"applying"}, "applied"),
    "fail": ({"applying"}, "failed"),
    "interrupt": ({"applying"}, "interrupted"),
    "resolve_applied": ({"interrupted"}, "applied"),
    "resolve_failed": ({"interrupted"}, "failed"),
    "audit": ({"applied"}, "audited"),
    "verify": ({"applied"}, "verifying"),
    "verified": ({"verifying"}, "audited"),
    "roll_back": ({"verifying"}, "rolling_back"),
    "rolled_back": ({"rolling_back"}, "rolled_back"),
    "rollback_failed": ({"rolling_back"}, "rollback_failed"),
    "cancel": ({"intent", "analyzed", "reviewed", "policy", "signed"}, "cancelled"),
}

SHIPPED = default_workflow_path().read_text()


def test_shipped_workflow_has_exactly_the_contract_triggers() -> None:
    wf = load_workflow()
    got = {t.trigger: (set(t.sources), t.dest) for t in wf.transitions}
    assert got == CONTRACT
    assert wf.initial == "intent"
    assert {n for n, s in wf.states.items() if s.terminal} == {
        "audited",
        "denied",
        "expired",
        "failed",
        "cancelled",
        "rolled_back",
        "rollback_failed",
    }


def test_reviewed_to_applied_is_impossible_by_construction() -> None:
    wf = load_workflow()
    assert all(dst != "applied" for src, dst, _ in wf.edges() if src == "reviewed")
    inp = GuardInput("finish", "reviewed", frozenset(), "executor-result", b"{}", {})
    with pytest.raises(IllegalTransitionError) as err:
        fire(wf, "reviewed", "finish", inp)
    assert err.value.exit_code == 6


def _all_pairs() -> list[tuple[str, str]]:
    wf = load_workflow()
    return [(s, t) for s in wf.states for t in wf.triggers]


@pytest.mark.parametrize(("state", "trigger"), _all_pairs(), ids=str)
def test_exhaustive_state_trigger_table(state: str, trigger: str) -> None:
    """Every (state, trigger): legal pairs reach the contract's dest, all others raise."""
    wf = load_workflow()
    sources, dest = CONTRACT[trigger]
    # Evidence that satisfies every guard of the trigger, so only the graph decides.
    kind = {
        "analyze": "plan",
        "review": "review",
        "decide": "policy",
        "deny": "policy",
        "sign": "execution-plan",
        "sign_automation": "execution-plan",
        "finish": "executor-result",
        "fail": "executor-result",
        "resolve_applied": "resolution",
        "resolve_failed": "resolution",
    }.get(trigger)
    decision = b'{"decision":"deny"}' if trigger == "deny" else b'{"decision":"allow"}'
    if trigger == "sign_automation":
        from .conftest import AUTOMATION_PLAN

        decision = AUTOMATION_PLAN
    from .conftest import PROBED_PLAN

    inp = GuardInput(
        trigger,
        state,
        frozenset({"plan", "policy", "execution-plan", "executor-result"}),
        kind,
        decision if kind else None,
        {"reason": "test", "verification": "passed"},
        {"execution-plan": PROBED_PLAN if trigger == "verify" else b'{"execution_id":"x"}'},
    )
    if state in sources:
        assert fire(wf, state, trigger, inp).dest == dest
    else:
        with pytest.raises(StateError) as err:
            fire(wf, state, trigger, inp)
        assert err.value.exit_code == 6
        assert isinstance(err.value, IllegalTransitionError)


def test_unknown_trigger_and_no_auto_transitions() -> None:
    wf = load_workflow()
    inp = GuardInput("to_applied", "reviewed", frozenset(), None, None, {})
    for trigger in ("to_applied", "to_signed", "bogus"):
        with pytest.raises(IllegalTransitionError, match="unknown trigger"):
            fire(wf, "reviewed", trigger, inp)


@pytest.mark.parametrize(
    ("trigger", "state", "kind", "body", "evidence", "guard"),
    [
        ("review", "analyzed", None, None, {}, "supplies_review"),
        ("review", "analyzed", "policy", b"{}", {}, "supplies_review"),
        ("decide", "reviewed", "policy", b'{"decision":"deny"}', {}, "policy_not_deny"),
        ("decide", "reviewed", "policy", b"not json", {}, "policy_not_deny"),
        ("decide", "reviewed", "policy", b'{"decision":"maybe"}', {}, "policy_not_deny"),
        ("deny", "reviewed", "policy", b'{"decision":"allow"}', {}, "policy_is_deny"),
        ("cancel", "analyzed", None, None, {}, "gives_reason"),
        ("cancel", "analyzed", None, None, {"reason": "   "}, "gives_reason"),
        ("start", "signed", None, None, {}, "has_execution_plan"),
    ],
    ids=[
        "no-review",
        "wrong-kind",
        "decide-on-deny",
        "unparseable-policy",
        "unknown-decision",
        "deny-on-allow",
        "no-reason",
        "blank-reason",
        "start-unsigned",
    ],
)
def test_guards_refuse_and_name_themselves(
    trigger: str,
    state: str,
    kind: str | None,
    body: bytes | None,
    evidence: dict[str, str],
    guard: str,
) -> None:
    wf = load_workflow()
    inp = GuardInput(trigger, state, frozenset({"plan"}), kind, body, evidence)
    with pytest.raises(GuardRefusedError, match=guard) as err:
        fire(wf, state, trigger, inp)
    assert err.value.exit_code == 6


PLAIN_PLAN = b'{"execution_id":"x-1"}'


@pytest.mark.parametrize(
    ("state", "trigger", "plan", "evidence", "guard"),
    [
        ("applied", "audit", "probed", {}, "plan_unverified"),
        ("applied", "audit", None, {}, "plan_unverified"),
        ("applied", "audit", "garbled", {}, "plan_unverified"),
        ("applied", "verify", "plain", {}, "plan_verifies"),
        ("applied", "verify", "garbled", {}, "plan_verifies"),
        ("verifying", "verified", "probed", {"reason": "x"}, "verification_passed"),
        (
            "verifying",
            "verified",
            "probed",
            {"reason": "x", "verification": "pending"},
            "verification_passed",
        ),
    ],
    ids=[
        "audit-with-probes",
        "audit-without-plan",
        "audit-unreadable-plan",
        "verify-without-probes",
        "verify-unreadable-plan",
        "verified-without-verdict",
        "verified-while-pending",
    ],
)
def test_not_audited_before_verification(
    state: str, trigger: str, plan: str | None, evidence: dict[str, str], guard: str
) -> None:
    """A change held to health probes reaches 'audited' only through a passed verification."""
    from .conftest import PROBED_PLAN

    wf = load_workflow()
    body = {"probed": PROBED_PLAN, "plain": PLAIN_PLAN, "garbled": b"{nope", None: None}[plan]
    docs = {"execution-plan": body} if body is not None else {}
    recorded = frozenset({"execution-plan", "executor-result"})
    inp = GuardInput(trigger, state, recorded, None, None, evidence, docs)
    with pytest.raises(GuardRefusedError, match=guard) as err:
        fire(wf, state, trigger, inp)
    assert err.value.exit_code == 6


def _edit(extra: str = "", replace: tuple[str, str] | None = None) -> bytes:
    text = SHIPPED
    if replace:
        assert replace[0] in text
        text = text.replace(replace[0], replace[1], 1)
    return (text + extra).encode()


def _edge(trigger: str, source: str, dest: str, extra: str = "") -> str:
    return (
        f'\n[[transitions]]\ntrigger = "{trigger}"\nsource = ["{source}"]\n'
        f'dest = "{dest}"\nneeds = "system"\n{extra}'
    )


BAD_FILES = [
    (
        "reviewed-applied",
        _edit(_edge("shortcut", "reviewed", "applied")),
        "reviewed -> applied (trigger 'shortcut'): only 'applying' leads to 'applied'",
    ),
    ("reviewed-failed", _edit(_edge("oops", "reviewed", "failed")), "only 'applying' leads"),
    (
        "policy-applying",
        _edit(_edge("go", "policy", "applying")),
        "policy -> applying (trigger 'go'): every path into 'applying' passes 'signed'",
    ),
    (
        "terminal-exit",
        _edit(_edge("revive", "audited", "intent")),
        "terminal state 'audited' has no exits",
    ),
    (
        "interrupted-no-resolve",
        _edit(_edge("retry", "interrupted", "applying")),
        "'interrupted' leaves only through an operator's resolve",
    ),
    (
        "fake-resolution",
        _edit(_edge("sneak", "signed", "applied", "operator_resolution = true\n")),
        "operator_resolution only resolves 'interrupted'",
    ),
    ("unknown-state", _edit(_edge("x", "reviewed", "limbo")), "unknown state 'limbo'"),
    (
        "unknown-guard",
        _edit(_edge("x", "reviewed", "cancelled", 'guards = ["trust_me"]\n')),
        "unknown guard 'trust_me'",
    ),
    ("duplicate-trigger", _edit(_edge("review", "analyzed", "cancelled")), "fires twice"),
    (
        "resumable-human",
        _edit(
            replace=(
                'needs = "human"\noperator_resolution',
                'needs = "human"\nresumable = true\noperator_resolution',
            )
        ),
        "cannot be resumable",
    ),
    (
        "unknown-key",
        _edit(replace=('name = "change-request"', 'name = "change-request"\nauto = true')),
        "unknown key(s) auto",
    ),
    (
        "no-stuck-after",
        _edit(replace=('analyzed = { stuck_after = "1d" }', "analyzed = {}")),
        "needs stuck_after",
    ),
    (
        "bad-duration",
        _edit(replace=('analyzed = { stuck_after = "1d" }', 'analyzed = { stuck_after = "soon" }')),
        "stuck_after must look like",
    ),
    (
        "unreachable",
        _edit(
            replace=(
                "cancelled = { terminal = true }",
                "cancelled = { terminal = true }\nlimbo = { terminal = true }",
            )
        ),
        "'limbo' cannot be reached",
    ),
    (
        "dead-end",
        _edit(
            _edge("park", "intent", "limbo"),
            replace=(
                "cancelled = { terminal = true }",
                'cancelled = { terminal = true }\nlimbo = { stuck_after = "1h" }',
            ),
        ),
        "'limbo' is not terminal but has no exits",
    ),
    (
        "wrong-schema",
        _edit(
            replace=('schema_version = "aegis.workflow/1"', 'schema_version = "aegis.workflow/9"')
        ),
        "schema_version must be",
    ),
    # The graph, not code behind it, is the enforcement point (issue 12 item 15).
    (
        "decide-without-policy-guard",
        _edit(
            replace=(
                'guards = ["has_plan", "supplies_policy", "policy_not_deny"]',
                'guards = ["has_plan", "supplies_policy"]',
            )
        ),
        "reviewed -> policy (trigger 'decide'): lacks guard(s) policy_not_deny",
    ),
    (
        "sign-without-guards",
        _edit(replace=('guards = ["has_policy", "supplies_execution_plan"]\n', "")),
        "policy -> signed (trigger 'sign'): lacks guard(s) has_policy, supplies_execution_plan",
    ),
    (
        "sign-by-system",
        _edit(
            replace=(
                'guards = ["has_policy", "supplies_execution_plan"]\nneeds = "key"',
                'guards = ["has_policy", "supplies_execution_plan"]\nneeds = "system"',
            )
        ),
        "policy -> signed (trigger 'sign'): needs must be 'key', got 'system'",
    ),
    (
        "reviewed-signed",
        _edit(
            _edge(
                "skip", "reviewed", "signed", 'guards = ["has_policy", "supplies_execution_plan"]\n'
            )
        ),
        "reviewed -> signed (trigger 'skip'): 'signed' is entered only from policy",
    ),
    (
        "analyzed-policy",
        _edit(_edge("rush", "analyzed", "policy")),
        "'policy' is entered only from reviewed",
    ),
    (
        "deny-without-guards",
        _edit(_edge("undeny", "reviewed", "denied")),
        "reviewed -> denied (trigger 'undeny'): lacks guard(s) policy_is_deny, supplies_policy",
    ),
    # Health probes (issue 15): only a change that ran is verified, only one being
    # verified is restored without a new request, and only aegisd's record does either.
    (
        "applying-verifying",
        _edit(_edge("early", "applying", "verifying", 'guards = ["gives_reason"]\n')),
        "'verifying' is entered only from applied",
    ),
    (
        "signed-rolling-back",
        _edit(_edge("undo", "signed", "rolling_back", 'guards = ["gives_reason"]\n')),
        "'rolling_back' is entered only from verifying",
    ),
    (
        "rolled-back-by-hand",
        _edit(
            _edge("undo", "verifying", "rolled_back", 'guards = ["gives_reason"]\n'),
        ),
        "'rolled_back' is entered only from rolling_back",
    ),
    (
        "rollback-by-a-human",
        _edit(
            replace=(
                'trigger = "roll_back"\nsource = ["verifying"]\ndest = "rolling_back"\n'
                'guards = ["gives_reason"]\nneeds = "system"\nresumable = true',
                'trigger = "roll_back"\nsource = ["verifying"]\ndest = "rolling_back"\n'
                'guards = ["gives_reason"]\nneeds = "human"',
            )
        ),
        "needs must be 'system'",
    ),
    (
        "verified-without-result",
        _edit(_edge("keep", "verifying", "audited")),
        "lacks guard(s) has_executor_result_or_resolution, verification_passed",
    ),
    # The plain audit edge may not lose the guard that keeps a probed change from skipping
    # its verification, nor may the verified edge lose aegisd's passed verdict.
    (
        "audit-ignores-probes",
        _edit(
            replace=(
                'guards = ["has_executor_result_or_resolution", "plan_unverified"]',
                'guards = ["has_executor_result_or_resolution"]',
            )
        ),
        "applied -> audited (trigger 'audit'): lacks guard(s) plan_unverified",
    ),
    (
        "verified-without-verdict",
        _edit(
            replace=(
                'guards = ["has_executor_result_or_resolution", "verification_passed"]',
                'guards = ["has_executor_result_or_resolution"]',
            )
        ),
        "verifying -> audited (trigger 'verified'): lacks guard(s) verification_passed",
    ),
    (
        "verify-without-probes",
        _edit(
            replace=(
                'guards = ["has_executor_result_or_resolution", "plan_verifies"]',
                'guards = ["has_executor_result_or_resolution"]',
            )
        ),
        "applied -> verifying (trigger 'verify'): lacks guard(s) plan_verifies",
    ),
    (
        "second-audit-edge",
        _edit(
            _edge("keep", "applied", "audited", 'guards = ["has_executor_result_or_resolution"]\n')
        ),
        "applied -> audited (trigger 'keep'): lacks guard(s) plan_unverified",
    ),
    ("malformed", b"[[transitions]\nnope", "is not valid TOML"),
    ("not-utf8", b'name = "\xff"', "is not valid TOML"),
    ("oversized", b"#" * (64 * 1024 + 1), "larger than 65536 bytes"),
]


@pytest.mark.parametrize(("case", "data", "message"), BAD_FILES, ids=[c[0] for c in BAD_FILES])
def test_bad_workflow_files_do_not_load(case: str, data: bytes, message: str | None) -> None:
    with pytest.raises(WorkflowError) as err:
        parse_workflow(data, source="test.toml")
    assert err.value.exit_code == 3
    assert err.value.message.startswith("test.toml")
    if message:
        assert message in err.value.message


def test_shipped_file_parses_identically_and_digest_is_stable() -> None:
    a = parse_workflow(SHIPPED.encode())
    b = parse_workflow(SHIPPED.encode())
    assert a == b
    assert a.digest == load_workflow().digest


def test_graph_renderings_name_every_edge(tmp_path: Path) -> None:
    wf = load_workflow()
    text = mermaid(wf, current="policy")
    assert text.startswith("stateDiagram-v2")
    for src, dst, t in wf.edges():
        assert f"{src} --> {dst}: {t.trigger}" in text
    assert "class policy current" in text
    marked = [
        line for line in text_graph(wf, current="signed").splitlines() if line.startswith("*")
    ]
    assert marked == ["* signed (stuck after 1d)"]


def test_an_edge_machine_with_a_callback_is_refused() -> None:
    # The edges skip the library's callback dispatch: a callback added to one (which the
    # lean edge would silently not run) must stop the machine from being used at all.
    machine = _EdgeMachine(
        model=_Attempt(),
        states=["analyzed", "reviewed"],
        transitions=[
            {
                "trigger": "review",
                "source": "analyzed",
                "dest": "reviewed",
                "after": lambda *a: None,
            }
        ],
        initial="analyzed",
        auto_transitions=False,
    )
    with pytest.raises(RuntimeError, match="callbacks"):
        _check_no_callbacks(machine)


def test_a_fired_edge_moves_its_model_and_a_refused_one_does_not() -> None:
    wf = load_workflow()
    ok = GuardInput("review", "analyzed", frozenset({"plan"}), "review", b"r", {})
    assert fire(wf, "analyzed", "review", ok).dest == "reviewed"
    _, model = _edge_machine(wf, "analyzed", "review", "reviewed")
    assert model.state == "reviewed"
    bad = GuardInput("review", "analyzed", frozenset(), "review", b"r", {})
    with pytest.raises(GuardRefusedError, match="has_plan"):
        fire(wf, "analyzed", "review", bad)
    assert model.state == "analyzed"
