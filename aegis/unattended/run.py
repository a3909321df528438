"""One ``aegis unattended run`` pass: apply what the automation scope allows, nothing else.

It plans ``apt upgrade``, reviews, decides; everything outside the scope waits for a human.

The pass walks the ordinary chain, as actor ``automation``:

1. ``apt upgrade`` is analyzed with the full evidence and recorded as a request
   (intent -> analyzed); nothing to upgrade ends the pass with no request;
2. the review is asked for (advisory, as always: a review that failed raises the
   decision to require-approval, which a human must then give);
3. policy decides (reviewed -> policy, or denied);
4. the plan is checked against the automation scope (aegis/unattended/scope.py);
   outside it, the request stays in ``policy``, waiting for a human to approve and
   sign, with the reasons printed, in ``--json`` and in ``<state_dir>/unattended/
   last-run.json`` (``aegis requests --stuck`` and the per-state metrics show it);
5. inside it, the host-local automation key (``<etc>/keys/automation/automation.key``,
   root-only) signs through the graph's ``sign_automation`` edge, with every check of
   ``aegisctl sign`` (policy again, approvals, snapshot; the stored plan must reproduce
   an analysis the signer ran itself, here step 1's own, held in this process), and the
   plan goes to aegisd like any other, which re-derives it under dpkg's locks and
   re-checks the scope on its own derivation.

The signer's analysis is step 1's, not a second one: the stored plan is what anyone in
``aegis`` could have edited, and it is compared with the analysis this process ran
itself, exactly as with a re-analysis. A second analysis ~0.1 s later could only find
the state moved in between, which aegisd's re-derivation finds anyway, under the locks
that keep it from moving again before the run.

The pass is a fresh process each time, so its start-up is part of "timer to applied":
its first three apt calls start before the analyzer is imported (early.py); a successful
pass skips the interpreter's teardown (aegis/cli/aegis.py).

A reboot is never performed: ``/run/reboot-required`` and its package list are reported
(here, in ``aegis doctor`` and as ``aegis_reboot_required``).

Example:
    >>> run_once(cfg, now).status
    'applied'
"""

from __future__ import annotations

import contextlib
import json
import threading
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aegis.config import Config

if TYPE_CHECKING:
    from aegis.model import Plan
    from aegis.policy.config import PolicyConfig

ACTOR = "automation"
LAST_RUN = "last-run.json"


@dataclass
class RunReport:
    """What one pass did."""

    status: str
    """``disabled``, ``nothing-to-do``, ``denied``, ``waiting`` (for a human), ``applied``."""
    detail: str
    request_id: str | None = None
    plan_path: str | None = None
    decision: str | None = None
    reasons: list[str] = field(default_factory=list)
    packages: list[str] = field(default_factory=list)
    execution_plan: str | None = None
    superseded: list[str] = field(default_factory=list)
    """Earlier passes' requests for the same delta, still waiting, now cancelled."""
    reboot_required: bool = False
    reboot_packages: list[str] = field(default_factory=list)
    finished_at: str = ""

    def as_dict(self) -> dict[str, Any]:
        """JSON form (``--json`` and the last-run file)."""
        return asdict(self)


def reboot_state(cfg: Config) -> tuple[bool, list[str]]:
    """Whether ``/run/reboot-required`` exists, and the packages that asked for it."""
    run = (cfg.dpkg_root or Path("/")) / "run"
    flag = run / "reboot-required"
    if not flag.exists():
        return False, []
    try:
        names = (run / "reboot-required.pkgs").read_text(errors="replace").split()
    except OSError:
        names = []
    return True, sorted(set(names))[:200]


def last_run_path(cfg: Config) -> Path:
    """``<state_dir>/unattended/last-run.json`` (display only: group ``aegis`` may write it)."""
    return cfg.state_dir / "unattended" / LAST_RUN


def read_last_run(cfg: Config) -> dict[str, Any] | None:
    """The last pass's report, or None (a malformed file is treated as none)."""
    try:
        data = json.loads(last_run_path(cfg).read_bytes()[:1_000_000])
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _write_last_run(cfg: Config, report: RunReport) -> None:
    from aegis.canonical import canonical_bytes
    from aegis.workflow.files import write_atomic

    path = last_run_path(cfg)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, canonical_bytes(report.as_dict()), host_install=cfg.home is None)


