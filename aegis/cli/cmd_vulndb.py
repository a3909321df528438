"""``aegis vulndb``: import an offline Debian security tracker file, show the index.

``aegis vulndb import FILE`` validates the tracker JSON strictly and writes the
index for the configured release (``AEGIS_VULN_RELEASE``, default ``bookworm``) to
``<state>/vulndb.json``, printing its path; ``aegis vulndb status`` shows what is
stored (release, database date, import time, counts). Errors exit 3 (bad file) or
7 (cannot write). See docs/vulnerabilities.md for the severity mapping.
"""

from __future__ import annotations

from pathlib import Path

import click


@click.group(
    "vulndb",
    help=(
        "Offline vulnerability data (Debian security tracker JSON).\n\n"
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
def import_cmd(file: Path, as_json: bool) -> None:
    """Validate a tracker JSON FILE and build the index plans consult.

    \b
    Example:
      aegis vulndb import ./debian-security-tracker.json --json
    """
    from datetime import UTC, datetime

    from aegis.analyze.evidence import vulndb
    from aegis.cli import render
    from aegis.config import load_config

    cfg = load_config()
    index, path = vulndb.import_file(cfg, file, datetime.now(UTC))
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
