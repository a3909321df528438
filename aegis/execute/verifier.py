"""aegisd's dead-man verification: probes after the run, then keep or restore.

After a successful run of a plan that carries a verification (aegis/health), aegisd
records the wall-clock deadline durably (:mod:`aegis.execute.verifications`), runs the
probes once before it answers, and if they have not all passed (or policy asks for
``aegisctl confirm`` and none came yet) keeps checking once a second in a thread of
its own. Probes that all pass (and a confirmation, when asked) keep the change:
``verify-passed``. A deadline reached first (or, with ``settle``, probes still failing
that long after the run) restores the snapshot: the inverse of the
signed delta (:mod:`aegis.execute.inverse`), under aegisd's and dpkg's locks, audited
as ``rollback-started`` and ``rollback-finished``.

After a restart aegisd resumes every open row: ``pending`` with a finished, successful
run becomes ``verifying`` with its deadline counted from the recorded finish;
``verifying`` goes on against its recorded deadline; ``rolling-back`` (a restore cut
short) is ``rollback-failed``: the operator looks at dpkg, nothing runs twice. The
apply itself is never run again.

While a verification is open aegisd refuses other applies (``refused:verifying``,
nothing ran, the execution id stays unused): a restore must undo exactly its own delta.
"""

from __future__ import annotations

import contextlib
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from aegis.ecosystems.apt import dpkg
from aegis.errors import AegisError, StateError
from aegis.execute import ledger as ledger_mod
from aegis.execute import runner
from aegis.execute import verifications as v
from aegis.execute.apply_audit import run_env
from aegis.execute.dpkg_lock import DpkgLocked, DpkgLocks, admin_dir
from aegis.execute.inverse import inverse_argv, left_over
from aegis.execute.protocol import REFUSED_STATE, Answer, iso
from aegis.health.run import run_probes
from aegis.sign.execution_plan import parse_execution_plan

if TYPE_CHECKING:
    from aegis.execute.daemon import Aegisd
    from aegis.execute.peer import PeerCredentials
    from aegis.execute.protocol import Answer
    from aegis.sign.execution_plan import ExecutionPlan

POLL_S = 1.0
LOCK_WAIT_S = 120


def _parse_time(text: str) -> datetime:
    """Read back an RFC 3339 time aegisd wrote (microseconds, ``Z``) in its ledger."""
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)


def _same(results: list[dict[str, Any]], kept: tuple[dict[str, object], ...]) -> bool:
    """True when ``results`` say what ``kept`` says (durations aside)."""

    def said(rs: Any) -> list[tuple[object, object, object]]:
        return [(r["probe"], r["ok"], r["detail"]) for r in rs]

    return said(results) == said(kept)


