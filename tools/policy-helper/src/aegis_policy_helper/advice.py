"""Optional DSPy analysis: untrusted advice about policy maintenance.

The model sees only the deterministic summary (no secrets, no keys) and its answer is
stored as text marked ``"trust": "untrusted-advice"``, stripped of control and bidi
characters and capped. It cannot change the verification, the summary or anything Aegis
runs. Without DSPy, or with ``--skip-dspy``, the section says why it was skipped.
"""

from __future__ import annotations

import json
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
    try:
        import dspy  # type: ignore[import-not-found]
    except ImportError:
        return skipped("DSPy is not installed (pip install dspy, or use --skip-dspy)")
    try:
        model = dspy.LM(lm, api_base=api_base, api_key=api_key)
        predict = dspy.Predict("instructions, plan_summary -> policy_maintenance_advice")
        with dspy.context(lm=model):
            result = predict(
                instructions=INSTRUCTIONS,
                plan_summary=json.dumps(summary, sort_keys=True),
            )
        text = str(getattr(result, "policy_maintenance_advice", ""))
    except Exception as e:  # a model failure must not fail the report
        return {
            "status": "error",
            "reason": inert(f"{type(e).__name__}: {e}", 500),
            "trust": TRUST,
            "advice": None,
        }
    return {"status": "ok", "model": lm, "trust": TRUST, "advice": inert(text)}
