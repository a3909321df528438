"""Command line: ``report`` (the only command).

Exit codes follow Aegis (docs/design.md "Errors and exit codes"): 0 written, 2 usage,
3 unreadable input, 4 the execution plan or an approval does not verify with the trusted
keys, 7 PyNaCl is not installed (nothing can be verified: ``apt install python3-nacl``).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from aegis_policy_helper import advice
from aegis_policy_helper.ed25519 import MissingVerifier
from aegis_policy_helper.report import build_report, summarize
from aegis_policy_helper.trust import TrustFailure, verify_execution_plan

log = logging.getLogger("aegis_policy_helper")
MAX_PLAN_BYTES = 4 * 1024 * 1024
EXIT_INPUT = 3
EXIT_TRUST = 4
EXIT_ENVIRONMENT = 7


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python3 -m aegis_policy_helper",
        description="Offline advisory report over an already signed execution plan.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    rep = sub.add_parser(
        "report",
        help="verify a signed execution plan and write an advisory report",
        epilog=(
            "example: PYTHONPATH=tools/policy-helper/src python3 -m aegis_policy_helper "
            "report --execution-plan ep.json --execution-public-key-hex K "
            "--approval-public-key-hex K --out report.json --skip-dspy"
        ),
    )
    rep.add_argument("--execution-plan", required=True, type=Path)
    rep.add_argument("--execution-public-key-hex", required=True)
    rep.add_argument(
        "--approval-public-key-hex",
        action="append",
        required=True,
        help="trusted approver key (repeatable; ROLE:KEY also trusts it for ROLE)",
    )
    rep.add_argument("--out", required=True, type=Path)
    rep.add_argument("--lm", default=None, help="DSPy model, e.g. openai/deepseek-v4-flash")
    rep.add_argument("--api-base", default=None)
    rep.add_argument("--api-key", default=None)
    rep.add_argument(
        "--max-tokens",
        type=int,
        default=advice.DEFAULT_MAX_TOKENS,
        help="output cap of the model request (a reasoning model's thinking counts)",
    )
    rep.add_argument("--skip-dspy", action="store_true", help="do not run the DSPy analysis")
    rep.add_argument(
        "--allow-unverified-execution-signature",
        action="store_true",
        help="UNSAFE, local fixtures only: write the report even when verification fails",
    )
    return parser


def _write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    os.replace(tmp, path)


def _analysis(args: argparse.Namespace, document: dict[str, Any]) -> dict[str, Any]:
    """The DSPy section: skipped when asked or when no model is named."""
    if args.skip_dspy:
        return advice.skipped("--skip-dspy")
    if not args.lm:
        return advice.skipped("no --lm given")
    return advice.analyze(
        summarize(document),
        lm=args.lm,
        api_base=args.api_base,
        api_key=args.api_key,
        max_tokens=args.max_tokens,
    )


def run_report(args: argparse.Namespace) -> int:
    """Verify, summarize, optionally ask DSPy, write the report; return the exit code."""
    try:
        data = args.execution_plan.read_bytes()
    except OSError as e:
        print(f"Error: cannot read {args.execution_plan}: {e.strerror}", file=sys.stderr)
        return EXIT_INPUT
    if len(data) > MAX_PLAN_BYTES:
        print(
            f"Error: {args.execution_plan} is larger than {MAX_PLAN_BYTES} bytes", file=sys.stderr
        )
        return EXIT_INPUT
    unsafe = bool(args.allow_unverified_execution_signature)
    if unsafe:
        log.warning(
            "Unsafe: --allow-unverified-execution-signature is for local fixtures only; "
            "this report is not production evidence"
        )
    try:
        verification = verify_execution_plan(
            data, args.execution_public_key_hex, list(args.approval_public_key_hex)
        )
    except TrustFailure as e:
        print(f"Error: {e}", file=sys.stderr)
        return EXIT_TRUST
    except MissingVerifier as e:
        print(f"Error: {e}", file=sys.stderr)
        return EXIT_ENVIRONMENT
    problems = []
    if not verification.signature_ok:
        problems.append(f"execution plan signature: {verification.signature_detail}")
    problems += [
        f"approval by {a['approver_id']} does not count: {a['reason']}"
        for a in verification.approvals
        if not a["counted"]
    ]
    if problems and not unsafe:
        for p in problems:
            print(f"Error: {p}", file=sys.stderr)
        return EXIT_TRUST
    for p in problems:
        log.warning("Unsafe: writing a report although %s", p)
    analysis = _analysis(args, verification.document)
    report = build_report(
        source_path=str(args.execution_plan),
        source_sha256=hashlib.sha256(data).hexdigest(),
        verification=verification,
        unsafe_unverified=unsafe,
        dspy_analysis=analysis,
        generated_at=datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
    )
    _write(args.out, json.dumps(report, indent=2, sort_keys=True).encode("utf-8") + b"\n")
    if analysis["status"] != "ok" and not args.skip_dspy:
        # Asked for a model analysis and did not get one: say so, not only in the file.
        log.warning("dspy_analysis %s: %s", analysis["status"], analysis["reason"])
    print(f"report: {args.out}")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s: %(message)s")
    args = _parser().parse_args(argv)
    if args.command == "report":
        return run_report(args)
    return 2
