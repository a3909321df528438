"""Optional DSPy analysis: untrusted advice about policy maintenance.

The model sees only the deterministic summary (no secrets, no keys) and its answer is
stored as text marked ``"trust": "untrusted-advice"``, stripped of control and bidi
characters and capped. It cannot change the verification, the summary or anything Aegis
runs. Without DSPy, or with ``--skip-dspy``, the section says why it was skipped.
"""

from __future__ import annotations

import json
import os
from typing import Any

from aegis_policy_helper.report import inert

TRUST = "untrusted-advice"
INSTRUCTIONS = (
    "You review an already signed Aegis execution plan summary for policy maintenance. "
    "Point out policy rules that may be too loose or too strict. You cannot approve, "
    "sign, or produce commands."
)


def skipped(reason: str) -> dict[str, Any]:
    """The section when no analysis ran."""
    return {"status": "skipped", "reason": reason, "trust": TRUST, "advice": None}


def analyze(
    summary: dict[str, Any], *, lm: str, api_base: str | None, api_key: str | None
) -> dict[str, Any]:
    """Ask a DSPy program for advice; never raises (errors become the section)."""
    # Offline by design: LiteLLM (under DSPy) would otherwise fetch its model price
    # list from the internet on import; the only request made is to the model server.
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    try:
        import dspy
    except ImportError:
        return skipped("DSPy is not installed (pip install dspy, or use --skip-dspy)")
    try:
        # No answer cache: each report asks afresh and writes nothing under $HOME.
        model = dspy.LM(lm, api_base=api_base, api_key=api_key, cache=False)
        # The input is "task", not "instructions": a field of that name shadows
        # dspy.Signature.instructions and DSPy fails with a TypeError before any request.
        predict = dspy.Predict("task, plan_summary -> policy_maintenance_advice")
        with dspy.context(lm=model):
            result = predict(task=INSTRUCTIONS, plan_summary=json.dumps(summary, sort_keys=True))
        text = str(getattr(result, "policy_maintenance_advice", ""))
    except Exception as e:  # a model failure must not fail the report
        return {
            "status": "error",
            "reason": inert(f"{type(e).__name__}: {e}", 500),
            "trust": TRUST,
            "advice": None,
        }
    return {"status": "ok", "model": lm, "trust": TRUST, "advice": inert(text)}
