"""``aegis review``: the advisory model review of a plan.

``aegis review <plan.json>`` asks aegis-reviewd for a signed review of the plan
(``--direct`` asks the model endpoint itself and signs with the local review key,
for development; ``--no-review`` records a review skipped by configuration),
writes ``reviews/<plan_id>.review.json``, moves the request ``analyzed ->
reviewed`` and prints risk, recommendation, flags, summary and the path.

Advisory only: a review never approves. It exits 0 whenever a review was recorded,
including invalid, failed and timed-out ones (policy then requires approval); an
unreachable aegis-reviewd is recorded as a failed review, with a warning. The
model's summary is untrusted and printed only through :mod:`aegis.text`.
"""

from __future__ import annotations

from pathlib import Path

import click


@click.command(
    "review",
    help=(
        "Advisory model review of a plan (never an approval); records the review.\n\n"
        "Example:\n\n  aegis review /var/lib/aegis/plans/p-123.json\n\n"
        "  aegis review plans/p-123.json --no-review   # skip by configuration\n\n"
        "Then run 'aegis policy <plan.json>' for the deterministic decision."
    ),
)
@click.argument("plan", type=click.Path(dir_okay=False, path_type=Path), required=False)
@click.option(
    "--probe",
    is_flag=True,
    help=(
        "Instead of a review: one canned request to the configured model server (reachable, "
        "model listed, response_format honoured, answer parses); exit 7 unless it would count."
    ),
)
@click.option(
    "--direct",
    is_flag=True,
    help="Development: call the model endpoint directly and sign with the local review key.",
)
@click.option("--no-review", is_flag=True, help="Record the review as skipped by configuration.")
@click.option("--json", "as_json", is_flag=True, help="Print the review record as JSON.")
def review_cmd(
    plan: Path | None, probe: bool, direct: bool, no_review: bool, as_json: bool
) -> None:
    """Review PLAN."""
    if probe:
        _probe(as_json)
        return
    if plan is None:
        raise click.UsageError("missing argument PLAN (or give --probe)")
    from aegis.api_agent import review_plan
    from aegis.cli.render import emit_json, print_fields, print_path, warn
    from aegis.config import load_config
    from aegis.errors import InputError

    if direct and no_review:
        raise InputError("--direct and --no-review exclude each other")
    cfg = load_config()
    if direct:
        warn(
            "--direct is for development: this process calls the model endpoint and signs "
            "with the local review key instead of aegis-reviewd"
        )
    # The same function as the MCP server's review tool: one code path for both.
    out = review_plan(cfg, plan, direct=direct, no_review=no_review)
    done = out.extra["done"]
    review = done.review
    if done.unavailable is not None:
        warn(
            f"review failed: {done.unavailable}; recorded as a failed review, so policy "
            "will require approval (start aegis-reviewd, or --no-review where policy allows)"
        )
    if as_json:
        emit_json(out.doc)
        return
    if done.recorded:
        click.echo(
            f"request {done.request_id} was already reviewed; showing the recorded review", err=True
        )
    fields: list[tuple[str, object]] = [("status", review.status.value)]
    if review.risk is not None and review.recommendation is not None:
        fields += [
            ("risk", review.risk.value),
            ("recommendation", f"{review.recommendation.value} (advisory; policy decides)"),
            ("flags", ", ".join(f.value for f in review.flags) or "none"),
            ("summary", review.summary or "-"),
        ]
    else:
        fields.append(("reason", review.reason))
        if review.status.value != "skipped":
            fields.append(("effect", "policy will require approval (failed reviews fail closed)"))
    fields += [
        ("model", review.model or "-"),
        ("signed by", review.reviewer_public_key_hex or f"(unsigned local {review.status.value})"),
        ("request", f"{done.request_id} ({done.state})"),
    ]
    print_fields(fields)
    print_path("review", done.path)


def _probe(as_json: bool) -> None:
    from datetime import UTC, datetime

    from aegis.cli.render import emit_json, print_fields, print_path
    from aegis.codec import to_dict
    from aegis.config import load_config
    from aegis.errors import EnvironmentFailure
    from aegis.review.probe import probe, record_probe

    cfg = load_config()
    result = probe(cfg, datetime.now(UTC))
    path = record_probe(cfg, result)
    if as_json:
        emit_json({**to_dict(result), "ok": result.ok, "path": str(path)})
    else:
        listed = {True: "yes", False: "NO", None: "unknown (no usable /v1/models)"}
        print_fields(
            [
                ("endpoint", result.endpoint),
                ("model", result.model or "(none configured)"),
                ("reachable", "yes" if result.reachable else "no"),
                ("model listed", listed[result.model_listed]),
                ("response_format", result.response_format or "-"),
                ("reasoning", ", ".join(result.reasoning) or "-"),
                ("answer parses", "yes" if result.answer_parses else "no"),
                ("detail", result.detail),
                ("latency", f"{result.latency_ms} ms"),
            ]
        )
        print_path("probe result", path)
    if not result.ok:
        raise EnvironmentFailure(
            f"the model server would not give reviews that count: {result.detail}",
            hint="docs/operator-guide.md, 'The review model'",
        )
