"""The change-request lifecycle: the validated graph's types, and firing triggers.

:class:`Workflow` is the graph after :mod:`aegis.workflow.graph` has loaded it from
``workflows/change-request.toml`` and checked the lifecycle's invariants (a path into
``applying`` passes ``signed``, terminal states have no exits, ...); a ``Workflow``
only ever comes from there.

:func:`fire` checks the (state, trigger) pair against a table built once from the
validated graph (an illegal pair raises before anything else), then fires it on a
``transitions`` machine (``auto_transitions=False``, so no ``to_<state>`` shortcut
exists) that holds only that edge: the current state, the trigger and its
destination, with the guards as conditions. Its transition class runs only the
library's condition check and the model's move (the edge has no callbacks to dispatch,
checked when it is built). Each edge's machine and its one model are built once per
thread; the model is set to the request's state before every attempt, so an earlier
attempt (refused, or whose commit failed) leaves nothing that counts. Guards do no I/O.

Example:
    >>> wf = aegis.workflow.graph.load_workflow()
    >>> fire(wf, "analyzed", "review", inp).dest
    'reviewed'
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from transitions import Machine, MachineError, Transition

from aegis.errors import InputError, StateError
from aegis.workflow.guards import GUARDS, GuardInput


class WorkflowError(InputError):
    """The workflow file is malformed or breaks an invariant of the lifecycle."""


class IllegalTransitionError(StateError):
    """The trigger is not allowed from the request's current state."""


class GuardRefusedError(StateError):
    """The trigger exists from this state but one of its guards said no."""


@dataclass(frozen=True)
class StateSpec:
    """One state of the lifecycle."""

    name: str
    terminal: bool
    stuck_after_s: int | None
    """Seconds a request may sit here before it counts as stuck; None for terminal states."""


@dataclass(frozen=True)
class TransitionSpec:
    """One edge group: ``trigger`` from any of ``sources`` to ``dest``."""

    trigger: str
    sources: tuple[str, ...]
    dest: str
    guards: tuple[str, ...]
    needs: str
    """Who fires it: ``system``, ``human`` or ``key``."""
    resumable: bool
    """A read-only, idempotent step ``aegis resume`` may run again."""
    operator_resolution: bool


@dataclass(frozen=True)
class Workflow:
    """The validated lifecycle graph."""

    name: str
    initial: str
    states: Mapping[str, StateSpec]
    transitions: tuple[TransitionSpec, ...]
    digest: str
    """SHA-256 of the file's bytes, recorded with every transition."""

    @property
    def triggers(self) -> tuple[str, ...]:
        """Every trigger name, in file order."""
        return tuple(dict.fromkeys(t.trigger for t in self.transitions))

    def edges(self) -> list[tuple[str, str, TransitionSpec]]:
        """Every (source, dest, transition), in file order."""
        return [(s, t.dest, t) for t in self.transitions for s in t.sources]

    @cached_property
    def table(self) -> Mapping[tuple[str, str], TransitionSpec]:
        """(state, trigger) -> the transition it fires: every legal move, built once per file."""
        return {(s, t.trigger): t for t in self.transitions for s in t.sources}

    @cached_property
    def _exits(self) -> Mapping[str, tuple[TransitionSpec, ...]]:
        return {
            name: tuple(t for t in self.transitions if name in t.sources) for name in self.states
        }

    @cached_property
    def _attempt_edges(self) -> Mapping[tuple[str, str], dict[str, Any]]:
        # Per legal (state, trigger), the edge an attempt's Machine holds: only names and the
        # stateless guard conditions, so each attempt still builds its own Machine and model.
        return {
            (src, t.trigger): {
                "trigger": t.trigger,
                "source": src,
                "dest": t.dest,
                "conditions": [_condition(t.guards)] if t.guards else [],
            }
            for (src, _), t in self.table.items()
        }

    @cached_property
    def _kinds_read(self) -> Mapping[tuple[str, str], frozenset[str]]:
        return {
            key: frozenset(k for g in t.guards for k in GUARDS[g].kinds)
            for key, t in self.table.items()
        }

    @cached_property
    def _documents_read(self) -> Mapping[tuple[str, str], frozenset[str]]:
        return {
            key: frozenset(k for g in t.guards for k in GUARDS[g].documents)
            for key, t in self.table.items()
        }

    def documents_read(self, state: str, trigger: str) -> frozenset[str]:
        """The recorded artifact kinds whose newest bytes the guards of ``trigger`` read."""
        return self._documents_read.get((state, trigger), frozenset())

    def kinds_read(self, state: str, trigger: str) -> frozenset[str]:
        """The recorded artifact kinds the guards of ``trigger`` from ``state`` look at."""
        return self._kinds_read.get((state, trigger), frozenset())

    def lookup(self, state: str, trigger: str) -> TransitionSpec | None:
        """The transition ``trigger`` fires from ``state``, or None."""
        return self.table.get((state, trigger))

    def exits(self, state: str) -> list[TransitionSpec]:
        """The transitions leaving ``state``."""
        return list(self._exits.get(state, ()))

    def is_terminal(self, state: str) -> bool:
        """True for a state with no exits."""
        spec = self.states.get(state)
        return spec is not None and spec.terminal