def run_once(cfg: Config, now: datetime, *, socket: Path | None = None) -> RunReport:
    """One pass (see the module doc); the report is also written to the last-run file.

    Raises:
        AegisError: a step failed (planning, signing, aegisd's refusal or run).
    """
    from aegis.early import slot

    with contextlib.ExitStack() as held:
        # apt calls started ahead of the analysis (early.py) that it did not take.
        held.callback(slot.discard)
        report, delta = _run(cfg, now, socket, held)
        if report.request_id is not None and delta is not None:
            report.superseded = _supersede(cfg, report.request_id, delta)
    report.reboot_required, report.reboot_packages = reboot_state(cfg)
    report.finished_at = now.strftime("%Y-%m-%dT%H:%M:%SZ")
    _write_last_run(cfg, report)
    return report


_LATER_MODULES = (
    # The store first: the analysis ends by creating it (a first use) and recording first
    # sightings, synced commits that wait for this import, while the analysis's own warm-up
    # (aegis/ecosystems/apt/plan.py) already imports python-debian's deb822 first. Then
    # what the analysis needs, in its order (one module at a time, the next one needed).
    "aegis.workflow.access",
    "debian.deb822",
    "aegis.ecosystems.apt.inspect",
    "aegis.api",
    "aegis.review.service",
    "aegis.policy.run",
    "aegis.unattended.scope",
    "aegis.workflow.waiting",
    "nacl.signing",
    "aegis.sign.service",
    "aegis.execute.service",
)
"""What the pass imports later (the store's sqlite-utils under ``aegis.workflow.access``)."""


def _warm_later_modules() -> None:
    """Import what the pass needs after the analysis, while the analysis waits on apt.

    A timer starts a fresh process each pass; these imports (the store's sqlite-utils
    above all) otherwise run after apt is done, one after another. Not started before
    the planner's imports: both hold the interpreter lock, so beside them this only
    delays the planner (measured: the analysis then started later by about what it
    saved). A failure here resurfaces where the module is really imported. (Two threads
    importing at once cannot deadlock: the import graph has no circles,
    tests/unit/test_import_graph.py.)
    """
    import importlib

    for name in _LATER_MODULES:
        with contextlib.suppress(Exception):
            importlib.import_module(name)
        if name == "aegis.workflow.access":
            with contextlib.suppress(Exception):
                _prepare_store()


def _prepare_store() -> None:
    """What the pass's first store use would do once per process, done here.

    The lifecycle graph is read and validated on first use, cached per process and safe
    to fill from this thread. (sqlite-utils' plugins are never loaded: the store opens
    its ``Database`` without them, aegis/workflow/store.py.)
    """
    from aegis.workflow import access

    access.workflow()


def _run(
    cfg: Config, now: datetime, socket: Path | None, held: contextlib.ExitStack
) -> tuple[RunReport, str | None]:
    """The pass, and the digest of its delta (None when no request was made).

    ``held``: what stays open until the pass is over (the store, see _decide_and_apply).
    """
    from aegis.ecosystems.apt.plan import analyze_apt
    from aegis.model import Intent, Operation, Tool
    from aegis.policy.load import load_policy_config

    policy = load_policy_config(cfg.policy_path)
    if policy.automation is None or not policy.automation.enabled:
        return RunReport("disabled", "automation is not enabled in policy ([automation])"), None
    stamp = now.strftime("%Y-%m-%dT%H:%M:%SZ")
    threading.Thread(target=_warm_later_modules, name="aegis-warm-imports", daemon=True).start()
    plan = analyze_apt(cfg, Intent(Tool.APT, Operation.UPGRADE, (), ACTOR, stamp), now)
    if plan.failure is None and not plan.changes:
        return RunReport("nothing-to-do", "apt upgrade has nothing to upgrade"), None
    return _decide_and_apply(cfg, plan, policy, now, socket=socket, held=held)


