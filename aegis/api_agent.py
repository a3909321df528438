"""What an agent may run, each returning the document the CLI prints with ``--json``.

``aegis apt ... --plan``, ``aegis review``, ``aegis policy``, ``aegis show``,
``aegis requests``, ``aegis policy rules``, ``aegis doctor``, ``aegis audit verify`` and
``aegis policy sources`` build their ``--json`` here, and the MCP server
(:mod:`aegis.mcp.server`) returns the same documents as structured tool results: one code
path, so the two can never disagree. Nothing here signs, approves, applies or edits
policy; the functions run with the caller's own rights.

A function returns an :class:`Outcome`: the document, and the error the CLI exits with
after printing it (a failed analysis, a deny, a failed doctor check), or None. Errors
that leave no document (a bad argument, an unknown request) are raised.

Example:
    >>> out = plan_change(cfg, "apt", "install", ("nginx",))
    >>> out.doc["request_id"], out.error
    ('r-0123456789abcdef', None)
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aegis.agent_text import agent_view, marked
from aegis.api_audit import audit_verify
from aegis.api_outcome import Outcome
from aegis.errors import AegisError, EnvironmentFailure, InputError

if TYPE_CHECKING:
    from aegis.config import Config
    from aegis.ecosystems.interface import Ecosystem, Planning
    from aegis.health.spec import Probe
    from aegis.model import Plan
    from aegis.workflow.machine import Workflow
    from aegis.workflow.records import RequestRecord
    from aegis.workflow.waiting import RequestNote

__all__ = ["audit_verify"]  # re-exported: the CLI and the MCP server call it from here


def plannable() -> dict[str, Planning]:
    """Ecosystem name -> what its planning takes, for every registered ecosystem.

    Read from :func:`aegis.ecosystems.for_tool`, so a new ecosystem is reachable here (and
    through the MCP plan tool) by its registration alone.
    """
    from aegis.ecosystems import for_tool
    from aegis.model import Tool

    return {tool.value: for_tool(tool).planning for tool in Tool}


class AnalysisFailedError(InputError):
    """No delta: unknown package, broken dependencies, bad target (exit 3).

    The plan is recorded as evidence; policy would deny it (``analysis.failed``).
    """


class AnalysisToolError(EnvironmentFailure):
    """The analysis produced no delta because apt failed, timed out or was locked (exit 7)."""


_ENVIRONMENT_KINDS = frozenset({"lock", "tool-failed", "timeout"})


def analysis_failed_error(plan: Plan, request_id: str) -> AegisError:
    """The error a failed analysis exits with: 7 for apt's own trouble, else 3."""
    assert plan.failure is not None
    kind = plan.failure.kind
    # apt's text is untrusted: the CLI's error printer makes every message inert.
    message = (
        f"analysis failed ({kind}): {plan.failure.message[:2000]}; the plan is recorded as "
        f"request {request_id} and policy will deny it"
    )
    if kind in _ENVIRONMENT_KINDS:
        tool = plan.intent.tool.value
        return AnalysisToolError(message, hint=f"retry when {tool} is usable ('aegis doctor')")
    if kind == "bad-target":
        hint = "Aegis plans packages from approved signed repositories only, never files or URLs"
    elif kind == "unknown-package" and plan.intent.tool.value == "apt":
        hint = "check the package names ('apt-cache policy NAME') and plan again"
    elif kind == "unknown-package":
        hint = "check the package names and the registry, and plan again"
    else:
        hint = "see the plan's signals; 'aegis policy' on the plan gives the deny reason"
    return AnalysisFailedError(message, hint=hint)


