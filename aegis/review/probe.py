"""``aegis review --probe``: does the configured model server give reviews that count?

One canned request, as an operator runs it after configuring a model: is the endpoint
reachable, does ``/v1/models`` list the configured model, which ``response_format`` the
server honoured (json_schema, json_object or none), and does the answer parse into the
review schema. The result is written to ``<state>/review-probe.json`` so ``aegis doctor``
can show the last probe. The canned plan is not a real one and nothing is recorded on a
request; the probe never signs anything.

Example:
    >>> probe(cfg, now).ok
    True
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from aegis.config import Config

PROBE_FILE = "review-probe.json"
_SYSTEM = (
    "You review a Debian package change for risk. Answer with one JSON object with the "
    'fields "risk" (low, medium, high, critical), "flags" (a list, usually empty), '
    '"recommendation" (no-objection, require-approval, deny) and "summary" (one sentence).'
)
_USER = "Probe: upgrade of one package (hello 2.10-3 -> 2.10-3+b1) from the approved archive."


@dataclass(frozen=True)
class ProbeResult:
    """What one probe found; ``ok`` only when a review from this server would count."""

    endpoint: str
    model: str | None
    reachable: bool
    model_listed: bool | None
    """None: the server has no usable /v1/models; the chat answer still decides."""
    response_format: str | None
    answer_parses: bool
    detail: str
    latency_ms: int
    probed_at: str
    reasoning: tuple[str, ...] = ()
    """The reasoning controls (ai_reasoning) the server accepted with the answer."""

    @property
    def ok(self) -> bool:
        """True when the answer parsed and the model is not known to be missing."""
        return self.reachable and self.answer_parses and self.model_listed is not False


def probe(cfg: Config, now: datetime) -> ProbeResult:
    """Probe the configured endpoint (see the module doc)."""
    import os

    from aegis.review.client import chat, endpoint_label, list_models
    from aegis.review.parse import Rejected, parse_answer, parse_envelope
    from aegis.review.service import API_KEY_ENV

    key = os.environ.get(API_KEY_ENV) or None
    label = endpoint_label(cfg.ai_base_url)
    at = now.strftime("%Y-%m-%dT%H:%M:%SZ")
    if not cfg.ai_model:
        return ProbeResult(label, None, False, None, None, False, "no model configured", 0, at)
    status, ids = list_models(cfg.ai_base_url, timeout_s=cfg.ai_timeout_s, api_key=key)
    listed = (cfg.ai_model in ids) if status == "ok" else None
    messages = [{"role": "system", "content": _SYSTEM}, {"role": "user", "content": _USER}]
    result = chat(
        cfg.ai_base_url,
        cfg.ai_model,
        messages,
        timeout_s=cfg.ai_timeout_s,
        max_tokens=cfg.ai_max_tokens,
        api_key=key,
        reasoning=cfg.ai_reasoning,
    )
    if result.status != "ok":
        return ProbeResult(
            label, cfg.ai_model, False, listed, None, False, result.reason, result.latency_ms, at
        )
    content = parse_envelope(result.body)
    answer = parse_answer(content.text) if not isinstance(content, Rejected) else content
    parses = not isinstance(answer, Rejected)
    detail = answer.reason if isinstance(answer, Rejected) else "the answer parses"
    if listed is False:
        detail += f"; /v1/models does not list {cfg.ai_model!r} (served: {', '.join(ids[:5])})"
    return ProbeResult(
        label,
        cfg.ai_model,
        True,
        listed,
        result.response_format,
        parses,
        detail,
        result.latency_ms,
        at,
        result.reasoning,
    )


def probe_path(cfg: Config) -> Path:
    """Where the last probe's result is kept."""
    # In reviews/ (2770, not sticky), not the sticky top level: there one member could
    # not replace the file another member's probe wrote.
    return cfg.reviews_dir / PROBE_FILE


def record_probe(cfg: Config, result: ProbeResult) -> Path:
    """Write the probe's result for ``aegis doctor`` (canonical JSON, atomic)."""
    from aegis.canonical import canonical_bytes
    from aegis.codec import to_dict
    from aegis.workflow.files import write_atomic

    doc = {**to_dict(result), "ok": result.ok}
    return write_atomic(probe_path(cfg), canonical_bytes(doc), host_install=cfg.home is None)