def _decide_and_apply(
    cfg: Config,
    plan: Plan,
    policy: PolicyConfig,
    now: datetime,
    *,
    socket: Path | None,
    held: contextlib.ExitStack,
) -> tuple[RunReport, str | None]:
    """Steps 1 (the request) to 5 of the module doc for an analyzed upgrade."""
    from aegis import api
    from aegis.policy.run import decide
    from aegis.review.service import run_review
    from aegis.unattended.scope import out_of_scope
    from aegis.workflow.waiting import delta_digest

    # Each step opens and closes the store; SQLite copies the write-ahead log into the
    # database (a synced write) whenever the last connection closes. One connection held
    # idle for the rest of the pass leaves that to its end: once, not once per step.
    # Nothing is less durable: every commit is synced to the log (synchronous=FULL).
    held.enter_context(api.open_store(cfg))
    planned = api.submit_plan(cfg, plan, ACTOR)
    packages = [
        f"{c.name} {c.current_version or '-'} -> {c.candidate_version or '-'}" for c in plan.changes
    ]
    delta = delta_digest(
        [
            f"{c.name} {c.action.value} {c.current_version or '-'} -> {c.candidate_version or '-'}"
            for c in plan.changes
        ]
    )
    rid, ppath = planned.request_id, str(planned.plan_path)
    run_review(cfg, planned.plan_path, direct=False, no_review=False, actor=ACTOR)
    decided = decide(cfg, planned.plan_path, now=now, actor=ACTOR)
    decision = decided.result.decision.value
    if decided.state == "denied":
        fired = [f"{f.rule_id}: {f.reason}" for f in decided.result.fired]
        denied = RunReport(
            "denied", "policy denied the upgrade", rid, ppath, decision, fired, packages
        )
        return denied, delta
    reasons = out_of_scope(plan, decision, policy)
    # Say which rules asked for a human, so the operator sees why without --explain.
    reasons += [
        f"policy: {f.rule_id}: {f.reason}"
        for f in decided.result.fired
        if f.effect.value == "require-approval"
    ]
    if reasons:
        _leave_waiting(cfg, rid, reasons, delta, now)
        waiting = RunReport(
            "waiting",
            "outside the automation scope: the request waits for a human to approve and sign",
            rid,
            ppath,
            decision,
            reasons,
            packages,
        )
        return waiting, delta
    path = _sign_and_apply(cfg, plan, planned.plan_path, now, socket)
    applied = RunReport(
        "applied", "applied through aegisd", rid, ppath, decision, [], packages, str(path)
    )
    return applied, delta


def _leave_waiting(cfg: Config, rid: str, reasons: list[str], delta: str, now: datetime) -> None:
    """Append the note that shows the request as waiting for a human (workflow/waiting.py)."""
    from aegis.api import open_store, workflow
    from aegis.workflow.records import format_time
    from aegis.workflow.store import Move
    from aegis.workflow.waiting import NOTE_TRIGGER, waiting_facts

    digest = workflow().digest
    facts = waiting_facts(reasons, delta)
    with open_store(cfg) as store:
        rec = store.get(rid)
        move = Move(
            NOTE_TRIGGER, rec.state, rec.state, ACTOR, format_time(now), digest, facts=facts
        )
        store.commit(rec, [move])


def _supersede(cfg: Config, rid: str, delta: str) -> list[str]:
    """Cancel earlier passes' requests for the same delta that still wait untouched.

    One waiting request per delta, the newest (its plan is bound to today's state): a
    request a human has acted on since (an approval, anything after the note) is left.
    """
    from aegis import api
    from aegis.workflow.records import CorruptStoreError
    from aegis.workflow.waiting import waiting_delta

    olds: list[str] = []
    with api.open_store(cfg) as store:
        # Rows failing their checks are not ours to cancel; doctor and requests name them.
        for rec in store.list_requests(state="policy", corrupt=[]):
            if rec.id == rid:
                continue
            try:
                history = store.load(rec.id)[1]
            except CorruptStoreError:
                continue
            if history and history[0].actor == ACTOR and waiting_delta(history) == delta:
                olds.append(rec.id)
    for old in olds:
        api.cancel(cfg, old, ACTOR, f"superseded by {rid}: a later automation pass, same delta")
    return olds


def _sign_and_apply(
    cfg: Config, plan: Plan, plan_path: Path, now: datetime, socket: Path | None
) -> Path:
    """Sign the stored plan with the automation key, then apply it through aegisd.

    ``plan`` is this pass's own analysis (step 1), which the stored plan must reproduce.
    """
    from aegis.ed25519 import public_hex
    from aegis.execute.service import apply
    from aegis.sign.keys import load_signing_key
    from aegis.sign.service import sign_request
    from aegis.unattended.scope import SIGNER_ID
    from aegis.unattended.trust import automation_key_path

    key_path = automation_key_path(cfg)
    signed = sign_request(
        cfg,
        plan_path,
        None,
        key_path=key_path,
        signer_id=SIGNER_ID,
        expires_in=timedelta(hours=1),
        now=now,
        passphrase=None,
        trigger="sign_automation",
        analyzed=plan,
    )
    pub = public_hex(load_signing_key(key_path))
    apply(cfg, signed.path, pub, socket=socket, now=now)
    return signed.path