def check_plannable(
    ecosystem: str,
    verb: str,
    targets: tuple[str, ...],
    *,
    where: str | None = None,
    registry: str | None = None,
    contents: bool = True,
) -> Ecosystem:
    """The ecosystem that plans this change; refuses what it cannot (exit 3), before any work.

    Nothing is recorded for a refused change: no request row exists yet.

    Raises:
        InputError: unknown ecosystem or verb, targets missing or not taken, a bad target,
            an option the ecosystem's CLI does not take.
    """
    from aegis.ecosystems import for_tool
    from aegis.model import Tool
    from aegis.text import inert

    try:
        tool = Tool(ecosystem)
    except ValueError:
        raise InputError(
            f"unknown ecosystem {inert(ecosystem, max_chars=40)!r}: Aegis plans "
            f"{', '.join(sorted(t.value for t in Tool))} changes"
        ) from None
    eco = for_tool(tool)
    spec = eco.planning
    takes = spec.verbs.get(verb)
    if takes is None:
        raise InputError(
            f"Aegis does not plan {ecosystem} {inert(verb, max_chars=40)!r}: it plans "
            f"{ecosystem} {', '.join(sorted(spec.verbs))}"
        )
    if takes and not targets:
        raise InputError(f"{ecosystem} {verb} needs at least one package")
    if not takes and targets:
        raise InputError(f"{ecosystem} {verb} takes no packages")
    if where is not None and spec.where is None:
        raise InputError(f"{ecosystem} changes land on this host: no place (where) is taken")
    if registry is not None and spec.registry is None:
        raise InputError(f"{ecosystem} plans from its configured sources: no registry is taken")
    if not contents and not spec.contents:
        raise InputError(f"{ecosystem} always inspects what it plans: contents=false is refused")
    # Names are checked before anything runs: a bad name creates no request row.
    eco.check_targets(targets)
    return eco


RECORDING_MODULES = ("sqlite_utils",)
"""What recording a plan imports once the planner is done (most of the store's start-up).

Only modules outside Aegis, which never import Aegis: two threads importing modules that
import each other can deadlock, and no such circle can pass through these.
"""


class _Preload:
    """Import modules in a background thread while the planner waits for its tool.

    pip, npm and apt resolve in subprocesses, and the main thread waits for them without
    holding the GIL: loading the store and renderer modules meanwhile takes that time off
    the plan (``scripts/bench --only pip``). Nothing else happens in the thread; an import
    that fails there is retried (and reported) by the main thread where it is needed.
    """

    def __init__(self, names: tuple[str, ...]) -> None:
        import threading

        self._thread = threading.Thread(target=self._run, args=(names,), daemon=True)
        self._started = False

    def start(self) -> None:
        """Start importing (queued on :mod:`aegis.ecosystems.idle`: once the tool runs)."""
        self._thread.start()
        self._started = True

    @staticmethod
    def _run(names: tuple[str, ...]) -> None:
        import importlib

        # Imports only: sqlite-utils' plugins are never loaded (aegis/workflow/store.py).
        for name in names:
            try:
                importlib.import_module(name)
            except Exception:
                return

    def join(self) -> None:
        """Wait for the imports; no wait when the planner never ran a tool."""
        if self._started:
            self._thread.join()


def _open_store(cfg: Config) -> None:
    """Open the store once while the planner's tool runs (an idle job).

    Its first open creates and migrates it: recording the plan afterwards finds it ready.
    """
    from aegis import api

    with api.open_store(cfg):
        pass


def _prepare_recording() -> None:
    """What :func:`aegis.api.submit_plan` loads first, done while the planner's tool runs."""
    from aegis import api, codec
    from aegis.model import Plan
    from aegis.workflow import guards, machine, records, store  # noqa: F401 - loaded now

    api.workflow()  # the lifecycle graph, read and validated once per process
    codec.prepare(Plan)


