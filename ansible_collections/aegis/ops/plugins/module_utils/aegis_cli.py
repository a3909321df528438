"""Running Aegis's own commands from a module: argv lists, JSON answers, no shell.

The modules never reimplement a check: they call ``aegis`` and ``aegisctl`` on the
managed host exactly as an operator would and report what those print with ``--json``.
Planning runs in the module's own process when its interpreter has Aegis (the usual
``ansible_python_interpreter=/opt/aegis/venv/bin/python``): the same function
``aegis fleet plan`` calls, without starting a second interpreter per host.
"""

from __future__ import annotations

import contextlib
import json
import sys
from typing import Any

COMMON_ARGS: dict[str, Any] = {
    "intent": {"type": "list", "elements": "str", "required": True},
    "review": {"type": "bool", "default": True},
    "contents": {"type": "bool", "default": True},
    "aegis_command": {"type": "list", "elements": "str", "default": ["aegis"]},
    "aegisctl_command": {"type": "list", "elements": "str", "default": ["aegisctl"]},
    "in_process": {"type": "bool", "default": True},
}


def run_json(module: Any, argv: list[str]) -> tuple[int, Any, str]:
    """Run ``argv``; return its exit code, its JSON stdout (None if none) and stderr."""
    rc, out, err = module.run_command(argv, check_rc=False)
    try:
        doc = json.loads(out) if out.strip() else None
    except ValueError:
        doc = None
    return rc, doc, err.strip()


def _plan_in_process(module: Any) -> dict[str, Any] | None:
    """``plan_this_host`` in this process; None when this interpreter has no Aegis."""
    try:
        from aegis.config import load_config
        from aegis.errors import AegisError
        from aegis.fleet.plan import plan_this_host
    except ImportError:
        return None
    p = module.params
    # Nothing Aegis prints may reach stdout: it carries the module's JSON answer.
    with contextlib.redirect_stdout(sys.stderr):
        try:
            row = plan_this_host(
                load_config(), p["intent"], review=p["review"], contents=p["contents"]
            )
        except AegisError as e:
            module.fail_json(
                msg=f"aegis fleet plan failed (exit {e.exit_code}): {e}", rc=e.exit_code
            )
    if row["decision"] == "deny":
        row.pop("cohort", None)
        module.fail_json(msg=f"policy denied request {row['request_id']}", rc=5, **row)
    return row


def plan_here(module: Any) -> dict[str, Any]:
    """``aegis fleet plan --json -- INTENT`` on this host; fail the module on an error."""
    p = module.params
    if p["in_process"]:
        row = _plan_in_process(module)
        if row is not None:
            row.pop("cohort", None)
            return row
    argv = [*p["aegis_command"], "fleet", "plan", "--json"]
    if not p["review"]:
        argv.append("--no-review")
    if not p["contents"]:
        argv.append("--no-contents")
    rc, doc, err = run_json(module, [*argv, "--", *p["intent"]])
    if rc != 0 or not isinstance(doc, dict):
        module.fail_json(
            msg=f"aegis fleet plan failed (exit {rc}): {err[-500:]}",
            rc=rc,
            decision=(doc or {}).get("decision") if isinstance(doc, dict) else None,
            request_id=(doc or {}).get("request_id") if isinstance(doc, dict) else None,
        )
    doc.pop("cohort", None)
    return doc
