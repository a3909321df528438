"""Running Aegis's own commands from a module: argv lists, JSON answers, no shell.

The modules never reimplement a check: they call ``aegis`` and ``aegisctl`` on the
managed host exactly as an operator would and report what those print with ``--json``.
"""

from __future__ import annotations

import json
from typing import Any

COMMON_ARGS: dict[str, Any] = {
    "intent": {"type": "list", "elements": "str", "required": True},
    "review": {"type": "bool", "default": True},
    "contents": {"type": "bool", "default": True},
    "aegis_command": {"type": "list", "elements": "str", "default": ["aegis"]},
    "aegisctl_command": {"type": "list", "elements": "str", "default": ["aegisctl"]},
}


def run_json(module: Any, argv: list[str]) -> tuple[int, Any, str]:
    """Run ``argv``; return its exit code, its JSON stdout (None if none) and stderr."""
    rc, out, err = module.run_command(argv, check_rc=False)
    try:
        doc = json.loads(out) if out.strip() else None
    except ValueError:
        doc = None
    return rc, doc, err.strip()


def plan_here(module: Any) -> dict[str, Any]:
    """``aegis fleet plan --json -- INTENT`` on this host; fail the module on an error."""
    p = module.params
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