def plan_change(
    cfg: Config,
    ecosystem: str,
    verb: str,
    targets: tuple[str, ...],
    *,
    contents: bool = True,
    probes: tuple[Probe, ...] = (),
    where: str | None = None,
    registry: str | None = None,
    preload: tuple[str, ...] = (),
) -> Outcome:
    """Analyze a change read-only and record its request (``aegis <ecosystem> <verb> --plan``).

    ``where`` and ``registry`` are the ecosystem's place and registry options (pip's
    ``--venv`` and ``--index-url``, npm's ``--project`` and ``--registry``); apt takes
    neither. Dispatch goes through the ecosystem seam only, so every registered ecosystem
    is planned here the same way. ``preload`` names modules the caller needs afterwards
    (the CLI's renderer), imported while the planner waits for its tool.

    Returns:
        ``{"plan", "plan_path", "plan_hash", "request_id"}``; the error is set when the
        analysis produced no delta (the plan is still recorded).
    """
    # The store (aegis.api) is imported once the planner's tool runs (_prepare_recording):
    # before it, only what starting the tool needs.
    from aegis.analyze.stamps import format_time
    from aegis.ecosystems import idle
    from aegis.model import Intent, Operation, plan_to_dict
    from aegis.users import current_user

    eco = check_plannable(
        ecosystem, verb, targets, where=where, registry=registry, contents=contents
    )
    location, registry_url = eco.place(cfg, targets, where, registry)
    now = datetime.now(UTC)
    intent = Intent(
        tool=eco.tool,
        operation=Operation(verb),
        targets=targets,
        requested_by=current_user(),
        requested_at=format_time(now),
        probes=probes,
        location=location,
        registry=registry_url,
    )
    preloading = _Preload(RECORDING_MODULES + preload)
    if eco.planning.runs_idle:
        idle.queue(preloading.start)  # once the tool runs: before, it slows the tool's start
    else:
        preloading.start()
    idle.queue(_prepare_recording)
    idle.queue(lambda: _open_store(cfg))
    try:
        plan = eco.plan(cfg, intent, now, inspect_contents=contents)
    finally:
        idle.clear()
        preloading.join()
    from aegis import api

    planned = api.submit_plan(cfg, plan, current_user())
    doc = marked(
        "plan",
        {
            "plan": plan_to_dict(plan),
            "plan_path": str(planned.plan_path),
            "plan_hash": planned.plan_hash,
            "request_id": planned.request_id,
        },
    )
    error = analysis_failed_error(plan, planned.request_id) if plan.failure else None
    return Outcome(doc, error, {"plan": plan, "planned": planned})


def review_plan(
    cfg: Config, plan: Path, *, direct: bool = False, no_review: bool = False
) -> Outcome:
    """The advisory model review of a plan, recorded (``aegis review PLAN``)."""
    from aegis import api
    from aegis.review.record import review_to_dict
    from aegis.review.service import run_review

    if direct and no_review:
        raise InputError("--direct and --no-review exclude each other")
    done = run_review(cfg, plan, direct=direct, no_review=no_review, actor=api.current_user())
    doc = marked(
        "review",
        {
            "request_id": done.request_id,
            "state": done.state,
            "path": str(done.path),
            "recorded": done.recorded,
            "reviewer_unavailable": done.unavailable,
            "advisory": True,
            "review": review_to_dict(done.review),
        },
    )
    return Outcome(doc, None, {"done": done})


def decision_error(result: Any, request_id: str | None) -> AegisError | None:
    """The error ``aegis policy`` exits with for a decision: 5 deny, 8 approval, else None."""
    from aegis.errors import ApprovalRequired, PolicyDenied
    from aegis.policy.explain import controls_text
    from aegis.policy.result import Effect

    who = f"request {request_id}" if request_id else f"plan {result.plan_id}"
    if result.decision is Effect.DENY:
        rules = ", ".join(
            f.rule_id
            for f in result.fired
            if f.effect is Effect.DENY
            and (not f.rule_id.startswith("review.") or f.rule_id == "review.deny")
        )
        return PolicyDenied(f"policy denied {who} ({rules})")
    if result.decision is Effect.REQUIRE_APPROVAL:
        return ApprovalRequired(
            f"policy requires approval for {who}: {controls_text(result.controls)}",
            hint="collect signed approvals with 'aegisctl approve', then 'aegisctl sign'",
        )
    return None


