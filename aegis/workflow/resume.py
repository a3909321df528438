"""``aegis resume``: advance every request whose next step is read-only.

For each non-terminal request, in order of its last state change:

- ``analyzed`` / ``reviewed`` / ``applied``: the step is resumable (read-only and
  idempotent: review, decide/deny, audit); run it again through its stage
  (:mod:`aegis.workflow.stages`) when that stage is available, else skip saying so;
- ``applying``: only *ask* (stage ``executor_status``: aegisd's ledger and dpkg);
  record finish/fail/interrupt when the answer is known; never re-run;
- anything that needs a human or a key (sign, start, resolve, cancel) is reported
  as waiting, never run.

A lease keeps two resume workers off one request; a request another worker holds
is skipped. One request's failure is reported and does not stop the others.

Example:
    >>> report = resume_all(cfg, "aegis-monitor", now)
    >>> [(i.request_id, i.action) for i in report.items]
    [('r-1a2b', 'advanced')]
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from aegis.errors import AegisError, EnvironmentFailure, StageUnavailableError

if TYPE_CHECKING:
    from aegis.config import Config
    from aegis.workflow.machine import Workflow
    from aegis.workflow.records import RequestRecord
    from aegis.workflow.stages import StageOutcome
    from aegis.workflow.store import Store

LEASE_SECONDS = 300
REVIEWER_UNREACHABLE = "reviewer-unreachable"
"""aegis-reviewd (advisory) cannot be reached: a condition to report, never a failed pass."""
_STAGE_FOR_STATE = {
    "analyzed": "reviewer",
    "reviewed": "policy",
    "applied": "auditor",
    "policy": "expiry",
    "signed": "expiry",
    "applying": "executor_status",
    "verifying": "executor_status",
    "rolling_back": "executor_status",
}
_WAITING = {
    "intent": "waiting for analysis: plan it again with 'aegis <tool> ... --plan'",
    "policy": "waiting for a human: approvals and 'aegisctl sign'",
    "signed": "waiting for a human: 'aegisctl apply'",
    "interrupted": "waiting for an operator: 'aegisctl resolve <id> --as applied|failed'",
}


@dataclass(frozen=True)
class ResumeItem:
    """What resume did with one request."""

    request_id: str
    state_before: str
    action: str
    """``advanced``, ``waiting``, ``skipped`` or ``failed``."""
    state_after: str
    trigger: str | None = None
    detail: str = ""
    exit_code: int = 0
    condition: str | None = None
    """A reported condition that is not a failure: ``reviewer-unreachable``."""


@dataclass(frozen=True)
class ResumeReport:
    """Everything resume did, in order."""

    items: tuple[ResumeItem, ...] = field(default_factory=tuple)
    unlisted: tuple[tuple[str, int], ...] = ()
    """(action or condition, count) of requests counted but not listed (``list_waiting``
    false): those only waiting for a human or for an unreachable reviewer."""

    def counts(self) -> dict[str, int]:
        """Requests per action (or condition), listed and unlisted."""
        out = dict(self.unlisted)
        for item in self.items:
            key = item.condition or item.action
            out[key] = out.get(key, 0) + 1
        return out

    @property
    def failed(self) -> list[ResumeItem]:
        """Items whose step raised an error."""
        return [i for i in self.items if i.action == "failed"]


def _holder_is_dead(owner: str | None) -> bool:
    """True when a lease owner ``name:pid`` names a process that no longer exists here.

    A resume killed mid-step leaves its lease behind; waiting for it to expire would
    only delay recovery, since the steps resume runs are read-only and idempotent.
    """
    if not owner or ":" not in owner:
        return False
    pid_text = owner.rsplit(":", 1)[1]
    if not pid_text.isdigit():
        return False
    try:
        os.kill(int(pid_text), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def _latest(store: Store, rec: RequestRecord, kind: str) -> bytes | None:
    arts = [a for h in store.history(rec) for a in h.artifacts if a.kind == kind]
    return store.load_artifact(arts[-1].sha256) if arts else None


def _run_stage(cfg: Config, store: Store, rec: RequestRecord, now: datetime) -> StageOutcome | None:
    from aegis.workflow.stages import get_stage

    if rec.state == "applying":
        status = get_stage("executor_status", cfg)
        result: StageOutcome | None = status.status(rec, _latest(store, rec, "execution-plan"))
        return result
    if rec.state in ("applied", "verifying", "rolling_back"):
        # Health probes: aegisd's verifier decides; an applied request whose signed plan
        # carries a verification is never audited before it (aegis/execute/verifier.py).
        from aegis.execute.stage import has_verification, verification_step

        signed = _latest(store, rec, "execution-plan")
        if rec.state != "applied" or has_verification(signed):
            return verification_step(cfg, rec, signed)
    name = _STAGE_FOR_STATE[rec.state]
    stage = get_stage(name, cfg)
    plan = _latest(store, rec, "plan")
    if name == "reviewer":
        if plan is None:
            raise StageUnavailableError("the request has no plan to review")
        out: StageOutcome | None = stage.review(rec, plan)
        return out
    if name == "policy":
        if plan is None:
            raise StageUnavailableError("the request has no plan to decide on")
        out = stage.evaluate(rec, plan, _latest(store, rec, "review"), now)
        return out
    if name == "expiry":
        out = stage.check(rec, now)
        return out
    out = stage.verify(rec)
    return out


def _reviewer_down(request_id: str, state: str, detail: str) -> ResumeItem:
    return ResumeItem(
        request_id,
        state,
        "skipped",
        state,
        detail=f"waiting for review: {detail}",
        condition=REVIEWER_UNREACHABLE,
    )


def _waiting(request_id: str, state: str) -> ResumeItem:
    detail = _WAITING.get(state, "waiting for a human or a key")
    return ResumeItem(request_id, state, "waiting", state, detail=detail)


def _for(request_id: str, d: ResumeItem) -> ResumeItem:
    # dataclasses.replace costs ten times this; it runs once per listed request.
    return ResumeItem(
        request_id, d.state_before, d.action, d.state_after, d.trigger, d.detail, 0, d.condition
    )


def _decided_by_state(
    wf: Workflow, request_id: str, state: str, reviewer_down: str | None
) -> ResumeItem | None:
    """What resume does with a request whose state alone decides it, or None.

    Waiting for a human, or for a reviewer known to be down: nothing is read or written,
    so a store of 100,000 requests passes in well under the monitor's 2 s budget.
    """
    from aegis.workflow.stages import available

    stage_name = _STAGE_FOR_STATE.get(state)
    if state != "applying" and not any(t.resumable for t in wf.exits(state)):
        return _waiting(request_id, state)
    if stage_name == "expiry" and not available("expiry"):
        return _waiting(request_id, state)
    if stage_name == "reviewer" and reviewer_down is not None:
        return _reviewer_down(request_id, state, reviewer_down)
    return None


def _resume_one(
    cfg: Config,
    store: Store,
    wf: Workflow,
    rec: RequestRecord,
    *,
    actor: str,
    now: datetime,
    reviewer_down: str | None = None,
) -> ResumeItem:
    from aegis.workflow.access import _advance
    from aegis.workflow.records import format_time

    resumable = [t for t in wf.exits(rec.state) if t.resumable]
    waiting = _waiting(rec.id, rec.state)
    stage_name = _STAGE_FOR_STATE.get(rec.state)
    decided = _decided_by_state(wf, rec.id, rec.state, reviewer_down)
    if decided is not None:
        return decided  # a human's step is next, or the reviewer is known to be down
    owner = f"{actor}:{os.getpid()}"
    leased = store.set_lease(
        rec,
        owner,
        format_time(now + timedelta(seconds=LEASE_SECONDS)),
        format_time(now),
        force=_holder_is_dead(rec.lease_owner),
    )
    if leased is None:
        return ResumeItem(rec.id, rec.state, "skipped", rec.state, detail="another worker holds it")
    try:
        outcome = _run_stage(cfg, store, leased, now)
        if outcome is None:
            store.set_lease(leased, None, None, format_time(now))
            if stage_name == "expiry":
                return waiting
            return ResumeItem(rec.id, rec.state, "skipped", rec.state, detail="no answer yet")
        allowed = {t.trigger for t in resumable} | (
            {"finish", "fail", "interrupt"} if rec.state == "applying" else set()
        )
        if outcome.trigger not in allowed:
            raise StageUnavailableError(
                f"stage answered with trigger {outcome.trigger!r}, not one resume may fire here"
            )
        new = _advance(
            store,
            leased,
            outcome.trigger,
            actor=actor,
            artifact_kind=outcome.artifact_kind,
            body=outcome.artifact,
            artifact_path=outcome.artifact_path,
            facts=outcome.evidence,
        )
    except AegisError as e:
        current = store.find(rec.id)
        if current is not None and current.lease_owner == owner:
            store.set_lease(current, None, None, format_time(now))
        if stage_name == "reviewer" and isinstance(e, EnvironmentFailure):
            # The advisory reviewer is down: a condition, not a failure.
            return _reviewer_down(rec.id, rec.state, e.message)
        action = "skipped" if isinstance(e, StageUnavailableError) else "failed"
        return ResumeItem(
            rec.id,
            rec.state,
            action,
            rec.state,
            detail=e.message,
            exit_code=0 if action == "skipped" else e.exit_code,
        )
    return ResumeItem(
        rec.id, rec.state, "advanced", new.state, trigger=outcome.trigger, detail=outcome.note
    )


def _get_listed(store: Store, request_id: str) -> RequestRecord:
    """The request whose id was just read from the store.

    That id is store content, not the user's input: one that is not a valid id is a
    corrupted row (exit 4, as ``aegis requests`` reports it), not a typo (exit 3).
    """
    from aegis.errors import InputError
    from aegis.workflow.records import CorruptStoreError, check_id

    try:
        check_id(request_id)
    except InputError as e:
        raise CorruptStoreError(
            f"store row request {request_id[:80]!r} is corrupted or was edited: "
            "not a valid request id",
            hint="nothing was changed; restore the store from backup",
        ) from e
    return store.get(request_id)


def _check_standing(cfg: Config, store: Store, rec: RequestRecord) -> None:
    """Report (exit 4) a request whose state's evidence does not re-verify (aegis.standing).

    Checked before resume reports a request as waiting for a human or a key: a forged
    ``denied -> policy`` row would otherwise read "waiting for aegisctl sign". Steps that
    only make a request stricter (expire) still run from such a state.
    """
    from aegis.standing import CHECKED_STATES, check_standing

    if rec.state in CHECKED_STATES:
        check_standing(cfg, store, rec, store.load(rec.id)[1])


def resume_all(
    cfg: Config,
    actor: str,
    now: datetime,
    *,
    reviewer_down: str | None = None,
    list_waiting: bool = True,
) -> ResumeReport:
    """Resume every non-terminal request (see module doc).

    Args:
        cfg: configuration.
        actor: who resumes (history rows).
        now: the pass's time.
        reviewer_down: why aegis-reviewd is known to be unreachable (the monitor probes
            it once): requests waiting for review are then skipped without a lease.
        list_waiting: list requests whose state alone says they wait (for a human, or
            for the unreachable reviewer); when false they are only counted, with one
            query, so the monitor's pass stays fast over a large backlog.
    """
    from aegis.standing import CHECKED_STATES as STANDING_CHECKED
    from aegis.workflow.access import open_store, workflow
    from aegis.workflow.records import ID_PATTERN

    wf = workflow()
    items: list[ResumeItem] = []
    open_states = [name for name, spec in wf.states.items() if not spec.terminal]
    by_state = {st: _decided_by_state(wf, "", st, reviewer_down) for st in open_states}
    unlisted: dict[str, int] = {}
    with open_store(cfg) as store:
        rows: list[tuple[str, str]] = []
        if not list_waiting:
            # Count the waiting ones in SQL; a malformed id is still read below, where
            # it is reported as a corrupted row.
            waiting = [st for st in open_states if by_state[st] is not None]
            odd = store.odd_ids(waiting) if waiting else []
            rows += odd
            odd_count: dict[str, int] = {}
            for _, state in odd:
                odd_count[state] = odd_count.get(state, 0) + 1
            for state, n in store.count_by_state().items():
                decided = by_state.get(state)
                if decided is not None and n > odd_count.get(state, 0):
                    key = decided.condition or decided.action
                    unlisted[key] = unlisted.get(key, 0) + n - odd_count.get(state, 0)
            acting = [st for st in open_states if by_state[st] is None]
            rows += store.list_ids(acting) if acting else []
        else:
            rows = store.list_ids(open_states)
        # Ids first, then each row on its own: one corrupted row is reported, not fatal.
        for request_id, state in rows:
            # A plain id whose state alone decides (waiting): no row read. Anything odd
            # is read row by row below, where a corrupted row is reported.
            decided = by_state.get(state)
            if (
                decided is not None
                and ID_PATTERN.match(request_id)
                and state not in STANDING_CHECKED
            ):
                items.append(_for(request_id, decided))
                continue
            try:
                rec = _get_listed(store, request_id)
            except AegisError as e:
                items.append(
                    ResumeItem(
                        request_id, state, "failed", state, detail=e.message, exit_code=e.exit_code
                    )
                )
                continue
            item = _resume_one(
                cfg, store, wf, rec, actor=actor, now=now, reviewer_down=reviewer_down
            )
            if item.action == "waiting":
                try:
                    _check_standing(cfg, store, rec)
                except AegisError as e:
                    item = ResumeItem(
                        rec.id, rec.state, "failed", rec.state, detail=e.message, exit_code=4
                    )
            items.append(item)
    return ResumeReport(items=tuple(items), unlisted=tuple(sorted(unlisted.items())))
