"""Workflow commands: ``requests``, ``show``, ``resume``, ``cancel``, ``workflow graph|check``.

Each parses options, calls one :mod:`aegis.api` function and renders; request
fields read from the store are untrusted and shown only through aegis/text.py.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

if TYPE_CHECKING:
    from datetime import datetime

    from aegis.config import Config
    from aegis.workflow.machine import Workflow
    from aegis.workflow.records import RequestRecord
    from aegis.workflow.waiting import RequestNote


def _cfg() -> Config:
    from aegis.config import load_config

    return load_config()


def _short(sha: str | None) -> str:
    return sha[:12] if sha else "-"


@click.command("requests")
@click.option("--state", "state", metavar="STATE", help="Only requests in this state.")
@click.option("--stuck", is_flag=True, help="Only requests past their state's threshold or lease.")
# Bounded so a huge number is a usage error (exit 2), not an overflow inside SQLite.
@click.option("--limit", type=click.IntRange(min=1, max=1_000_000), help="At most this many.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON for agents.")
def requests_cmd(state: str | None, stuck: bool, limit: int | None, as_json: bool) -> None:
    """List change requests with their age in state (oldest first).

    \b
    Example:
      aegis requests --stuck --json
      aegis requests --state policy
    """
    from aegis.api_agent import list_requests
    from aegis.cli import render

    # The same function as the MCP server's requests tool: one code path for both.
    out = list_requests(_cfg(), state=state, stuck=stuck, limit=limit)
    found = out.extra["found"]
    if as_json:
        render.emit_json(out.doc)
    elif found:
        _print_requests(
            found, stuck=stuck, wf=out.extra["wf"], now=out.extra["now"], notes=out.extra["notes"]
        )
    elif out.error is None:
        click.echo("No stuck requests." if stuck else "No requests.")
    if out.error is not None:
        raise out.error


def _print_requests(
    found: list[RequestRecord],
    *,
    stuck: bool,
    wf: Workflow,
    now: datetime,
    notes: dict[str, RequestNote],
) -> None:
    from aegis.cli import render
    from aegis.workflow.monitor import age_seconds, human_duration, stuck_reason

    rows = []
    waiting: list[tuple[str, str, str]] = []
    for r in found:
        note = notes.get(r.id)
        why = note.waiting if note is not None else None
        rows.append(
            [
                r.id,
                r.state,
                human_duration(age_seconds(r, now)),
                r.kind,
                r.summary,
                note.actor if note is not None else "-",
                r.plan_id or "-",
                stuck_reason(r, wf, now, waiting=why) or "",
            ]
        )
        if note is not None and why:
            waiting.append((r.id, note.actor, why))
    render.print_table(
        "Stuck requests" if stuck else "Requests",
        ["id", "state", "in state", "kind", "targets", "actor", "plan", "stuck"],
        rows,
    )
    # One reason line each, in full: the table cell is where a long reason gets cut.
    for rid, actor, why in waiting:
        render.print_line(f"{rid} ({actor}) waits for a human: {why}")


@click.command("show")
@click.argument("request_id")
@click.option("--json", "as_json", is_flag=True, help="Print JSON for agents.")
def show_cmd(request_id: str, as_json: bool) -> None:
    """Show a request: where it is on the graph, its timeline and its artifacts.

    The timeline lists every transition with actor, time and evidence hashes;
    artifacts are listed with their SHA-256 and file path. A plan id or plan
    hash finds the request bound to that plan.

    \b
    Example:
      aegis show r-0123456789abcdef
    """
    from aegis.api_agent import show_request
    from aegis.cli import render
    from aegis.workflow.machine import text_graph
    from aegis.workflow.monitor import age_seconds, human_duration

    # The same function as the MCP server's show tool: one code path for both.
    cfg = _cfg()
    out = show_request(cfg, request_id)
    detail, now, wf = out.extra["detail"], out.extra["now"], out.extra["wf"]
    rec = detail.request
    # aegisd's health-probe verdict and last probe results, from its status file (the
    # operator's view; the agent API does not import the executor's side).
    from aegis.execute.verify_status import request_verification

    v = request_verification(cfg, rec.id, rec.state)
    if as_json:
        render.emit_json({**out.doc, **({"verification": v} if v is not None else {})})
        return
    render.print_fields(
        [
            ("request", rec.id),
            ("kind", rec.kind),
            ("targets", rec.summary),
            ("state", f"{rec.state} (for {human_duration(age_seconds(rec, now))})"),
            ("plan", f"{rec.plan_id or '-'}  sha256 {rec.plan_hash or '-'}"),
            ("next", ", ".join(detail.next_triggers) or "none (terminal)"),
            (
                "lease",
                f"{rec.lease_owner} until {rec.lease_expires_at}" if rec.lease_owner else "-",
            ),
            ("stuck", detail.stuck_reason or "no"),
        ]
    )
    if v:
        from aegis.execute.verify_status import probe_lines

        render.print_fields(
            [("verification", f"{v.get('state')} (deadline {v.get('deadline') or '-'})")]
            + [("probe", line) for line in probe_lines(v)]
        )
    timeline = []
    for h in detail.history:
        evidence = [f"{a.kind}:{_short(a.sha256)}" for a in h.artifacts]
        evidence += [f"{k}={v}" for k, v in sorted(h.facts.items())]
        timeline.append(
            [
                h.seq,
                h.at,
                h.trigger,
                f"{h.from_state or '-'} -> {h.to_state}",
                h.actor,
                " ".join(evidence) or "-",
            ]
        )
    render.print_table(
        "Timeline", ["#", "at", "trigger", "transition", "actor", "evidence"], timeline
    )
    if detail.artifacts:
        render.print_table(
            "Artifacts",
            ["kind", "sha256", "path"],
            [[a.kind, a.sha256, a.path or "(store only)"] for a in detail.artifacts],
        )
    click.echo("\nWhere it is (*):")
    click.echo(text_graph(wf, current=rec.state))


@click.command("resume")
@click.option("--json", "as_json", is_flag=True, help="Print JSON for agents.")
def resume_cmd(as_json: bool) -> None:
    """Advance every request whose next step is read-only (review, decide, audit).

    Never runs a step that needs a human or a key; for requests being applied
    it only asks aegisd and dpkg what happened. Exits non-zero when a step failed.

    \b
    Example:
      aegis resume --json
    """
    from aegis import api
    from aegis.cli import render
    from aegis.codec import to_dict

    cfg = _cfg()
    report = api.resume(cfg, api.current_user())
    if as_json:
        render.emit_json({"items": [to_dict(i) for i in report.items]})
    elif not report.items:
        click.echo("Nothing to resume.")
    else:
        render.print_table(
            "Resume",
            ["request", "was", "action", "now", "trigger", "detail"],
            [
                [i.request_id, i.state_before, i.action, i.state_after, i.trigger or "-", i.detail]
                for i in report.items
            ],
        )
    if report.failed:
        raise SystemExit(report.failed[0].exit_code or 1)


@click.command("monitor")
@click.option("--json", "as_json", is_flag=True, help="Print JSON for agents.")
def monitor_cmd(as_json: bool) -> None:
    """One monitor pass: resume read-only steps, then write Prometheus metrics.

    What the aegis-monitor timer runs. Metrics go to <state_dir>/metrics/aegis.prom
    (requests and stuck requests per state, the pass's duration and last success,
    whether aegis-reviewd is up); the path is printed. An unreachable aegis-reviewd
    (advisory) is reported, not a failure: the pass goes on and exits 0. Requests
    that only wait (for a human, or for the reviewer) are counted; those the pass
    advanced, skipped or failed on are listed.

    \b
    Example:
      aegis monitor --json
    """
    from aegis import api
    from aegis.cli import render
    from aegis.codec import to_dict
    from aegis.workflow.monitor_pass import run_pass
    from aegis.workflow.resume import REVIEWER_UNREACHABLE

    cfg = _cfg()
    result = run_pass(cfg, api.current_user())
    report = result.resume
    counts = report.counts()
    # Requests only waiting (for a human, or for the reviewer) are counted, not listed:
    # every pass would otherwise repeat the whole backlog into the journal.
    listed = [i for i in report.items if i.action != "waiting" and i.condition is None]
    if result.reviewer == "unreachable":
        # One line for the journal (the unit's stderr), whatever the output format.
        click.echo(
            f"aegis monitor: {result.reviewer_detail}; "
            f"{counts.get(REVIEWER_UNREACHABLE, 0)} request(s) wait for review",
            err=True,
        )
    if as_json:
        render.emit_json(
            {
                "items": [to_dict(i) for i in listed],
                "counts": counts,
                "metrics_path": str(result.metrics_path),
                "reviewer": {"status": result.reviewer, "detail": result.reviewer_detail},
                "duration_s": round(result.duration_s, 6),
                "ok": result.ok,
                "out_of_band": _oob_json(result.out_of_band),
            }
        )
    else:
        for item in listed:
            render.print_line(
                f"{item.request_id}: {item.action} ({item.state_after}) {item.detail}"
            )
        summary = ", ".join(f"{n} {k}" for k, n in sorted(counts.items())) or "nothing to do"
        render.print_line(f"monitor pass: {summary} ({result.duration_s:.2f} s)")
        oob = result.out_of_band
        if oob is not None and oob.status != "clean":
            from aegis.text import inert

            for f in oob.pending:
                render.print_line(f"out-of-band: {inert(f.summary())}")
            render.print_line(f"out-of-band check: {oob.status}: {oob.detail} (aegis drift)")
        render.print_path("metrics", result.metrics_path)
    if report.failed:
        raise SystemExit(report.failed[0].exit_code or 1)


def _oob_json(oob: Any) -> dict[str, Any] | None:
    if oob is None:
        return None
    return {
        "status": oob.status,
        "detail": oob.detail,
        "findings": [f.as_dict() for f in oob.pending],
        "recorded": oob.recorded,
        "counts": oob.counts,
    }


@click.command("cancel")
@click.argument("request_id")
@click.option("--reason", required=True, help="Why (recorded in the request's history).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON for agents.")
def cancel_cmd(request_id: str, reason: str, as_json: bool) -> None:
    """Cancel a request before it is applied; a signed request's execution id is revoked.

    \b
    Example:
      aegis cancel r-0123456789abcdef --reason "superseded by r-fedcba"
    """
    from aegis import api
    from aegis.cli import render
    from aegis.codec import to_dict

    rec = api.cancel(_cfg(), request_id, api.current_user(), reason)
    if as_json:
        render.emit_json({"request": to_dict(rec)})
    else:
        render.print_line(f"{rec.id}: {rec.state}")


@click.group("workflow")
def workflow_group() -> None:
    """The change-request lifecycle graph.

    \b
    Example:
      aegis workflow graph --format mermaid
    """


@workflow_group.command("graph")
@click.option(
    "--format", "fmt", type=click.Choice(["mermaid", "text"]), default="text", show_default=True
)
@click.option("--json", "as_json", is_flag=True, help="Print the graph as JSON.")
def graph_cmd(fmt: str, as_json: bool) -> None:
    """Print the lifecycle graph (states, triggers, who fires them).

    \b
    Example:
      aegis workflow graph --format mermaid
    """
    from aegis import api
    from aegis.cli import render
    from aegis.workflow.machine import mermaid, text_graph

    wf = api.workflow()
    if as_json:
        render.emit_json(_graph_json(wf))
    elif fmt == "mermaid":
        click.echo(mermaid(wf))
    else:
        click.echo(text_graph(wf))


def _graph_json(wf: Workflow) -> dict[str, Any]:
    from aegis.codec import to_dict

    return {
        "name": wf.name,
        "initial": wf.initial,
        "digest": wf.digest,
        "states": [to_dict(s) for s in wf.states.values()],
        "transitions": [to_dict(t) for t in wf.transitions],
    }


@workflow_group.command("check")
@click.argument("path", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print JSON for agents.")
def check_cmd(path: Path, as_json: bool) -> None:
    """Validate a workflow file against the lifecycle's invariants.

    \b
    Example:
      aegis workflow check workflows/change-request.toml
    """
    from aegis.cli import render
    from aegis.errors import InputError
    from aegis.workflow.graph import MAX_WORKFLOW_BYTES, parse_workflow

    try:
        with path.open("rb") as fh:
            data = fh.read(MAX_WORKFLOW_BYTES + 1)
    except OSError as e:
        raise InputError(f"cannot read {path}: {e.strerror}") from e
    wf = parse_workflow(data, source=str(path))
    if as_json:
        render.emit_json({"ok": True, "path": str(path), "digest": wf.digest})
    else:
        render.print_line(f"{path}: ok ({len(wf.states)} states, {len(wf.edges())} edges)")