def decide_plan(
    cfg: Config,
    plan: Path,
    *,
    now: datetime | None = None,
    dry_run: bool = False,
    explain: bool = False,
) -> Outcome:
    """The deterministic decision for a reviewed plan, recorded (``aegis policy PLAN``).

    ``explain`` adds ``explain.not_fired``: the rules that did not fire, and why.
    """
    from aegis import api
    from aegis.policy.result import result_to_dict
    from aegis.policy.run import decide, evaluate_plan_file

    when = now or datetime.now(UTC)
    path: Path | None = None
    recorded = False
    if dry_run:
        result, request_id, state = evaluate_plan_file(cfg, plan, now=when)
    else:
        outcome = decide(cfg, plan, now=when, actor=api.current_user())
        result, request_id, state, path = (
            outcome.result,
            outcome.request_id,
            outcome.state,
            outcome.path,
        )
        recorded = outcome.recorded
    doc: dict[str, Any] = {
        "request_id": request_id,
        "state": state,
        "path": str(path) if path is not None else None,
        "recorded": recorded,
        "result": result_to_dict(result),
    }
    if explain:
        from aegis.policy.explain import not_fired_rows

        doc["explain"] = {
            "not_fired": [{"rule": r[0], "why": r[1]} for r in not_fired_rows(result)]
        }
    doc = marked("policy", doc)
    return Outcome(doc, decision_error(result, request_id), {"result": result, "path": path})


def request_json(
    rec: RequestRecord, wf: Workflow, now: datetime, note: RequestNote | None = None
) -> dict[str, Any]:
    """One request as ``aegis requests --json`` and ``aegis show --json`` list it.

    With ``note``: ``actor`` (who made it) and ``waiting_for_human`` (why the automation
    left it waiting, or null).
    """
    from aegis.codec import to_dict
    from aegis.workflow.monitor import age_seconds, stuck_reason

    waiting = note.waiting if note is not None else None
    out: dict[str, Any] = to_dict(rec)
    out["age_in_state_s"] = age_seconds(rec, now)
    out["terminal"] = wf.is_terminal(rec.state)
    out["stuck_reason"] = stuck_reason(rec, wf, now, waiting=waiting)
    if note is not None:
        out["actor"] = note.actor
        out["waiting_for_human"] = waiting
    return out


def show_request(cfg: Config, request_id: str) -> Outcome:
    """A request with its verified timeline and artifacts (``aegis show ID``).

    A plan id or plan hash finds the request bound to that plan.
    """
    from aegis import api
    from aegis.codec import to_dict
    from aegis.workflow.store import RequestNotFoundError
    from aegis.workflow.waiting import note_for

    now = api.now_utc()
    wf = api.workflow()
    try:
        detail = api.get_request_detail(cfg, request_id, now)
    except RequestNotFoundError:
        by_plan = api.find_request_by_plan(cfg, request_id)
        if by_plan is None:
            raise
        detail = api.get_request_detail(cfg, by_plan.id, now)
    doc = marked(
        "show",
        {
            "request": request_json(detail.request, wf, now, note_for(detail.history)),
            "history": [to_dict(h) for h in detail.history],
            "artifacts": [to_dict(a) for a in detail.artifacts],
            "next_triggers": list(detail.next_triggers),
        },
    )
    return Outcome(doc, None, {"detail": detail, "now": now, "wf": wf})


