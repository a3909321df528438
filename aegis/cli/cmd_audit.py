"""``aegis audit verify`` and ``aegisctl audit-path``: check and locate the audit log.

``aegis audit verify`` reads every segment of the log, checks hashes, links, sequence
numbers and checkpoint signatures, and compares with the newest checkpoint held off the
log (the witness). Each problem is printed with its file and line number. Exit codes:
0 verified, 4 tampering or a problem found (TrustError), 3 unreadable input.

Defaults come from the configuration: the log at ``cfg.audit_path``, the trusted audit
key in ``<etc>/keys/audit.pub`` and the witness file aegisd writes (``witness_file``
in aegisd.toml, default ``<aegisd_dir>/audit-witness.jsonl``, root-only; used when
readable and the log is the configured one).
"""

from __future__ import annotations

import os
from pathlib import Path

import click


@click.group(
    "audit",
    help=(
        "The tamper-evident audit log.\n\n"
        "Example:\n\n"
        "  aegis audit verify --witness /var/lib/aegis/aegisd/audit-witness.jsonl"
    ),
)
def audit_group() -> None:
    """Audit log commands."""


@audit_group.command(
    "verify",
    help=(
        "Verify the audit log: hashes, links, sequence, signed checkpoints, witness.\n\n"
        "Each modified, inserted, deleted, reordered, duplicated or truncated line is\n"
        "reported with its line number; exits 4 when anything is wrong.\n\n"
        "Example:\n\n"
        "  aegis audit verify --path /var/log/aegis/audit.jsonl --json"
    ),
)
@click.option("--path", "path", type=click.Path(path_type=Path), help="Log file (default: config).")
@click.option(
    "--witness",
    type=click.Path(path_type=Path),
    help="File of signed checkpoints held off the log (default: aegisd's, when readable).",
)
@click.option(
    "--public-key-hex",
    "public_key_hex",
    metavar="HEX",
    help="Trusted audit public key (default: <etc>/keys/audit.pub).",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON for agents.")
def verify_cmd(
    path: Path | None, witness: Path | None, public_key_hex: str | None, as_json: bool
) -> None:
    """Verify the audit log."""
    from aegis.audit.verify import default_public_key_path, read_public_key_hex, verify
    from aegis.config import load_config
    from aegis.errors import InputError, TrustError
    from aegis.execute.settings import configured_witness_file
    from aegis.sign.files import check_hex_key

    cfg = load_config()
    log_path = path or cfg.audit_path
    if not log_path.exists():
        raise InputError(f"audit log {log_path} does not exist")
    if public_key_hex is not None:
        # A malformed key given on the command line is a typo (exit 3), not a broken log.
        key: str | None = check_hex_key(public_key_hex, "--public-key-hex")
    else:
        key = read_public_key_hex(default_public_key_path(cfg.keys_dir))
    if witness is None and (path is None or path == cfg.audit_path):
        # The same witness aegisd writes (aegisd.toml witness_file, default
        # <aegisd_dir>/audit-witness.jsonl). Not readable by this user (an aegis member,
        # not root): verify without it; an operator passes --witness.
        candidate = configured_witness_file(cfg)
        if candidate is not None and candidate.is_file() and os.access(candidate, os.R_OK):
            witness = candidate
    report = verify(log_path, audit_public_key_hex=key, witness=witness)
    if as_json:
        from aegis.cli.render import emit_json

        out = report.to_dict()
        out["witness"] = str(witness) if witness else None
        emit_json(out)
    else:
        _render(report, witness)
    if not report.ok:
        first = report.problems[0]
        raise TrustError(
            f"audit log {log_path} failed verification: {len(report.problems)} problem(s), "
            f"first at {first.file} line {first.line} ({first.kind})"
        )


def _render(report: object, witness: Path | None) -> None:
    from aegis.audit.verify import VerifyReport
    from aegis.cli.render import print_fields, print_table, warn

    assert isinstance(report, VerifyReport)
    print_fields(
        [
            ("log", report.path),
            ("segments", ", ".join(report.segments)),
            ("events", report.events),
            ("head", f"seq {report.head_seq} {report.head_hash[:16]}"),
            ("checkpoints", f"{report.checkpoints} (last signed seq {report.last_checkpoint_seq})"),
            ("witness", f"{witness} (seq {report.witness_seq})" if witness else "none"),
            ("result", "verified" if report.ok else "PROBLEMS FOUND"),
        ]
    )
    for message in report.warnings:
        warn(message)
    if report.problems:
        rows = [[p.file, p.line, p.kind, p.message] for p in report.problems]
        print_table("problems", ["file", "line", "kind", "problem"], rows)


@click.command(
    "audit-path",
    help="Print the audit log's path.\n\nExample:\n\n  aegisctl audit-path",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON for agents.")
def audit_path_cmd(as_json: bool) -> None:
    """Print cfg.audit_path."""
    from aegis.config import load_config

    path = load_config().audit_path
    if as_json:
        from aegis.cli.render import emit_json

        emit_json({"audit_path": str(path)})
    else:
        click.echo(str(path))
