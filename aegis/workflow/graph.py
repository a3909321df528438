"""Load the lifecycle graph from its TOML file and refuse any graph that breaks it.

The graph lives in ``workflows/change-request.toml``. :func:`parse_workflow` is
pure: it parses the TOML text strictly and refuses unknown keys, unknown states,
unknown guard names and any graph that breaks the invariants of docs/design.md:

1. every path from the initial state into ``applying`` passes ``signed``;
2. only ``applying`` leads to ``applied`` or ``failed``, except the operator's
   resolution of an ``interrupted`` request (transitions marked
   ``operator_resolution``);
3. terminal states have no exits, and every other state has one;
4. ``interrupted`` leaves only through an operator's resolution;
5. every state is reachable; one transition per (state, trigger);
6. every edge into a trust-bearing state comes from its one predecessor, carries at least
   the guards that make the step mean something, and is fired by the right kind of actor
   (:data:`ENTRY_RULES`): ``decide`` cannot lose ``policy_not_deny``, ``sign`` needs a key
   and its guards, and nothing reaches ``signed`` without passing ``policy``;
7. health probes (issue 15): ``verifying`` is entered only from ``applied`` and only when
   the signed plan names probes, ``rolling_back`` only from ``verifying``, and its two
   outcomes only from it; ``audited`` is entered from ``applied`` only when the signed plan
   names no probes and from ``verifying`` only with aegisd's passed verdict
   (:data:`ENTRY_RULES`); every one of those steps is aegisd's, recorded by ``system``;
8. only operator steps sign, with one narrow exception: an edge fired by ``automation``
   (the host-local automation key of ``aegis unattended``) may only go ``policy ->
   signed`` and must carry ``automation_scope`` (allow, upgrade-only, no approvals,
   signer ``automation``); aegisd checks the rest of that scope itself.

The file is the lifecycle's single source of truth, so a graph that lets a request
reach ``applying`` unsigned must fail to load rather than be caught at firing time.
:func:`load_workflow` reads a file once per path and caches the validated
:class:`~aegis.workflow.machine.Workflow`; firing triggers on it is
:mod:`aegis.workflow.machine`.

Example:
    >>> wf = load_workflow()
    >>> wf.initial, wf.is_terminal("audited")
    ('intent', True)
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from aegis.canonical import sha256_hex
from aegis.toml_doc import load_toml
from aegis.workflow.guards import GUARDS
from aegis.workflow.machine import StateSpec, TransitionSpec, Workflow, WorkflowError
from aegis.workflow.shipped import shipped_path

WORKFLOW_SCHEMA = "aegis.workflow/1"
MAX_WORKFLOW_BYTES = 64 * 1024
MAX_STATES = 64
MAX_TRANSITIONS = 256
NEEDS = frozenset({"system", "human", "key", "automation"})
_NAME_RE = re.compile(r"^[a-z][a-z0-9_]{0,39}\Z")
_DURATION_RE = re.compile(r"^([1-9][0-9]{0,6})([smhd])\Z")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(text: object, where: str) -> int:
    """Parse ``30s``, ``15m``, ``2h`` or ``3d`` (or a positive integer of seconds)."""
    if isinstance(text, int) and not isinstance(text, bool) and 0 < text <= 10**8:
        return text
    if isinstance(text, str):
        m = _DURATION_RE.match(text.strip())
        if m:
            return int(m.group(1)) * _UNITS[m.group(2)]
    raise WorkflowError(f"{where}: stuck_after must look like 30s, 15m, 2h or 3d, got {text!r}")


def _keys(table: Mapping[str, Any], allowed: set[str], required: set[str], where: str) -> None:
    unknown = sorted(set(table) - allowed)
    if unknown:
        raise WorkflowError(f"{where}: unknown key(s) {', '.join(unknown)}")
    missing = sorted(required - set(table))
    if missing:
        raise WorkflowError(f"{where}: missing key(s) {', '.join(missing)}")


def _name(value: object, where: str) -> str:
    if not isinstance(value, str) or not _NAME_RE.match(value):
        raise WorkflowError(f"{where}: {value!r} is not a valid name")
    return value


def _bool(value: object, where: str) -> bool:
    if not isinstance(value, bool):
        raise WorkflowError(f"{where}: expected true or false")
    return value


def _parse_states(raw: object) -> dict[str, StateSpec]:
    if not isinstance(raw, dict) or not raw:
        raise WorkflowError("[states] must be a non-empty table")
    if len(raw) > MAX_STATES:
        raise WorkflowError(f"[states] has more than {MAX_STATES} states")
    states: dict[str, StateSpec] = {}
    for name, spec in raw.items():
        where = f"state {name!r}"
        _name(name, where)
        if not isinstance(spec, dict):
            raise WorkflowError(f"{where}: expected a table")
        _keys(spec, {"terminal", "stuck_after"}, set(), where)
        terminal = _bool(spec.get("terminal", False), where)
        if terminal and "stuck_after" in spec:
            raise WorkflowError(f"{where}: a terminal state has no stuck_after")
        if not terminal and "stuck_after" not in spec:
            raise WorkflowError(f"{where}: a non-terminal state needs stuck_after")
        stuck = None if terminal else parse_duration(spec["stuck_after"], where)
        states[name] = StateSpec(name=name, terminal=terminal, stuck_after_s=stuck)
    return states


def _parse_transition(i: int, raw: object, states: Mapping[str, StateSpec]) -> TransitionSpec:
    where = f"transition #{i + 1}"
    if not isinstance(raw, dict):
        raise WorkflowError(f"{where}: expected a table")
    allowed = {"trigger", "source", "dest", "guards", "needs", "resumable", "operator_resolution"}
    _keys(raw, allowed, {"trigger", "source", "dest", "needs"}, where)
    trigger = _name(raw["trigger"], where)
    where = f"transition {trigger!r}"
    sources_raw = raw["source"]
    if isinstance(sources_raw, str):
        sources_raw = [sources_raw]
    if not isinstance(sources_raw, list) or not sources_raw:
        raise WorkflowError(f"{where}: source must be a state or a non-empty list of states")
    sources = tuple(_name(s, where) for s in sources_raw)
    dest = _name(raw["dest"], where)
    for state in (*sources, dest):
        if state not in states:
            raise WorkflowError(f"{where}: unknown state {state!r}")
    guards_raw = raw.get("guards", [])
    if not isinstance(guards_raw, list):
        raise WorkflowError(f"{where}: guards must be a list")
    for g in guards_raw:
        if not isinstance(g, str) or g not in GUARDS:
            raise WorkflowError(f"{where}: unknown guard {g!r}")
    needs = raw["needs"]
    if needs not in NEEDS:
        raise WorkflowError(f"{where}: needs must be one of {sorted(NEEDS)}, got {needs!r}")
    resumable = _bool(raw.get("resumable", False), where)
    if resumable and needs != "system":
        raise WorkflowError(f"{where}: a step that needs a {needs} cannot be resumable")
    return TransitionSpec(
        trigger=trigger,
        sources=sources,
        dest=dest,
        guards=tuple(guards_raw),
        needs=str(needs),
        resumable=resumable,
        operator_resolution=_bool(raw.get("operator_resolution", False), where),
    )


@dataclass(frozen=True)
class Entry:
    """One allowed way into a state: from where, with which guards, fired by whom."""

    sources: frozenset[str]
    guards: frozenset[str]
    needs: str


def _entry(sources: str, guards: str, needs: str) -> Entry:
    return Entry(frozenset(sources.split()), frozenset(guards.split()), needs)


# The lifecycle's invariants as data (docs/design.md "The request is a persisted state
# machine"). An edge into a state named here must match one of its entries: a source listed,
# at least those guards (more are fine), that actor. Guards are where a step's evidence is
# checked, so an edge without them would make the graph a claim the code must backstop.
ENTRY_RULES: Mapping[str, tuple[Entry, ...]] = {
    "analyzed": (_entry("intent", "supplies_plan", "system"),),
    "reviewed": (_entry("analyzed", "has_plan supplies_review", "system"),),
    "policy": (_entry("reviewed", "has_plan supplies_policy policy_not_deny", "system"),),
    "denied": (_entry("reviewed", "supplies_policy policy_is_deny", "system"),),
    "signed": (
        _entry("policy", "has_policy supplies_execution_plan", "key"),
        # The host-local automation key (aegis unattended): only this one edge, and only
        # with the guard that holds it to allow, upgrade-only plans (aegisd re-checks).
        _entry("policy", "has_policy supplies_execution_plan automation_scope", "automation"),
    ),
    "applying": (_entry("signed", "has_execution_plan", "key"),),
    "interrupted": (_entry("applying", "gives_reason", "system"),),
    "applied": (
        _entry("applying", "supplies_executor_result", "system"),
        _entry("interrupted", "supplies_resolution gives_reason", "human"),
    ),
    "failed": (
        _entry("applying", "supplies_executor_result", "system"),
        _entry("interrupted", "supplies_resolution gives_reason", "human"),
    ),
    # A change whose signed plan carries health probes is never audited before aegisd's
    # verification passed: straight from applied only without probes, from verifying only
    # with the passed verdict.
    "audited": (
        _entry("applied", "has_executor_result_or_resolution plan_unverified", "system"),
        _entry("verifying", "has_executor_result_or_resolution verification_passed", "system"),
    ),
    # Health probes after the run: only a change that ran, and whose signed plan names
    # probes, is verified, and only a change being verified is restored without a new
    # request (aegis/execute/verifier.py).
    "verifying": (_entry("applied", "has_executor_result_or_resolution plan_verifies", "system"),),
    "rolling_back": (_entry("verifying", "gives_reason", "system"),),
    "rolled_back": (_entry("rolling_back", "gives_reason", "system"),),
    "rollback_failed": (_entry("rolling_back", "gives_reason", "system"),),
}


def _check_entry(src: str, dst: str, t: TransitionSpec) -> None:
    """Refuse an edge into a trust-bearing state that matches none of its entries."""
    entries = ENTRY_RULES.get(dst)
    if entries is None:
        return
    froms = [e for e in entries if src in e.sources]
    if not froms:
        allowed = ", ".join(sorted({s for e in entries for s in e.sources}))
        raise WorkflowError(f"edge {_edge(src, t)}: {dst!r} is entered only from {allowed}")
    problems = []
    for e in froms:
        missing = sorted(e.guards - set(t.guards))
        if t.needs != e.needs:
            problems.append(f"needs must be {e.needs!r}, got {t.needs!r}")
        elif missing:
            problems.append(f"lacks guard(s) {', '.join(missing)}")
        else:
            return  # one allowed way in is enough
    raise WorkflowError(
        f"edge {_edge(src, t)}: {problems[-1] if len(froms) == 1 else _pick(problems)}"
    )


def _pick(problems: list[str]) -> str:
    # Name the closest entry: a missing guard of the right actor says more than "needs".
    guards = [p for p in problems if p.startswith("lacks")]
    return guards[0] if guards else problems[0]


def _edge(src: str, t: TransitionSpec) -> str:
    return f"{src} -> {t.dest} (trigger {t.trigger!r})"


def _reachable(
    wf_initial: str, edges: list[tuple[str, str, TransitionSpec]], avoid: str
) -> set[str]:
    seen = {wf_initial}
    todo = [wf_initial]
    while todo:
        here = todo.pop()
        for src, dst, _ in edges:
            if src == here and dst not in seen and dst != avoid:
                seen.add(dst)
                todo.append(dst)
    return seen


def check_invariants(wf: Workflow) -> None:
    """Refuse a graph that breaks the lifecycle's invariants, naming the edge.

    Raises:
        WorkflowError: the first broken invariant.
    """
    for required in ("signed", "applying", "applied", "failed", "interrupted"):
        if required not in wf.states:
            raise WorkflowError(f"the lifecycle needs a state {required!r}")
    if wf.states[wf.initial].terminal:
        raise WorkflowError(f"initial state {wf.initial!r} is terminal")
    edges = wf.edges()
    seen: set[tuple[str, str]] = set()
    for src, dst, t in edges:
        if (src, t.trigger) in seen:
            raise WorkflowError(f"edge {_edge(src, t)}: trigger fires twice from {src!r}")
        seen.add((src, t.trigger))
        _check_edge(wf, src, dst, t)
        _check_entry(src, dst, t)
    _check_reachability(wf, edges)


def _check_edge(wf: Workflow, src: str, dst: str, t: TransitionSpec) -> None:
    """Refuse an edge that leaves a terminal state or bypasses the apply lifecycle."""
    if wf.states[src].terminal:
        raise WorkflowError(f"edge {_edge(src, t)}: terminal state {src!r} has no exits")
    if t.needs == "automation" and (src, dst) != ("policy", "signed"):
        raise WorkflowError(
            f"edge {_edge(src, t)}: the automation signer only signs ('policy' -> 'signed')"
        )
    if t.operator_resolution and (src != "interrupted" or t.needs != "human"):
        raise WorkflowError(
            f"edge {_edge(src, t)}: operator_resolution only resolves 'interrupted' by a human"
        )
    if src == "interrupted" and not t.operator_resolution:
        raise WorkflowError(
            f"edge {_edge(src, t)}: 'interrupted' leaves only through an operator's resolve"
        )
    if dst in ("applied", "failed") and src != "applying" and not t.operator_resolution:
        raise WorkflowError(f"edge {_edge(src, t)}: only 'applying' leads to {dst!r}")
    if dst == "interrupted" and src != "applying":
        raise WorkflowError(f"edge {_edge(src, t)}: only 'applying' can be interrupted")
    if dst == "applying" and src != "signed":
        raise WorkflowError(f"edge {_edge(src, t)}: every path into 'applying' passes 'signed'")


def _check_reachability(wf: Workflow, edges: list[tuple[str, str, TransitionSpec]]) -> None:
    """Refuse a path into 'applying' around 'signed', an unreachable state, or a dead end."""
    # Belt and braces: applying must be unreachable once 'signed' is removed from the graph.
    if "applying" in _reachable(wf.initial, edges, avoid="signed"):
        raise WorkflowError("a path into 'applying' avoids 'signed'")
    if "signed" in _reachable(wf.initial, edges, avoid="policy"):
        raise WorkflowError("a path into 'signed' avoids 'policy'")
    reachable = _reachable(wf.initial, edges, avoid="")
    for name, spec in wf.states.items():
        if name not in reachable:
            raise WorkflowError(f"state {name!r} cannot be reached from {wf.initial!r}")
        if not spec.terminal and not wf.exits(name):
            raise WorkflowError(f"state {name!r} is not terminal but has no exits")


def parse_workflow(data: bytes, *, source: str = "workflow") -> Workflow:
    """Parse and validate a workflow file's bytes (pure).

    Raises:
        WorkflowError: too large, not UTF-8 TOML, unknown keys/states/guards, broken invariant.
    """
    raw = load_toml(data, what=source, max_bytes=MAX_WORKFLOW_BYTES, error=WorkflowError)
    try:
        _keys(
            raw,
            {"schema_version", "name", "initial", "states", "transitions"},
            {"schema_version", "initial", "states", "transitions"},
            source,
        )
        if raw["schema_version"] != WORKFLOW_SCHEMA:
            raise WorkflowError(f"schema_version must be {WORKFLOW_SCHEMA!r}")
        states = _parse_states(raw["states"])
        initial = _name(raw["initial"], "initial")
        if initial not in states:
            raise WorkflowError(f"initial: unknown state {initial!r}")
        trans_raw = raw["transitions"]
        if not isinstance(trans_raw, list) or not trans_raw or len(trans_raw) > MAX_TRANSITIONS:
            raise WorkflowError(f"[[transitions]] must hold 1 to {MAX_TRANSITIONS} entries")
        transitions = tuple(_parse_transition(i, t, states) for i, t in enumerate(trans_raw))
        wf = Workflow(
            name=str(raw.get("name", "change-request")),
            initial=initial,
            states=states,
            transitions=transitions,
            digest=sha256_hex(data),
        )
        check_invariants(wf)
    except WorkflowError as e:
        if e.message.startswith(source):
            raise
        raise WorkflowError(f"{source}: {e.message}") from e
    return wf


def default_workflow_path() -> Path:
    """The shipped ``workflows/change-request.toml``."""
    return shipped_path("workflows", "change-request.toml", is_dir=False)


@cache
def _load_cached(path: Path) -> Workflow:
    try:
        data = path.read_bytes()
    except OSError as e:
        raise WorkflowError(f"cannot read workflow {path}: {e.strerror}") from e
    return parse_workflow(data, source=str(path))


@cache
def _default_resolved() -> Path:
    return default_workflow_path().resolve()


def load_workflow(path: Path | None = None) -> Workflow:
    """Load and validate the workflow file (the shipped one by default)."""
    return _load_cached(path.resolve() if path is not None else _default_resolved())
