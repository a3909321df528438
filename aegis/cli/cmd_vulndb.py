"""``aegis vulndb``: import an offline Debian security tracker file, show the index.

``aegis vulndb import FILE`` validates the tracker JSON strictly and writes the
index for the configured release (``AEGIS_VULN_RELEASE``, default ``bookworm``) to
``<state>/vulndb.json``, printing its path; ``aegis vulndb status`` shows what is
stored (release, database date, import time, counts); ``aegis vulndb report`` lists
installed packages with open issues (like debsecan). Errors exit 3 (bad file, or an
index root did not write on a host) or 7 (cannot write; not root on a host). See
docs/vulnerabilities.md for the severity mapping.
"""

from __future__ import annotations

from pathlib import Path

import click


@click.group(
    "vulndb",
    help=(
        "Offline vulnerability data (Debian security tracker JSON or OSV records).\n\n"
        "Example:\n\n"
        "  aegis vulndb import ./debian-security-tracker.json\n\n"
        "  aegis vulndb status --json"
    ),
)
def vulndb_group() -> None:
    """Vulnerability database commands."""


@vulndb_group.command("import")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print JSON for agents.")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["auto", "tracker", "osv"]),
    default="auto",
    show_default=True,
    help="tracker: the security tracker's JSON; osv: OSV records for Debian (a record, "
    "a JSON array, or a zip such as osv.dev's Debian/all.zip); auto: by content.",
)
def import_cmd(file: Path, as_json: bool, fmt: str) -> None:
    """Validate a tracker JSON FILE (or OSV records) and build the index plans consult.

    On a host install only root may import: planning, policy and aegisd trust the index.

    \b
    Example:
      aegis vulndb import ./debian-security-tracker.json --json
      aegis vulndb import ./Debian-all.zip --format osv
    """
    from datetime import UTC, datetime

    from aegis.analyze.evidence import vulndb
    from aegis.cli import render
    from aegis.config import load_config

    cfg = load_config()
    index, path = vulndb.import_file(cfg, file, datetime.now(UTC), fmt)
    if as_json:
        render.emit_json(
            {
                "path": str(path),
                "release": index.release,
                "date": index.date,
                "imported_at": index.imported_at,
                "source_sha256": index.source_sha256,
                "packages": len(index.entries),
                "entries": index.entry_count,
            }
        )
        return
    render.print_fields(
        [
            ("release", index.release),
            ("database date", index.date),
            ("source packages", len(index.entries)),
            ("entries", index.entry_count),
        ]
    )
    render.print_path("vulnerability index", path)


@vulndb_group.command("status")
@click.option("--json", "as_json", is_flag=True, help="Print JSON for agents.")
def status_cmd(as_json: bool) -> None:
    """Show the stored vulnerability index (release, date, counts).

    \b
    Example:
      aegis vulndb status --json
    """
    from aegis.analyze.evidence import vulndb
    from aegis.cli import render
    from aegis.codec import to_dict
    from aegis.config import load_config

    info = vulndb.status(load_config())
    if as_json:
        render.emit_json(to_dict(info))
        return
    if not info.present:
        render.print_line(f"No vulnerability index at {info.path}.")
        render.print_line("Import one: aegis vulndb import FILE")
        return
    render.print_fields(
        [
            ("path", info.path),
            ("release", info.release),
            ("database date", info.date),
            ("imported at", info.imported_at),
            ("source sha256", info.source_sha256),
            ("source packages", info.packages),
            ("entries", info.entries),
        ]
    )


@vulndb_group.command("report")
@click.option(
    "--status",
    "status_file",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="dpkg status file (default: var/lib/dpkg/status under the configured dpkg root).",
)
@click.option("--critical", is_flag=True, help="Only the contract's critical urgencies.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON for agents.")
def report_cmd(status_file: Path | None, critical: bool, as_json: bool) -> None:
    """List installed packages with open vulnerabilities in the imported index.

    An issue is open when the tracker has no fix yet or its fixed version is newer than
    the installed one. Without an imported index this is an environment error (7).

    \b
    Example:
      aegis vulndb report --critical --json
    """
    from aegis.analyze.evidence import vulndb
    from aegis.cli import render
    from aegis.codec import to_dict
    from aegis.config import load_config
    from aegis.ecosystems.apt.evidence.vuln_report import read_status, report_open
    from aegis.errors import EnvironmentFailure

    cfg = load_config()
    index = vulndb.load_index(cfg)
    if index is None:
        raise EnvironmentFailure("no vulnerability index imported", hint="aegis vulndb import FILE")
    path = status_file or (cfg.dpkg_root or Path("/")) / "var/lib/dpkg/status"
    issues = [i for i in report_open(index, read_status(path)) if i.critical or not critical]
    if as_json:
        render.emit_json(
            {
                "release": index.release,
                "database_date": index.date,
                "status_file": str(path),
                "issues": [to_dict(i) for i in issues],
            }
        )
        return
    if not issues:
        render.print_line(f"No open issues for installed packages ({index.release}, {index.date}).")
        return
    for i in issues:
        fix = f"fixed in {i.fixed_version}" if i.fixed_version else "no fix yet"
        mark = " CRITICAL" if i.critical else ""
        render.print_line(f"{i.package} {i.version}  {i.cve} ({i.urgency}{mark}), {fix}")
    render.print_line(f"{len(issues)} open issue(s) ({index.release}, database {index.date}).")
