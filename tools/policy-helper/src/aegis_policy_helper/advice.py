"""Optional DSPy analysis: untrusted advice about policy maintenance.

The model sees only the deterministic summary (no secrets, no keys) and its answer is
stored as text marked ``"trust": "untrusted-advice"``, stripped of control and bidi
characters and capped. It cannot change the verification, the summary or anything Aegis
runs. Without DSPy, or with ``--skip-dspy``, the section says why it was skipped.
"""

from __future__ import annotations

import json
import logging
import os
from typing import Any

from aegis_policy_helper.report import inert

TRUST = "untrusted-advice"
INSTRUCTIONS = (
    "You review an already signed Aegis execution plan summary for policy maintenance. "
    "Point out policy rules that may be too loose or too strict. You cannot approve, "
    "sign, or produce commands."
)


DEFAULT_MAX_TOKENS = 4096
"""Output cap of the DSPy request; a reasoning model's thinking counts against it."""
_THINK_OPEN, _THINK_CLOSE = "<think>", "</think>"
_FENCE = "```"


class CutOffError(ValueError):
    """The model's answer holds no advice: cut off at the output cap, or empty."""


def set_aside_reasoning(completion: str | None) -> str:
    """The raw completion DSPy hands its adapter, without the model's reasoning.

    The same answer shapes the review accepts (docs/operator-guide.md): one leading
    ``<think>...</think>`` block (a reasoning model served without a reasoning parser)
    is set aside, never read as advice (a header inside it must not become the advice),
    and one Markdown fence that wraps the whole answer is removed. Reasoning that the
    server returns in its own field (``reasoning_content``, ``reasoning``) never reaches
    this text.

    Raises:
        CutOffError: the reasoning block never closes, or nothing is left: the answer was
            cut off at the output cap (the message names ``--max-tokens``).
    """
    text = (completion or "").strip()
    if text.startswith(_THINK_OPEN):
        end = text.find(_THINK_CLOSE)
        if end < 0:
            raise CutOffError(
                "the model's reasoning block never closes: the answer was cut off at the "
                "output cap (raise --max-tokens)"
            )
        text = text[end + len(_THINK_CLOSE) :].strip()
    if text.startswith(_FENCE) and text.endswith(_FENCE) and text.count(_FENCE) == 2:  # noqa: PLR2004
        text = text[len(_FENCE) :].partition("\n")[2].removesuffix(_FENCE).strip()
    if not text:
        raise CutOffError(
            "the model's answer is empty: it may have spent the output cap reasoning "
            "(raise --max-tokens)"
        )
    return text


_CUT_OFF = "the model's answer was cut off at the output cap (raise --max-tokens)"


class _TruncationWatch(logging.Handler):
    """Notes DSPy's warning that a response stopped at the output cap.

    DSPy logs a ``finish_reason`` of ``length`` but does not hand it to the adapter.
    """

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.truncated = False

    def emit(self, record: logging.LogRecord) -> None:
        if "truncated" in record.getMessage():
            self.truncated = True


def _adapter(dspy: Any, watch: _TruncationWatch) -> Any:
    """DSPy's chat adapter (and its JSON fallback) reading through set_aside_reasoning.

    A cut-off answer is not asked again through the JSON fallback: it would be cut off
    the same way.
    """

    class ReasoningAwareJSONAdapter(dspy.JSONAdapter):  # type: ignore[misc]
        def parse(self, signature: Any, completion: str) -> Any:
            return super().parse(signature, set_aside_reasoning(completion))

    class ReasoningAwareChatAdapter(dspy.ChatAdapter):  # type: ignore[misc]
        def parse(self, signature: Any, completion: str) -> Any:
            return super().parse(signature, set_aside_reasoning(completion))

        def _make_json_adapter_fallback(self) -> Any:
            if watch.truncated:
                raise CutOffError(_CUT_OFF)
            return ReasoningAwareJSONAdapter()

    return ReasoningAwareChatAdapter()


def skipped(reason: str) -> dict[str, Any]:
    """The section when no analysis ran."""
    return {"status": "skipped", "reason": reason, "trust": TRUST, "advice": None}


def analyze(
    summary: dict[str, Any],
    *,
    lm: str,
    api_base: str | None,
    api_key: str | None,
    max_tokens: int = DEFAULT_MAX_TOKENS,
) -> dict[str, Any]:
    """Ask a DSPy program for advice; never raises (errors become the section)."""
    # Offline by design: LiteLLM (under DSPy) would otherwise fetch its model price
    # list from the internet on import; the only request made is to the model server.
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    try:
        import dspy
    except ImportError:
        return skipped("DSPy is not installed (pip install dspy, or use --skip-dspy)")
    watch = _TruncationWatch()
    dspy_log = logging.getLogger("dspy.clients.lm")
    dspy_log.addHandler(watch)
    try:
        # No answer cache: each report asks afresh and writes nothing under $HOME.
        model = dspy.LM(lm, api_base=api_base, api_key=api_key, cache=False, max_tokens=max_tokens)
        # The input is "task", not "instructions": a field of that name shadows
        # dspy.Signature.instructions and DSPy fails with a TypeError before any request.
        predict = dspy.Predict("task, plan_summary -> policy_maintenance_advice")
        with dspy.context(lm=model, adapter=_adapter(dspy, watch)):
            result = predict(task=INSTRUCTIONS, plan_summary=json.dumps(summary, sort_keys=True))
        text = str(getattr(result, "policy_maintenance_advice", ""))
        if watch.truncated:  # as the review: an answer cut off at the cap does not count
            raise CutOffError(_CUT_OFF)
    except Exception as e:  # a model failure must not fail the report
        # A cut-off answer says which setting to raise, and never quotes the reasoning.
        reason = str(e) if isinstance(e, CutOffError) else f"{type(e).__name__}: {e}"
        return {
            "status": "error",
            "reason": _CUT_OFF if watch.truncated else inert(reason, 500),
            "trust": TRUST,
            "advice": None,
        }
    finally:
        dspy_log.removeHandler(watch)
    return {"status": "ok", "model": lm, "trust": TRUST, "advice": inert(text)}
