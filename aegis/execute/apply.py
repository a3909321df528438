"""aegisd's apply: the ordered checks of docs/design.md "Trust", then the locked execution.

Check order (each a named step with a named refusal, :mod:`aegis.sign.refusals`):
size and strict parse -> signature by a trusted key -> host -> time window ->
execution id not in the ledger -> approvals -> aegisd's OWN re-derivation of the
plan from the signed intent (same analyzer, aegisd's configuration) equal to the
signed plan -> policy re-evaluated on that derivation -> argv equal to the argv
aegisd derives itself. A later step never runs when an earlier one refused.

All of it runs under aegisd's execution lock, and dpkg's locks are taken before the
re-derivation and held through the run (:mod:`aegis.execute.dpkg_lock`; busy:
``refused:dpkg-locked``). Then: the audit log opens (``refused:audit-log``), ``dpkg
--audit`` clean (a ``recover`` request is the exception: it exists to fix that),
snapshot when required, every planned .deb the argv names fetched by its planned URI
and verified by its planned SHA-256 into aegisd's root-only directory
(:mod:`aegis.execute.fetch`), ``apply-started`` audited, ``started`` recorded durably (after a
last look that every kept .deb a rollback names by path still has its signed hash), run,
``finished`` recorded, dpkg status compared with the
signed delta, audit event and checkpoint.

An npm plan's run is started once the checks before the re-derivation passed, held
before its command (:mod:`aegis.execute.npm_gate`) and let go only where the run would
start; any refusal stops it before its command.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from typing import TYPE_CHECKING, Any

from aegis.ecosystems import for_tool
from aegis.ecosystems.apt import dpkg
from aegis.ecosystems.apt.snapshot_debs import changed_since_signing
from aegis.errors import AegisError, TrustError
from aegis.execute import ledger as ledger_mod
from aegis.execute import runner
from aegis.execute.apply_audit import (
    REFUSED_AUDIT_LOG,
    audit_finished,
    audit_refusal,
    finished_answer,
    run_env,
)
from aegis.execute.dpkg_lock import REFUSED_DPKG_LOCKED, DpkgLocked, DpkgLocks, admin_dir
from aegis.execute.fetch import (
    REFUSED_DEB_MISMATCH,
    REFUSED_DEB_UNAVAILABLE,
    Fetched,
    fetch_planned,
    remove_planned,
)
from aegis.execute.npm_gate import HeldRun
from aegis.execute.own_dir import REFUSED_OWN_DIR, check_own_dir
from aegis.execute.prepare import Early, Prepared, prepare_apt
from aegis.execute.protocol import (
    REFUSED_DPKG_AUDIT,
    REFUSED_NO_KEYS,
    REFUSED_VERIFYING,
    Answer,
    Request,
    iso,
)
from aegis.execute.rederive import binding_from_result, derive_plan, policy_binding, this_host
from aegis.execute.snapshots import finish_snapshot
from aegis.model import Tool
from aegis.oob.record import own_run_window
from aegis.policy.run import verification_for
from aegis.sign import checks as xc
from aegis.sign import execution_plan as xp
from aegis.sign.execution_plan import execution_plan_bytes
from aegis.sign.refusals import CheckResult, CheckStep, Refusal, RefusalCode, RefusedError
from aegis.unattended.trust import automation_public_keys, check_automation_scope

__all__ = [
    "REFUSED_SNAPSHOT_DEB",
    "apply_request",
    "binding_from_result",
    "this_host",
    "verify_for_apply",
]

REFUSED_SNAPSHOT_DEB = "refused:snapshot-deb-changed"

if TYPE_CHECKING:
    from aegis.execute.daemon import Aegisd
    from aegis.execute.dpkg_lock import DpkgLocks
    from aegis.execute.peer import PeerCredentials
    from aegis.sign.checks import VerifiedExecutionPlan
    from aegis.sign.execution_plan import ExecutionPlan


@dataclass
class _Checks:
    results: list[CheckResult]

    def passed(self, step: CheckStep, detail: str) -> None:
        self.results.append(CheckResult(step, True, detail))


def verify_for_apply(
    d: Aegisd,
    raw: bytes,
    now: datetime,
    *,
    before_rederivation: Callable[[ExecutionPlan], None] | None = None,
) -> VerifiedExecutionPlan:
    """Run every check in the order of docs/design.md "Trust"; return the verified plan.

    ``before_rederivation`` runs once the cheap checks passed and before aegisd derives
    the plan again (aegisd takes dpkg's locks there, :mod:`aegis.execute.dpkg_lock`).

    Raises:
        RefusedError: the first refusal, by name.
        AegisError: ``before_rederivation`` failed (carrying ``execution_plan``).
    """
    checks = _Checks([])
    ep = xp.parse_execution_plan(
        raw, max_bytes=min(d.settings.max_request_bytes, xp.MAX_EXECUTION_PLAN_BYTES)
    )
    checks.passed(CheckStep.PARSE, "canonical, strict, self-consistent")

    def step(name: CheckStep, refusal: Any, detail: str) -> None:
        if refusal is not None:
            err = refusal.error()
            err.execution_plan = ep
            raise err
        checks.passed(name, detail)

    # The automation key verifies too, but a plan it signed must pass the scope step below.
    automation = automation_public_keys(d.cfg)
    signers = (*d.settings.signer_keys, *automation)
    step(CheckStep.SIGNATURE, xc.check_signature(ep, signers), ep.signer_id)
    step(CheckStep.HOST, xc.check_host(ep, this_host(d.cfg)), ep.host.hostname)
    step(CheckStep.TIME_WINDOW, xc.check_time_window(ep, now), ep.expires_at)
    entry = d.ledger.lookup(ep.execution_id)
    step(
        CheckStep.EXECUTION_ID,
        xc.check_execution_id(
            ep,
            used=entry is not None and entry.state != ledger_mod.REVOKED,
            revoked=entry is not None and entry.state == ledger_mod.REVOKED,
        ),
        "not in the ledger",
    )
    step(
        CheckStep.APPROVALS,
        xc.check_approvals(ep, d.settings.approver_grants, now),
        f"{len(ep.approvals)} approval(s)",
    )
    if before_rederivation is not None:
        try:
            before_rederivation(ep)
        except AegisError as e:
            e.execution_plan = ep  # type: ignore[attr-defined]
            raise
    derived = derive_plan(d.cfg, ep, now)
    step(CheckStep.REDERIVATION, xc.check_rederivation(ep, derived), "re-derived plan equal")
    binding = policy_binding(d.cfg, ep, derived, now)
    refusal = xc.check_policy(ep, binding) or xc.check_approvals(
        ep,
        d.settings.approver_grants,
        now,
        required=binding.required_approvals,
        required_roles=binding.required_roles,
    )
    step(CheckStep.POLICY, refusal, f"{binding.decision} ({', '.join(binding.rule_ids)})")

    if verification_for(d.cfg, derived) != ep.verification:
        # Probes are part of what policy asks of the change: a plan signed without them
        # (or with others) is held to a policy it was not planned under.

        step(
            CheckStep.POLICY,
            Refusal(RefusalCode.POLICY, "the signed health probes are not the ones policy asks"),
            "",
        )
    if ep.cohort_approvals:
        step(CheckStep.COHORT, xc.check_cohort(ep, derived, binding), "own delta is the cohort's")
    step(
        CheckStep.ARGV,
        xc.check_argv(ep, for_tool(derived.intent.tool).derive_argv(derived, d.cfg)),
        "argv equal",
    )
    if ep.signer_public_key_hex.lower() in automation:
        step(
            CheckStep.AUTOMATION_SCOPE,
            check_automation_scope(d.cfg, ep, derived, binding),
            "allow, upgrade-only, from automation sources",
        )
    return xc.verified(ep, checks.results)


def _actor(creds: PeerCredentials, ep: ExecutionPlan | None) -> dict[str, Any]:
    return {
        "uid": creds.uid,
        "pid": creds.pid,
        "signer": ep.signer_id if ep else None,
        "approvers": [a.approver_id for a in ep.approvals] if ep else [],
        **(_cohort_actor(ep) if ep and ep.cohort_approvals else {}),
    }


def _cohort_actor(ep: ExecutionPlan) -> dict[str, Any]:
    """Who approved by cohort, and which cohort (absent for a plan without them)."""
    return {
        "cohort_approvers": [a.approver_id for a in ep.cohort_approvals],
        "cohort": sorted({a.cohort_hash for a in ep.cohort_approvals}),
    }


def _decision(ep: ExecutionPlan) -> dict[str, Any]:
    return {
        "outcome": ep.policy.decision,
        "rule_ids": list(ep.policy.rule_ids),
        "reasons": [f"signed by {ep.signer_id}"],
    }


def apply_request(d: Aegisd, req: Request, creds: PeerCredentials) -> Answer:
    """Verify and run one execution plan; every refusal is audited."""
    return _apply(d, req, creds)


def _classify(result: runner.RunResult) -> str:
    if result.timed_out:
        return "timeout"
    if result.exit_status == 0:
        return "succeeded"
    text = result.stdout_tail + result.stderr_tail
    if "Trivial Only specified" in text:
        return "refused-by-apt-trivial-only"
    return "failed"


class _Refusal(Exception):
    """A refusal from a step under aegisd's lock; :func:`_apply` audits it once."""

    def __init__(self, code: str, message: str, *, with_actor: bool = True) -> None:
        """Carry what :meth:`Aegisd.refuse` needs beyond the execution plan.

        Args:
            code: The refusal code audited and returned (``refused:...``).
            message: Why, for the operator.
            with_actor: Whether the audit event names the signed actor; a replay does not
                (the ledger, not this request, is what it reports).
        """
        super().__init__(message)
        self.code = code
        self.message = message
        self.with_actor = with_actor


def _apply(d: Aegisd, req: Request, creds: PeerCredentials) -> Answer:

    problem = d.settings.keys_problem
    if problem:
        return d.refuse(creds, REFUSED_NO_KEYS, problem, None)

    problem = d.verifier.open_problem()
    if problem:
        return d.refuse(creds, REFUSED_VERIFYING, problem, None, request_id=req.request_id)
    # Everything from the ledger look-up to the last status read happens under aegisd's
    # lock, so a second submission of the same id waits and then finds it spent; dpkg's
    # locks are taken before re-derivation and held through the run (dpkg_lock.py).
    # dpkg's audit, status and the snapshot's files are read beside the re-derivation
    # (aegis/execute/prepare.py), under the same locks; a refused plan's are removed.
    with d.execution_lock():
        locks = DpkgLocks(admin_dir(d.cfg.dpkg_root))
        early = Early()
        try:
            verified = _verify(d, req, creds, locks, early)
            if isinstance(verified, Answer):
                return verified
            return _checked_run(d, creds, verified, locks, early)
        finally:
            early.discard()
            locks.__exit__(None, None, None)


def _checked_run(
    d: Aegisd,
    creds: PeerCredentials,
    verified: VerifiedExecutionPlan,
    locks: DpkgLocks,
    early: Early,
) -> Answer:
    ep = verified.plan
    try:
        env = d.child_env()
    except AegisError as e:
        return d.refuse(
            creds,
            "refused:environment",
            e.message,
            ep.execution_id,
            request_id=ep.request_id,
            extra={"actor": _actor(creds, ep)},
        )

    # pip and npm: the place it changes is watched for out-of-band changes from now on.
    place = ep.intent.location if ep.intent.tool in (Tool.PIP, Tool.NPM) else None
    with own_run_window(d, place=place):
        try:
            return _run_locked(d, creds, verified, env, locks, early=early)
        except _Refusal as r:
            return d.refuse(
                creds,
                r.code,
                r.message,
                ep.execution_id,
                request_id=ep.request_id,
                extra={"actor": _actor(creds, ep)} if r.with_actor else None,
            )
        finally:
            d.running_id = None


def _verify(
    d: Aegisd, req: Request, creds: PeerCredentials, locks: DpkgLocks, early: Early
) -> VerifiedExecutionPlan | Answer:
    """Run the ordered checks; a refusal comes back as the (audited) answer."""
    assert req.execution_plan is not None
    raw = req.execution_plan.encode("utf-8")
    now = d.clock()

    def before_rederivation(ep: ExecutionPlan) -> None:
        locks.take_for(ep)
        if not locks.held and ep.intent.tool is not Tool.NPM:
            return
        try:
            env = d.child_env()
        except AegisError:
            return  # refused after the checks, where the environment is read again
        if locks.held:
            early.start(d.cfg, ep, env)
            return
        # npm boots beside the re-resolution; its command waits for every check.
        run = HeldRun.start(
            d.cfg,
            ep,
            run_env(d, ep.argv, env, dpkg_locked=False),
            out_dir=d.cfg.aegisd_dir / "runs",
            name=ep.execution_id,
        )
        early.hold(run)

    try:
        return verify_for_apply(d, raw, now, before_rederivation=before_rederivation)
    except DpkgLocked as e:
        ep = getattr(e, "execution_plan", None)
        return d.refuse(
            creds,
            REFUSED_DPKG_LOCKED,
            e.message,
            ep.execution_id if ep else None,
            request_id=ep.request_id if ep else req.request_id,
            extra={"actor": _actor(creds, ep)} if ep else None,
        )
    except RefusedError as e:
        ep = getattr(e, "execution_plan", None)
        # Names in a document whose signature did not verify are claims, not facts.
        signed = ep is not None and e.refusal.code is not RefusalCode.SIGNATURE
        detail = e.refusal.detail
        if e.refusal.code is RefusalCode.SIGNATURE and "not trusted" in detail:
            detail = f"{detail}: to trust it, {d.settings.where_signers}"
        return d.refuse(
            creds,
            e.refusal.code.value,
            detail,
            ep.execution_id if ep else None,
            request_id=ep.request_id if ep else req.request_id,
            extra={"actor": _actor(creds, ep)} if signed else None,
        )
    except AegisError as e:
        return d.refuse(
            creds,
            RefusalCode.REDERIVATION.value,
            f"re-derivation failed: {e.message}",
            None,
            request_id=req.request_id,
        )


def _prepare(
    d: Aegisd, ep: ExecutionPlan, env: dict[str, str], early: Early
) -> tuple[Any, str | None]:
    """Check dpkg is clean, read its status and take the snapshot when one is needed.

    What was read beside the re-derivation (:mod:`aegis.execute.prepare`) is used when
    there is one; the snapshot hook and manifest come only now, after every check.

    Returns:
        dpkg's status before the run, and the snapshot id (None without a snapshot).

    Raises:
        _Refusal: dpkg is half-configured, its status unreadable, or the snapshot failed.
    """
    if ep.intent.tool is not Tool.APT:
        return _prepare_ecosystem(d, ep, env), None
    prepared: Prepared = early.claim(ep) or prepare_apt(d.cfg, ep, env)
    if not prepared.audit_clean:
        raise _Refusal(
            REFUSED_DPKG_AUDIT,
            "dpkg --audit reports half-installed packages; plan a recovery with "
            f"'aegisctl recover --plan' ({prepared.audit_report[:300]})",
        )
    if prepared.status_error is not None or prepared.before is None:
        raise _Refusal("refused:environment", prepared.status_error or "dpkg status unread")
    if prepared.snapshot_error is not None:
        raise _Refusal("refused:snapshot", prepared.snapshot_error)
    if prepared.gathered is None:
        return prepared.before, None
    required = "snapshot" in ep.policy.controls
    try:
        finish_snapshot(
            d.cfg,
            prepared.gathered,
            execution_id=ep.execution_id,
            request_id=ep.request_id,
            env=env,
            now=iso(d.clock()),
            hook=d.settings.snapshot_command if required else (),
        )
    except AegisError as e:
        raise _Refusal("refused:snapshot", e.message) from e
    return prepared.before, prepared.gathered.snapshot_id


def _prepare_ecosystem(d: Aegisd, ep: ExecutionPlan, env: dict[str, str]) -> Any:
    """A non-apt change: the ecosystem's own preflight, then its installed state.

    Its snapshot is the installed set the signed plan recorded (``plan.ecosystem.installed``),
    which the re-derivation just proved is still the state (docs/ecosystems.md).

    Raises:
        _Refusal: the place the change lands cannot take it now.
    """
    eco = for_tool(ep.intent.tool)
    try:
        problem = eco.preflight(d.cfg, ep.plan, env)
        if problem is not None:
            raise _Refusal("refused:environment", problem)
        return eco.installed_state(d.cfg, ep.plan, env)
    except AegisError as e:
        raise _Refusal("refused:environment", e.message) from e


def _eco(ep: ExecutionPlan) -> Any:

    return for_tool(ep.intent.tool)


def _fetch_planned(d: Aegisd, ep: ExecutionPlan) -> Fetched:
    """Put the planned .debs the argv names in aegisd's directory, verified (fetch.py).

    Raises:
        _Refusal: a file could not be fetched or is not the planned one; nothing ran.
    """
    try:
        return fetch_planned(d.cfg, ep.plan, ep.argv)
    except AegisError as e:
        remove_planned(d.cfg, ep.plan, ep.argv)
        code = REFUSED_DEB_MISMATCH if isinstance(e, TrustError) else REFUSED_DEB_UNAVAILABLE
        raise _Refusal(code, f"planned .deb not installed: {e.message}") from e


def _own_dir_still_own(d: Aegisd) -> None:
    """Refuse when aegisd's directory was swapped since startup (aegis/execute/own_dir.py).

    Raises:
        _Refusal: the directory is not the one aegisd claimed.
    """
    try:
        check_own_dir(d.cfg.aegisd_dir, d.own_dir)
    except TrustError as e:
        raise _Refusal(REFUSED_OWN_DIR, e.message) from e


def _record_start(
    d: Aegisd,
    creds: PeerCredentials,
    verified: VerifiedExecutionPlan,
    base: dict[str, Any],
    snapshot_id: str | None,
) -> None:
    """Write ``apply-started`` to the audit log, then ``started`` to the ledger.

    Raises:
        _Refusal: the log cannot take the event, or the id was spent meanwhile.
    """
    ep = verified.plan
    try:
        d.audit.append(
            "apply-started",
            {
                **base,
                "details": {
                    "snapshot_id": snapshot_id,
                    "checks": [
                        {"step": r.step.value, "detail": r.detail} for r in verified.results
                    ],
                },
            },
        )
    except AegisError as e:
        raise _Refusal(REFUSED_AUDIT_LOG, audit_refusal(e)) from e
    try:
        d.ledger.record_started(
            ep.execution_id,
            request_id=ep.request_id,
            plan_hash=ep.plan_hash,
            peer_uid=creds.uid,
            peer_pid=creds.pid,
            now=iso(d.clock()),
        )
    except ledger_mod.ReplayError as e:
        raise _Refusal(RefusalCode.REPLAYED.value, e.message, with_actor=False) from e
    d.running_id = ep.execution_id  # status answers "running" until this run finished


def verified_raw(verified: VerifiedExecutionPlan) -> bytes:
    """The signed plan's bytes, as aegisd keeps them for a verification it may resume."""
    return execution_plan_bytes(verified.plan)


def _run_locked(
    d: Aegisd,
    creds: PeerCredentials,
    verified: VerifiedExecutionPlan,
    env: dict[str, str],
    locks: DpkgLocks,
    *,
    early: Early,
) -> Answer:
    """Everything under aegisd's lock: prepare, record ``started``, run, record, audit.

    The ``apply-started`` event is written before the ledger row: a log that cannot take
    it (full, replaced by a symlink) is a refusal while the execution id is still unused.

    Raises:
        _Refusal: a step refused before ``started`` was recorded; nothing ran.
    """
    ep = verified.plan
    base: dict[str, Any] = {
        "actor": _actor(creds, ep),
        "request_id": ep.request_id,
        "execution_id": ep.execution_id,
        "decision": _decision(ep),
        "argv": list(ep.argv),
    }
    _own_dir_still_own(d)
    try:
        d.audit.probe()  # a log that cannot be opened (a symlink, ELOOP): nothing runs
    except AegisError as e:
        raise _Refusal(REFUSED_AUDIT_LOG, audit_refusal(e)) from e
    before, snapshot_id = _prepare(d, ep, env, early)
    fetched = _fetch_planned(d, ep)
    d.hook("before-started")
    deb_problem = changed_since_signing(d.cfg, ep.plan.snapshot_debs)
    if deb_problem is not None:
        raise _Refusal(REFUSED_SNAPSHOT_DEB, deb_problem)
    # Again at the last moment: the ledger row must land in aegisd's own directory.
    _own_dir_still_own(d)
    _record_start(d, creds, verified, base, snapshot_id)
    d.verifier.before_run(ep, verified_raw(verified))
    d.publish_status()
    d.hook("after-started")
    d.hook("before-run")
    t0 = time.monotonic()
    locks.release_database()  # dpkg takes it itself; aegisd keeps the frontend lock
    try:
        # npm: the signed project files; a failure here is a failed run, recorded as one.
        _eco(ep).before_run(d.cfg, ep.plan)
        child_env = run_env(d, ep.argv, env, dpkg_locked=locks.held)
        held = early.take_run(ep.argv, child_env)
        result = (held.go(d.settings.run_timeout_s) if held else None) or runner.run_argv(
            ep.argv,
            env=child_env,
            timeout_s=d.settings.run_timeout_s,
            out_dir=d.cfg.aegisd_dir / "runs",
            name=ep.execution_id,
        )
    except AegisError as e:
        result = runner.RunResult(
            127, False, int((time.monotonic() - t0) * 1000), "", "", 0, 0, "", e.message
        )
    finally:
        remove_planned(d.cfg, ep.plan, ep.argv)
    d.hook("after-run")
    outcome = _classify(result)
    d.ledger.record_finished(
        ep.execution_id, exit_status=result.exit_status, outcome=outcome, now=iso(d.clock())
    )
    d.running_id = None
    d.publish_status()

    eco = for_tool(ep.intent.tool)
    after = eco.installed_state(d.cfg, ep.plan, env)
    drift = eco.drift(before, after, ep.targets) if result.exit_status == 0 else []
    details = _finished_details(
        d,
        ep,
        env=env,
        states=(before, after),
        result=result,
        snapshot_id=snapshot_id,
        fetched=fetched,
    )
    details["drift"] = drift
    event, audit_error = audit_finished(d, base, result, details)
    verification = d.verifier.after_run(ep, outcome == "succeeded")
    if verification is not None:
        details["verification"] = verification
    answer = finished_answer(d, ep, result, details, event)
    if audit_error is None:
        return answer
    return replace(
        answer,
        message=f"{answer.message}; AUDIT LOG FAILURE: {audit_error}",
        result={**answer.result, "audit_error": audit_error},
    )


def _finished_details(
    d: Aegisd,
    ep: ExecutionPlan,
    *,
    env: dict[str, str],
    states: tuple[Mapping[str, object], Mapping[str, object]],
    result: runner.RunResult,
    snapshot_id: str | None,
    fetched: Any,
) -> dict[str, Any]:
    """What ``apply-finished`` records of a run besides its drift."""
    before, after = states
    outcome = _classify(result)
    eco_tool = ep.intent.tool
    changed = sorted(k for k in set(before) | set(after) if before.get(k) != after.get(k))
    details = {
        "outcome": outcome,
        "snapshot_id": snapshot_id,
        "changed_packages": changed[:200],
        "duration_ms": result.duration_ms,
        "restart": dpkg.restart_facts(d.cfg.dpkg_root, env) if eco_tool is Tool.APT else {},
        "fetched": {
            "files": fetched.files,
            "bytes": fetched.bytes,
            "duration_ms": fetched.duration_ms,
        },
        "stdout_bytes": result.stdout_bytes,
        "stderr_bytes": result.stderr_bytes,
    }
    if eco_tool is Tool.IMAGE:
        # The rollback of a pull: the repository's images the store held before it.
        details["previous_images"] = sorted(before)[:50]
    if outcome == "refused-by-apt-trivial-only":
        details["refusal"] = "apt --trivial-only refused: the resolution changed since signing"
    return details