class _Attempt:
    """The model of one edge's machine; put in the request's state before each attempt."""

    state: str


class _Edge(Transition):
    """A transition without callbacks: its conditions, then the move of the model.

    The library's ``execute`` dispatches the (empty) prepare, before and after callbacks
    and the states' (empty) exit and enter callbacks, logging each step at debug level:
    over half the cost of firing. An edge built here has none of them (checked when its
    machine is built, :func:`_edge_machine`), so it only runs the library's condition check
    and sets the model's state through the machine.
    """

    def execute(self, event_data: Any) -> bool:
        """Run the conditions; when they pass, move the model to ``dest``."""
        if not self._eval_conditions(event_data):
            return False
        event_data.machine.set_state(self.dest, event_data.model)
        event_data.update(event_data.model.state)
        return True


class _EdgeMachine(Machine):
    """A ``transitions`` machine whose transitions are :class:`_Edge` (no callbacks)."""

    transition_cls = _Edge


def _condition(names: tuple[str, ...]) -> Any:
    """The machine condition of an edge: its guards in file order.

    The attempt's evidence comes as trigger args. The first guard to say no is named and
    ends the check (where the machine would stop with one condition per guard); one
    condition costs the machine less than one per guard.
    """
    guards = [(name, GUARDS[name]) for name in names]

    def check(inp: GuardInput, refused: list[str]) -> bool:
        for name, guard in guards:
            if not guard.check(inp):
                refused.append(f"{name}: {guard.refusal}")
                return False
        return True

    return check


def legal(wf: Workflow, state: str, trigger: str) -> TransitionSpec:
    """The transition ``trigger`` fires from ``state``; refuse a move the graph does not have.

    Raises:
        IllegalTransitionError: unknown trigger, or not allowed from ``state``.
        StateError: ``state`` is not a state of the graph.
    """
    if state not in wf.states:
        raise StateError(f"request is in unknown state {state!r}")
    spec = wf.table.get((state, trigger))
    if spec is None:
        allowed = ", ".join(t.trigger for t in wf.exits(state)) or "none: terminal state"
        if trigger not in wf.triggers:
            raise IllegalTransitionError(f"unknown trigger {trigger!r} (allowed here: {allowed})")
        raise IllegalTransitionError(
            f"trigger {trigger!r} is not allowed in state {state!r} (allowed here: {allowed})"
        )
    return spec