class Verifier:
    """The verification rows and the threads that watch them."""

    def __init__(self, d: Aegisd) -> None:
        """Open the table in aegisd's ledger file."""
        self.d = d
        self.rows = v.Verifications(d.cfg.ledger_path)
        self._lock = threading.Lock()  # one settling step at a time (thread or confirm)
        self._threads: list[threading.Thread] = []

    # -- around the run -------------------------------------------------------------

    def open_problem(self) -> str | None:
        """Why an apply must wait now (a verification is open), or None."""
        rows = self.rows.open_rows()
        if not rows:
            return None
        r = rows[0]
        return (
            f"request {r.request_id or r.execution_id} is {r.state} until {r.deadline or '-'}; "
            "a new change waits until it is kept or restored"
        )

    def before_run(self, ep: ExecutionPlan, raw: bytes) -> None:
        """Record ``pending`` with the plan's bytes, after ``started`` and before the run.

        A crash between the two leaves a run that never started its command, which the
        ledger already calls interrupted: there is nothing to verify.
        """
        if ep.verification is None:
            return

        self.rows.insert(
            ep.execution_id, ep.request_id, raw, ep.verification.confirm, iso(self.d.clock())
        )

    def after_run(self, ep: ExecutionPlan, succeeded: bool) -> dict[str, Any] | None:
        """Start verifying a successful run; the answer's ``verification`` part."""
        if ep.verification is None:
            return None

        if not succeeded:
            row = self.rows.move(ep.execution_id, (v.PENDING,), v.ABANDONED, iso(self.d.clock()))
            return row.public()
        return self._start(ep, (v.PENDING,), {})

    def _start(
        self, ep: ExecutionPlan, frm: tuple[str, ...], details: dict[str, Any]
    ) -> dict[str, Any]:
        """Verify from now on: the row moves from ``frm``, the deadline counts from now.

        Audits ``verify-started``, runs the first round of probes and watches the rest.
        """
        assert ep.verification is not None
        now = self.d.clock()
        deadline = iso(now + timedelta(seconds=ep.verification.within_s))
        with self._lock:
            self.rows.move(ep.execution_id, frm, v.VERIFYING, iso(now), deadline=deadline)
        self._audit(
            "verify-started",
            ep,
            "verifying",
            {
                "probes": [p.text() for p in ep.verification.probes],
                "deadline": deadline,
                "confirm": ep.verification.confirm,
                **details,
            },
        )
        row = self._round(ep)
        if row.state == v.VERIFYING:
            self.watch(ep.execution_id)
        self.d.publish_status()
        return self.public(row)

    def resolution_problem(self, execution_id: str) -> str | None:
        """Why an operator's resolution of ``execution_id`` as applied must wait, or None.

        Its probes run from the resolution on, and two open verifications could each
        restore over the other's delta.
        """
        row = self.rows.get(execution_id)
        if row is None or row.state not in (v.PENDING, v.ABANDONED):
            return None
        others = [r for r in self.rows.open_rows() if r.execution_id != execution_id]
        if not others:
            return None
        r = others[0]
        return (
            f"request {r.request_id or r.execution_id} is {r.state} until {r.deadline or '-'}; "
            "resolve this one when it is kept or restored"
        )

    def after_resolution(self, execution_id: str) -> dict[str, Any] | None:
        """Verify a run an operator resolved as applied, as if it had just finished.

        The run was interrupted, so aegisd never verified it (the row is ``pending``, or
        ``abandoned`` after a restart). The operator has checked dpkg against the signed
        delta, so the probes now decide as after any run: kept when they pass, the
        delta restored when they fail or the deadline (counted from now) passes.
        """
        row = self.rows.get(execution_id)
        if row is None or row.state not in (v.PENDING, v.ABANDONED):
            return self.public(row) if row is not None else None
        ep = parse_execution_plan(row.plan)
        return self._start(ep, (v.PENDING, v.ABANDONED), {"after": "resolution"})

    def public(self, row: v.VerificationRow) -> dict[str, Any]:
        """A row as status answers carry it, with its last probe results (kept in the row)."""
        return row.public()

    def results(self, execution_id: str) -> list[dict[str, Any]]:
        """The last probe results recorded for ``execution_id`` (also after a restart)."""
        row = self.rows.get(execution_id)
        return [dict(p) for p in row.probes] if row is not None else []

    # -- probing and settling -------------------------------------------------------------

    def _round(self, ep: ExecutionPlan) -> v.VerificationRow:
        """Run the probes (until they passed once), keep the change when nothing is missing."""
        assert ep.verification is not None
        row = self.rows.get(ep.execution_id)
        assert row is not None
        if row.state != v.VERIFYING:
            return row
        if not row.probes_passed:
            results = [r.as_dict() for r in run_probes(ep.verification.probes)]
            passed = all(r["ok"] for r in results)
            if not passed and _same(results, row.probes):
                return self._settle(ep, row)  # nothing new to keep: no write each second
            # Kept with the row, durably, so status, doctor and a restore after a restart
            # of aegisd still say what the probes last answered.
            with self._lock:
                try:
                    row = self.rows.move(
                        ep.execution_id,
                        (v.VERIFYING,),
                        v.VERIFYING,
                        iso(self.d.clock()),
                        probes=results,
                        **({"probes_passed": 1} if passed else {}),
                    )
                except StateError:
                    current = self.rows.get(ep.execution_id)
                    assert current is not None
                    return current  # settled meanwhile (restored by the deadline)
            self.d.publish_status()  # what group aegis reads (show, doctor) says it too
        return self._settle(ep, row)

    def _settle(self, ep: ExecutionPlan, row: v.VerificationRow) -> v.VerificationRow:

        if not row.probes_passed or (row.confirm and row.confirmed_by is None):
            return row
        with self._lock:
            try:
                row = self.rows.move(ep.execution_id, (v.VERIFYING,), v.PASSED, iso(self.d.clock()))
            except AegisError:
                current = self.rows.get(ep.execution_id)
                assert current is not None
                return current
        self._audit(
            "verify-passed",
            ep,
            "kept",
            {"probes": [dict(p) for p in row.probes], "confirmed_by": row.confirmed_by},
        )
        self.d.publish_status()
        return row

    def watch(self, execution_id: str) -> None:
        """Check a verifying row once a second until it is kept or its deadline passes."""
        t = threading.Thread(target=self._loop, args=(execution_id,), daemon=True)
        self._threads.append(t)
        t.start()

    def _loop(self, execution_id: str) -> None:
        while not self.d.stopping():
            try:
                if not self._step(execution_id):
                    return
            except Exception as e:  # said, then tried again: the deadline still binds
                sys.stderr.write(f"aegisd: verification of {execution_id}: {e}\n")
                sys.stderr.flush()
                time.sleep(POLL_S)

    def _step(self, execution_id: str) -> bool:
        """One look at a verifying row; False once it is settled."""
        row = self.rows.get(execution_id)
        if row is None or row.state != v.VERIFYING or row.deadline is None:
            return False
        ep = parse_execution_plan(row.plan)
        assert ep.verification is not None
        left = (_parse_time(row.deadline) - self.d.clock()).total_seconds()
        settle = ep.verification.settle_s
        if settle is not None and not row.probes_passed:
            # Probes still failing ``settle`` seconds after the run: restore now.
            left = min(left, left - ep.verification.within_s + settle)
        if left <= 0:
            self.roll_back(ep, row)
            return False
        row = self._round(ep)
        if row.state != v.VERIFYING:
            return False
        time.sleep(min(POLL_S, max(left, 0.05)))
        return True

    def join(self) -> None:
        """Wait for watchers (they return at once on stop, a restore in progress finishes)."""
        for t in list(self._threads):
            t.join()

    # -- the restore -------------------------------------------------------------------

    def roll_back(self, ep: ExecutionPlan, row: v.VerificationRow) -> None:
        """Restore the snapshot: the inverse of the signed delta, audited, no approval."""
        cause = "unconfirmed" if row.probes_passed else "probe-failed"
        failed = [r for r in row.probes if not r["ok"]]
        if cause == "probe-failed":
            detail = "; ".join(f"{r['probe']}: {r['detail']}" for r in failed)[:500]
        else:
            detail = "no aegisctl confirm before the deadline"
        d = self.d
        with d.execution_lock():
            locks = DpkgLocks(admin_dir(d.cfg.dpkg_root))
            try:
                give_up = time.monotonic() + LOCK_WAIT_S
                while True:
                    try:
                        locks.take()
                        break
                    except DpkgLocked:
                        if time.monotonic() > give_up:
                            raise
                        time.sleep(1)
                with self._lock:
                    try:
                        row = self.rows.move(
                            ep.execution_id,
                            (v.VERIFYING,),
                            v.ROLLING_BACK,
                            iso(d.clock()),
                            cause=cause,
                            detail=detail,
                        )
                    except StateError:
                        return  # kept meanwhile (a confirmation won the race): nothing to undo
                self._restore(ep, cause, detail, locks)
            except AegisError as e:
                with contextlib.suppress(AegisError):
                    self.rows.move(
                        ep.execution_id,
                        (v.VERIFYING, v.ROLLING_BACK),
                        v.ROLLBACK_FAILED,
                        iso(d.clock()),
                        cause=cause,
                        detail=e.message[:500],
                    )
                self._audit("rollback-finished", ep, "rollback-failed", {"error": e.message})
            finally:
                locks.__exit__(None, None, None)
        d.publish_status()

    def _restore(self, ep: ExecutionPlan, cause: str, detail: str, locks: Any) -> None:

        d = self.d
        env = d.child_env()
        argv = inverse_argv(d.cfg, ep)
        self._audit(
            "rollback-started",
            ep,
            "rolling-back",
            {
                "cause": cause,
                "reason": detail,
                "probes": self.results(ep.execution_id),
                "argv": list(argv),
                "snapshot_id": f"snap-{ep.execution_id}",
            },
        )
        locks.release_database()
        result = runner.run_argv(
            argv,
            env=run_env(d, argv, env, dpkg_locked=locks.held),
            timeout_s=d.settings.run_timeout_s,
            out_dir=d.cfg.aegisd_dir / "runs",
            name=f"{ep.execution_id}.rollback",
        )
        left = left_over(ep, dpkg.dpkg_status(d.cfg.dpkg_root, env))
        ok = result.exit_status == 0 and not left
        state = v.ROLLED_BACK if ok else v.ROLLBACK_FAILED
        self.rows.move(
            ep.execution_id,
            (v.ROLLING_BACK,),
            state,
            iso(d.clock()),
            detail=(detail if ok else f"exit {result.exit_status}; {'; '.join(left)}")[:500],
        )
        self._audit(
            "rollback-finished",
            ep,
            state,
            {
                "exit_status": result.exit_status,
                "left_over": left,
                "duration_ms": result.duration_ms,
                "stdout_sha256": result.stdout_sha256,
                "stderr_tail": result.stderr_tail[-500:],
            },
        )

    # -- operator confirmation and restart -------------------------------------------------

    def confirm(self, execution_id: str, creds: PeerCredentials) -> Answer:
        """Record ``aegisctl confirm``; keep the change when its probes passed too."""
        row = self.rows.get(execution_id)
        problem = None
        if row is None:
            problem = f"execution {execution_id} has no verification"
        elif row.state != v.VERIFYING:
            problem = f"execution {execution_id} is {row.state}, not verifying"
        elif not row.confirm:
            problem = f"policy asks no confirmation of {execution_id}; its probes decide"
        elif row.deadline is not None and _parse_time(row.deadline) <= self.d.clock():
            problem = f"the deadline of {execution_id} passed ({row.deadline}); aegisd restores it"
        if problem is not None or row is None:
            return self.d.refuse(creds, REFUSED_STATE, problem or "", execution_id)
        ep = parse_execution_plan(row.plan)
        with self._lock:
            try:
                row = self.rows.move(
                    execution_id,
                    (v.VERIFYING,),
                    v.VERIFYING,
                    iso(self.d.clock()),
                    confirmed_by=creds.uid,
                    confirmed_at=iso(self.d.clock()),
                )
            except AegisError as e:
                return self.d.refuse(creds, REFUSED_STATE, e.message, execution_id)
        self._audit("verify-confirmed", ep, "confirmed", {}, actor=creds)
        row = self._settle(ep, row)
        self.d.publish_status()
        return Answer(
            ok=True,
            message=f"execution {execution_id} confirmed; verification {row.state}",
            execution_id=execution_id,
            state=row.state,
            result={"verification": self.public(row)},
        )

    def resume(self) -> None:
        """After a start: settle rows a crash left open, watch the verifying ones."""
        for found in self.rows.open_rows():
            row = found
            now = iso(self.d.clock())
            try:
                ep = parse_execution_plan(row.plan)
                assert ep.verification is not None
                if row.state == v.PENDING:
                    entry = self.d.ledger.lookup(row.execution_id)
                    if (
                        entry is None
                        or entry.state != ledger_mod.FINISHED
                        or entry.outcome != "succeeded"
                        or entry.finished_at is None
                    ):
                        # A failed or interrupted run (the operator resolves the latter
                        # against dpkg): nothing to verify, and no reason to hold applies.
                        self.rows.move(
                            row.execution_id,
                            (v.PENDING,),
                            v.ABANDONED,
                            now,
                            detail="the run did not finish successfully",
                        )
                        continue
                    finished = _parse_time(entry.finished_at)
                    deadline = iso(finished + timedelta(seconds=ep.verification.within_s))
                    row = self.rows.move(
                        row.execution_id, (v.PENDING,), v.VERIFYING, now, deadline=deadline
                    )
                if row.state == v.ROLLING_BACK:
                    self.rows.move(
                        row.execution_id,
                        (v.ROLLING_BACK,),
                        v.ROLLBACK_FAILED,
                        now,
                        detail="aegisd stopped during the restore; check dpkg, then plan a "
                        "rollback or recovery",
                    )
                    self._audit("rollback-finished", ep, v.ROLLBACK_FAILED, {"error": "restart"})
                    continue
                self._audit("verify-resumed", ep, "verifying", {"deadline": row.deadline})
                self.watch(row.execution_id)
                self.d.publish_status()
            except AegisError as e:
                sys.stderr.write(f"aegisd: cannot resume verification {row.execution_id}: {e}\n")

    def _audit(
        self,
        kind: str,
        ep: ExecutionPlan,
        outcome: str,
        details: dict[str, Any],
        *,
        actor: PeerCredentials | None = None,
    ) -> None:
        fields = {
            "actor": {"uid": actor.uid, "pid": actor.pid} if actor else {"uid": None},
            "request_id": ep.request_id,
            "execution_id": ep.execution_id,
            "decision": {"outcome": outcome, "rule_ids": [], "reasons": []},
            "details": details,
        }
        with contextlib.suppress(AegisError):
            self.d.audit.append(kind, fields)
            if kind in ("verify-passed", "rollback-finished"):
                self.d.audit.checkpoint()
