"""dpkg's audit, its status and the snapshot's files, read beside aegisd's re-derivation.

Before an apt run aegisd needs ``dpkg --audit`` clean, dpkg's status (to compare with
afterwards) and, when the delta replaces packages or policy asks for it, the snapshot's
files (:func:`aegis.execute.snapshots.gather_snapshot`). None of it depends on the
re-derivation, and all of it is read under the dpkg locks aegisd takes before the
re-derivation (:mod:`aegis.execute.dpkg_lock`), so it reads the same state whether it
runs before, beside or after it. :class:`Early` runs it on a thread while the plan is
derived again; :func:`aegis.execute.apply._prepare` takes the result only once every
check passed. Nothing here decides anything or acts outside the snapshot's own
directory: the snapshot hook and the manifest come after the checks
(:func:`~aegis.execute.snapshots.finish_snapshot`), and a refused plan's gathered files
are removed (:meth:`Early.discard`).

An npm plan's run is started here too, held before its command until every check passed
(:mod:`aegis.execute.npm_gate`): :meth:`Early.hold`, :meth:`Early.take_run`; one never
taken is stopped by :meth:`Early.discard`.

Example::

    early = Early()
    early.start(cfg, ep, env)          # after the dpkg locks are taken
    ...                                # re-derivation and the other checks
    prepared = early.claim(ep)         # or None: prepare_apt(cfg, ep, env) then
    ...
    early.discard()                    # always: removes what was never claimed
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING

from aegis.ecosystems.apt import dpkg
from aegis.errors import AegisError
from aegis.execute.npm_gate import HeldRun
from aegis.execute.snapshots import (
    Gathered,
    discard_snapshot,
    dpkg_selections,
    gather_snapshot,
    needs_snapshot,
)
from aegis.model import Operation

if TYPE_CHECKING:
    from aegis.config import Config
    from aegis.sign.execution_plan import ExecutionPlan


@dataclass(frozen=True)
class Prepared:
    """What an apt run needs read before it starts (each failure as its message)."""

    audit_clean: bool
    audit_report: str
    before: dpkg.PackageState | None
    status_error: str | None = None
    gathered: Gathered | None = None
    snapshot_error: str | None = None


def snapshot_id_for(ep: ExecutionPlan) -> str | None:
    """The snapshot this run takes (``snap-<execution id>``), or None when it takes none."""
    if "snapshot" in ep.policy.controls or needs_snapshot(ep.plan.changes):
        return f"snap-{ep.execution_id}"
    return None


def prepare_apt(cfg: Config, ep: ExecutionPlan, env: Mapping[str, str]) -> Prepared:
    """Audit, status and (audit clean, status read) the snapshot's files of ``ep``.

    ``dpkg --audit``, ``dpkg-query`` and ``dpkg --get-selections`` run side by side; the
    snapshot's files are gathered only when dpkg is clean, as they were when this ran
    one step after the other. A ``recover`` plan skips the audit (it exists to fix it).
    """
    snapshot_id = snapshot_id_for(ep)
    recover = ep.intent.operation == Operation.RECOVER
    with ThreadPoolExecutor(max_workers=3) as pool:
        f_audit = None if recover else pool.submit(_audit, cfg, env)
        f_status = pool.submit(dpkg.dpkg_status, cfg.dpkg_root, env)
        f_sel = pool.submit(dpkg_selections, cfg, env) if snapshot_id else None
        clean, report = f_audit.result() if f_audit is not None else (True, "")
        try:
            before = f_status.result()
        except AegisError as e:
            return Prepared(clean, report, None, status_error=e.message)
        selections = f_sel.result() if f_sel is not None else None
    if not clean or snapshot_id is None:
        return Prepared(clean, report, before)
    try:
        gathered = gather_snapshot(
            cfg, snapshot_id, ep.plan.changes, env=env, state=before, selections=selections
        )
    except AegisError as e:
        return Prepared(clean, report, before, snapshot_error=e.message)
    return Prepared(clean, report, before, gathered=gathered)


def _audit(cfg: Config, env: Mapping[str, str]) -> tuple[bool, str]:
    try:
        return dpkg.dpkg_audit(cfg.dpkg_root, env)
    except AegisError as e:
        return False, e.message


class Early:
    """:func:`prepare_apt` on a thread of its own, claimed once the checks passed."""

    def __init__(self) -> None:
        """Nothing runs until :meth:`start`."""
        self._thread: threading.Thread | None = None
        self._ep: ExecutionPlan | None = None
        self._result: Prepared | None = None
        self._error: BaseException | None = None
        self._claimed = False
        self._held: HeldRun | None = None

    def hold(self, run: HeldRun | None) -> None:
        """Keep ``run`` (an npm run held at its gate) until it is taken or discarded."""
        self._held = run

    def take_run(self, argv: tuple[str, ...], env: Mapping[str, str]) -> HeldRun | None:
        """The held run of exactly ``argv`` in exactly ``env``; None otherwise (stopped)."""
        held, self._held = self._held, None
        if held is not None and (held.argv, held.env) != (tuple(argv), dict(env)):
            held.cancel()
            return None
        return held

    def start(self, cfg: Config, ep: ExecutionPlan, env: Mapping[str, str]) -> None:
        """Begin preparing ``ep`` (an apt plan whose dpkg locks this process holds)."""

        def work() -> None:
            try:
                self._result = prepare_apt(cfg, ep, env)
            except BaseException as e:  # re-raised by claim(), where the serial path raised
                self._error = e

        self._ep = ep
        self._thread = threading.Thread(target=work, name="aegisd-prepare", daemon=True)
        self._thread.start()

    def _join(self) -> None:
        if self._thread is not None:
            self._thread.join()

    def claim(self, ep: ExecutionPlan) -> Prepared | None:
        """The preparation of ``ep`` (None when none was started for it).

        Raises:
            BaseException: whatever the preparation raised beyond its recorded failures.
        """
        if self._thread is None or self._ep is None or self._ep.execution_id != ep.execution_id:
            return None
        self._join()
        self._claimed = True
        if self._error is not None:
            raise self._error
        return self._result

    def discard(self) -> None:
        """Wait for the thread; remove the snapshot files of a preparation never claimed.

        A held npm run never taken is stopped before its command.
        """
        if self._held is not None:
            held, self._held = self._held, None
            held.cancel()
        self._join()
        if not self._claimed and self._result is not None and self._result.gathered:
            discard_snapshot(self._result.gathered)