def list_requests(
    cfg: Config, *, state: str | None = None, stuck: bool = False, limit: int | None = None
) -> Outcome:
    """Change requests, oldest state change first (``aegis requests``).

    Rows failing their checks are named in ``corrupt`` and the error is set (exit 4).
    """
    from aegis import api
    from aegis.workflow.records import CorruptStoreError

    now = api.now_utc()
    wf = api.workflow()
    corrupt: list[CorruptStoreError] = []
    notes: dict[str, RequestNote] = {}
    found = api.list_requests(
        cfg, state=state, stuck=stuck, now=now, limit=limit, corrupt=corrupt, notes=notes
    )
    doc: dict[str, Any] = {"requests": [request_json(r, wf, now, notes.get(r.id)) for r in found]}
    error = None
    if corrupt:
        doc["corrupt"] = [e.message for e in corrupt]
        # The good rows are listed first: one tampered row must not hide the rest from on-call.
        error = CorruptStoreError(
            f"{len(corrupt)} request row(s) fail their checks and are not listed; "
            f"first: {corrupt[0].message}",
            hint="nothing was changed; restore the store from backup",
        )
    doc = marked("requests", doc)
    return Outcome(doc, error, {"found": found, "now": now, "wf": wf, "notes": notes})


def explain_rule(rule_id: str | None = None) -> list[dict[str, Any]]:
    """The built-in rules (``aegis policy rules``), or the one named ``rule_id``.

    Raises:
        InputError: no rule has that id.
    """
    from aegis.policy.explain import rules_catalog
    from aegis.text import inert

    catalog = rules_catalog()
    if rule_id is None:
        return catalog
    found = [r for r in catalog if r["rule_id"] == rule_id]
    if not found:
        raise InputError(
            f"no rule {inert(rule_id, max_chars=80)!r}", hint="list them with 'aegis policy rules'"
        )
    return found


def doctor(cfg: Config) -> Outcome:
    """The read-only readiness checks (``aegis doctor``); the error is set when one fails."""
    from dataclasses import asdict

    from aegis.doctor import run_checks

    checks = run_checks(cfg)
    failed = [c for c in checks if c.status == "fail"]
    error = None
    if failed:
        from aegis.config import join_group_hint

        names = ", ".join(c.name for c in failed)
        outsider = any(c.name == "group" for c in failed)
        error = EnvironmentFailure(
            f"{len(failed)} check(s) failed: {names}",
            hint=join_group_hint() if outsider else None,
        )
    doc = agent_view({"ok": not failed, "checks": [asdict(c) for c in checks]})
    return Outcome(doc, error, {"checks": checks})


def sources(cfg: Config) -> Outcome:
    """The host's apt sources, their signers and approval (``aegis policy sources``).

    ``extra["warning"]`` is what the CLI warns about (no source approved, unusable policy).
    """
    from aegis.policy.host_sources import configured_sources

    listing = configured_sources(cfg, datetime.now(UTC))
    warning = None
    if listing.policy_error is not None:
        warning = f"policy file unusable (every decision denies): {listing.policy_error}"
    elif not listing.policy or not listing.policy.sources:
        warning = NO_SOURCE_WARNING
    doc = agent_view(
        {
            "policy_path": str(cfg.policy_path),
            "policy_error": listing.policy_error,
            "sources": [source_row(s) for s in listing.sources],
        }
    )
    return Outcome(doc, None, {"warning": warning, "listing": listing})


NO_SOURCE_WARNING = (
    "the policy approves no source: every install is denied (repo.unapproved); "
    "see 'aegis policy sources' and 'sudo aegis policy sources --approve-configured'"
)


def source_row(source: Any) -> dict[str, Any]:
    """One configured source as ``aegis policy sources --json`` lists it."""
    repo = source.repository
    return {
        "file": source.entry.file,
        "uri": repo.uri,
        "suite": repo.suite,
        "component": repo.component,
        "signed_by_form": repo.signed_by_form,
        "signature": repo.signature,
        "signer_fingerprint": repo.signer_fingerprint,
        "date": repo.date,
        "valid_until": repo.valid_until,
        "problems": list(repo.problems),
        "approved": source.approved_as is not None,
        "approved_as": source.approved_as,
        "approvable": source.refusal is None,
        "refusal": source.refusal,
        "distribution": source.distribution,
    }
