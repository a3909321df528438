"""``aegis audit verify|checkpoint`` and ``aegisctl audit-path``: check and locate the audit log.

``aegis audit verify`` reads every segment of the log, checks hashes, links, sequence
numbers and checkpoint signatures, and compares with the newest checkpoint held off the
log (the witness). Each problem is printed with its file and line number. Exit codes:
0 verified, 4 tampering or a problem found (TrustError, also a witness missing while
the log holds checkpoints), 3 unreadable input, 7 the witness cannot be read (the tail
is unchecked: :mod:`aegis.audit.witness`).

Defaults come from the configuration: the log at ``cfg.audit_path``, the trusted audit
key in ``<etc>/keys/audit.pub`` and the witness file aegisd writes (``witness_file``
in aegisd.toml, default ``<log_dir>/audit-witness.jsonl``, 0640 root:aegis; used when
the log is the configured one).
"""

from __future__ import annotations

from pathlib import Path

import click


@click.group(
    "audit",
    help=(
        "The tamper-evident audit log.\n\n"
        "Example:\n\n"
        "  aegis audit verify --witness /var/log/aegis/audit-witness.jsonl"
    ),
)
def audit_group() -> None:
    """Audit log commands."""


@audit_group.command(
    "verify",
    help=(
        "Verify the audit log: hashes, links, sequence, signed checkpoints, witness.\n\n"
        "Each modified, inserted, deleted, reordered, duplicated or truncated line is\n"
        "reported with its line number; exits 4 when anything is wrong, 7 when the\n"
        "witness cannot be read (the tail of the log is then unchecked).\n\n"
        "Example:\n\n"
        "  aegis audit verify --path /var/log/aegis/audit.jsonl --json"
    ),
)
@click.option(
    "--path",
    "path",
    type=click.Path(path_type=Path, readable=False),
    help="Log file (default: config).",
)
@click.option(
    "--witness",
    type=click.Path(path_type=Path, readable=False),
    help="File of signed checkpoints held off the log (default: the one aegisd writes).",
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
    from aegis.api_agent import audit_verify
    from aegis.config import load_config

    # The same function as the MCP server's audit_verify tool: one code path for both.
    if public_key_hex is not None:
        from aegis.sign.files import check_hex_key

        # A malformed key given on the command line is a typo (exit 3), not a broken log.
        public_key_hex = check_hex_key(public_key_hex, "--public-key-hex")
    out = audit_verify(load_config(), path=path, witness=witness, public_key_hex=public_key_hex)
    if as_json:
        from aegis.cli.render import emit_json

        emit_json(out.doc)
    else:
        _render(out.extra["report"], out.extra["shown"], out.extra["status"])
    if out.error is not None:
        raise out.error


def _render(report: object, witness: Path | None, status: str) -> None:
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
            ("witness", _witness_line(witness, status, report.witness_seq)),
            ("result", _result_line(report, status)),
        ]
    )
    for message in report.warnings:
        warn(message)
    if report.problems:
        rows = [[p.file, p.line, p.kind, p.message] for p in report.problems]
        print_table("problems", ["file", "line", "kind", "problem"], rows)


def _witness_line(witness: Path | None, status: str, seq: int | None) -> str:
    if witness is None:
        return "none (turned off)" if status == "off" else "none"
    if status in ("readable", "given"):
        return f"{witness} (seq {seq})"
    return f"{witness} ({'cannot be read' if status == 'unchecked' else status})"


def _result_line(report: object, status: str) -> str:
    from aegis.audit.verify import VerifyReport

    assert isinstance(report, VerifyReport)
    if not report.ok:
        return "PROBLEMS FOUND"
    if status == "unchecked":
        return "TAIL UNCHECKED (the witness cannot be read)"
    return "verified"


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


@audit_group.command(
    "checkpoint",
    help=(
        "Print the host's latest signed audit checkpoint.\n\n"
        "The checkpoint signs the head (sequence and hash) of the log with aegisd's\n"
        "audit key. --json prints the signed document exactly, one line, so a fleet\n"
        "can fetch it from each host and keep it off the host as a witness (aegis\n"
        "audit verify --witness FILE then reports truncation or a rewritten head).\n"
        "Exits 4 when the signature does not verify with the trusted audit key, 6\n"
        "when the log holds no checkpoint yet.\n\n"
        "Example:\n\n"
        "  aegis audit checkpoint --json >> /srv/witness/$(hostname).jsonl"
    ),
)
@click.option(
    "--path",
    "path",
    type=click.Path(path_type=Path, readable=False),
    help="Log file (default: config).",
)
@click.option(
    "--public-key-hex",
    "public_key_hex",
    metavar="HEX",
    help="Trusted audit public key (default: <etc>/keys/audit.pub).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the signed checkpoint as JSON.")
def checkpoint_cmd(path: Path | None, public_key_hex: str | None, as_json: bool) -> None:
    """Print the latest signed checkpoint."""
    import os

    from aegis.api_audit import unreadable
    from aegis.audit.checkpoints import checkpoint_line, verify_checkpoint
    from aegis.audit.latest import latest_checkpoint
    from aegis.audit.verify import default_public_key_path, read_public_key_hex
    from aegis.cli.render import print_fields, warn
    from aegis.config import load_config
    from aegis.errors import InputError, StateError, TrustError
    from aegis.sign.files import check_hex_key

    cfg = load_config()
    log_path = path or cfg.audit_path
    try:
        os.stat(log_path)
    except FileNotFoundError as e:
        raise InputError(f"audit log {log_path} does not exist") from e
    except OSError as e:
        raise unreadable(log_path, e) from e
    if public_key_hex is not None:
        key: str | None = check_hex_key(public_key_hex, "--public-key-hex")
    else:
        key = read_public_key_hex(default_public_key_path(cfg.keys_dir))
    try:
        found = latest_checkpoint(log_path)
    except InputError as e:
        if isinstance(e.__cause__, PermissionError):
            raise unreadable(log_path, e.__cause__) from e
        raise
    if found is None:
        raise StateError(
            f"audit log {log_path} holds no checkpoint yet",
            hint="aegisd writes one at every apply and when it first starts",
        )
    if key is None:
        warn("no trusted audit public key: the signature was not checked")
    elif not verify_checkpoint(found.doc, key):
        raise TrustError(
            f"the latest checkpoint in {log_path} ({found.file}, event seq {found.event_seq}) "
            "does not verify with the trusted audit key"
        )
    if as_json:
        click.echo(checkpoint_line(found.doc).decode("utf-8"), nl=False)
        return
    body = found.doc["checkpoint"]
    print_fields(
        [
            ("host", body["host"]),
            ("seq", body["seq"]),
            ("head", body["head_hash"]),
            ("time", body["time"]),
            ("signature", "verified" if key is not None else "not checked (no key)"),
            ("in", f"{found.file} (event seq {found.event_seq})"),
        ]
    )