def fire(wf: Workflow, state: str, trigger: str, inp: GuardInput) -> TransitionSpec:
    """Fire ``trigger`` from ``state`` on the machine of that edge; return the transition taken.

    Args:
        wf: the validated workflow.
        state: the request's current state.
        trigger: the trigger name.
        inp: evidence for the guards.

    Raises:
        IllegalTransitionError: unknown trigger, or not allowed from ``state``.
        GuardRefusedError: a guard said no (named in the message).
    """
    spec = legal(wf, state, trigger)
    refused: list[str] = []
    # The table (legal), built from the validated graph, decided the move is legal; the
    # machine holds exactly that one edge (its source and destination), runs the guards
    # as its conditions and moves its model. Machine and model are built once per edge
    # and per thread (building them, or adding and removing a model, cost more than the
    # rest of a transition outside SQLite's commit); they hold only names and the
    # stateless guard conditions. The model is put in ``state`` before every attempt, so
    # nothing of an earlier attempt (refused, failed or committed) carries over.
    machine, model = _edge_machine(wf, state, trigger, spec.dest)
    machine.set_state(state, model)
    try:
        ok = machine.events[trigger].trigger(model, inp, refused)
    except MachineError as e:  # defensive: the table above already checked
        raise IllegalTransitionError(
            f"trigger {trigger!r} is not allowed in state {state!r}"
        ) from e
    reached = model.state
    if not ok:
        raise GuardRefusedError(f"{trigger!r} from {state!r} refused: {'; '.join(refused)}")
    if reached != spec.dest:
        raise RuntimeError(f"machine reached {reached!r}, graph says {spec.dest!r}")
    return spec


_LOCAL = threading.local()


def _edge_machine(wf: Workflow, state: str, trigger: str, dest: str) -> tuple[Any, _Attempt]:
    """This thread's machine holding only the edge ``trigger`` from ``state`` of ``wf``."""
    machines: dict[tuple[str, str, str], tuple[Any, _Attempt]] | None = getattr(
        _LOCAL, "machines", None
    )
    if machines is None:
        machines = _LOCAL.machines = {}
    key = (wf.digest, state, trigger)
    found = machines.get(key)
    if found is None:
        model = _Attempt()
        machine = _EdgeMachine(
            model=model,
            states=[state] if dest == state else [state, dest],
            transitions=[wf._attempt_edges[(state, trigger)]],
            initial=state,
            auto_transitions=False,
            ignore_invalid_triggers=False,
        )
        _check_no_callbacks(machine)
        found = machines[key] = (machine, model)
    return found


def _check_no_callbacks(machine: Any) -> None:
    """Refuse a machine with any callback :class:`_Edge` would not run."""
    hooks = [
        machine.before_state_change,
        machine.after_state_change,
        machine.prepare_event,
        machine.finalize_event,
        machine.on_exception,
        machine.on_final,
    ]
    hooks += [h for s in machine.states.values() for h in (s.on_enter, s.on_exit)]
    edges = [t for e in machine.events.values() for ts in e.transitions.values() for t in ts]
    hooks += [h for t in edges for h in (t.prepare, t.before, t.after)]
    if any(hooks) or not all(isinstance(t, _Edge) for t in edges):
        raise RuntimeError("an edge machine has callbacks its transitions would not run")


def stuck_thresholds(wf: Workflow) -> dict[str, int]:
    """Seconds per non-terminal state before a request there counts as stuck."""
    return {n: s.stuck_after_s for n, s in wf.states.items() if s.stuck_after_s is not None}


def mermaid(wf: Workflow, *, current: str | None = None) -> str:
    """The graph as a mermaid ``stateDiagram-v2``; ``current`` is highlighted."""
    lines = ["stateDiagram-v2", f"    [*] --> {wf.initial}"]
    for src, dst, t in wf.edges():
        lines.append(f"    {src} --> {dst}: {t.trigger}")
    for name, spec in wf.states.items():
        if spec.terminal:
            lines.append(f"    {name} --> [*]")
    if current is not None and current in wf.states:
        lines.append("    classDef current fill:#fd0,stroke:#000,stroke-width:2px")
        lines.append(f"    class {current} current")
    return "\n".join(lines)


def text_graph(wf: Workflow, *, current: str | None = None) -> str:
    """The graph as plain lines ``source --trigger--> dest``; ``current`` marked with ``*``."""
    lines = []
    for name, spec in wf.states.items():
        mark = "*" if name == current else " "
        exits = wf.exits(name)
        if spec.terminal:
            lines.append(f"{mark} {name} (terminal)")
            continue
        stuck = f"stuck after {_duration(spec.stuck_after_s)}"
        lines.append(f"{mark} {name} ({stuck})")
        for t in exits:
            tags = [t.needs] + (["resumable"] if t.resumable else [])
            lines.append(f"      --{t.trigger}--> {t.dest}  [{', '.join(tags)}]")
    return "\n".join(lines)


def _duration(seconds: int | None) -> str:
    if seconds is None:
        return "-"
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"
