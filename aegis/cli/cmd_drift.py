"""``aegis drift``: package changes that bypassed aegisd, recorded and pending."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

import click

from aegis.errors import InputError

_DURATION_RE = re.compile(r"^([1-9][0-9]{0,6})([smhd])\Z")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_since(text: str | None, now: datetime) -> str | None:
    """``7d``/``12h``/... or an ISO date/time -> RFC 3339 UTC text to compare with events.

    Raises:
        InputError: neither form.
    """
    if text is None:
        return None
    m = _DURATION_RE.match(text.strip())
    if m:
        moment = now - timedelta(seconds=int(m.group(1)) * _UNITS[m.group(2)])
    else:
        try:
            moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
        except ValueError as e:
            raise InputError(f"--since {text!r}: expected 7d, 12h, 30m or an ISO date") from e
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def recorded_events(cfg: Any, since: str | None) -> list[dict[str, Any]]:
    """Every ``out-of-band-change`` event in the audit log (all segments), oldest first.

    Lines are read as written; their links and signatures are ``aegis audit verify``'s.
    """
    import json

    from aegis.audit.chain import segment_paths
    from aegis.oob.record import KIND

    out: list[dict[str, Any]] = []
    needle = f'"kind":"{KIND}"'.encode()
    for path in [*segment_paths(cfg.audit_path), cfg.audit_path]:
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            continue
        except OSError as e:
            from aegis.errors import EnvironmentFailure

            raise EnvironmentFailure(f"cannot read the audit log {path}: {e.strerror}") from e
        for line in data.split(b"\n"):
            if needle not in line:
                continue
            try:
                body = json.loads(line)["event"]
                details = body["details"]
            except (ValueError, KeyError, TypeError):
                continue
            if since is not None and str(body.get("time", "")) < since:
                continue
            out.append({"seq": body.get("seq"), "recorded_at": body.get("time"), **details})
    return out


def _line(d: dict[str, Any]) -> str:
    from aegis.text import inert

    by = "dpkg directly" if d.get("tool") == "dpkg" else (d.get("commandline") or d.get("tool"))
    who = f" [{d['user']} uid {d['uid']}]" if d.get("user") else ""
    exp = " (expected)" if d.get("expected") else ""
    where = f" in {d['place']}" if d.get("place") else ""  # npm's prefix, a pip venv
    text = (
        f"{d.get('package')} {d.get('from') or 'absent'} -> {d.get('to') or 'absent'} "
        f"({d.get('action')}) at {d.get('time') or '?'} by {by}{where}{who}{exp}"
    )
    return inert(text)


@click.command("drift")
@click.option("--since", default=None, help="Only changes recorded since: 7d, 12h, or an ISO date.")
@click.option(
    "--record",
    is_flag=True,
    help="Ask aegisd to record pending changes now (what every monitor pass does).",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON for agents.")
def drift_cmd(since: str | None, record: bool, as_json: bool) -> None:
    """List package changes made outside aegisd: recorded ones, then pending ones.

    Each line names the package, its version from -> to, when dpkg logged it, and the
    command and user when apt recorded them (or "dpkg directly"). Recorded changes come
    from the audit log's out-of-band-change events; pending ones are what dpkg's state
    shows since aegisd's last baseline and no monitor pass has had aegisd record yet.

    \b
    Example:
      aegis drift --since 7d --json
    """
    from aegis.cli import render
    from aegis.config import load_config
    from aegis.oob.monitor import check

    cfg = load_config()
    cutoff = parse_since(since, datetime.now(UTC))
    report = check(cfg, record=record)
    recorded = recorded_events(cfg, cutoff)
    pending = [f.as_dict() for f in report.pending] if report.status == "pending" else []
    if as_json:
        render.emit_json(
            {
                "recorded": recorded,
                "pending": pending,
                "status": report.status,
                "detail": report.detail,
                "counts": report.counts,
            }
        )
        return
    for d in recorded:
        render.print_line(f"{d.get('recorded_at')}  {_line(d)}")
    for d in pending:
        render.print_line(f"pending  {_line(d)}")
    render.print_line(
        f"{len(recorded)} recorded, {len(pending)} pending; "
        f"check: {report.status} ({report.detail})"
    )
