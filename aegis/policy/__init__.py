"""Stage 3: the deterministic policy.

Public API (other stages code against these names):

- :func:`aegis.policy.engine.evaluate` ``(plan, review, policy_config, now) -> PolicyResult``:
  pure; ``review`` is the parsed review record (:func:`aegis.policy.review_gate.parse_review`
  of the stored bytes) or None; ``policy_config`` a
  :class:`~aegis.policy.config.PolicyConfig` or
  :class:`~aegis.policy.config.PolicyUnavailable` (denies).
- :func:`aegis.policy.run.load_policy` ``(cfg)``: the policy in force, fail closed, with
  aegis-reviewd's key from ``<etc>/keys/review.pub`` when the file names none.
- :func:`aegis.policy.engine.is_current` ``(result, config)``: the result was made by
  this rule set and config (``aegisctl sign`` refuses stale decisions).
- :mod:`aegis.policy.result`: the ``aegis.policy/1`` record; ``result_from_bytes`` parses a
  policy file strictly, ``result_hash`` is the SHA-256 of its canonical bytes (the file).
  ``controls.approval`` ``{count, roles}`` and ``controls.snapshot`` are the required controls.
- :func:`aegis.policy.config.approved_sources`, ``match_source``, ``source_allows``: for the
  apt analyzer to mark repositories approved and allowed packages.
- ``aegis policy <plan.json> [--explain] [--json] [--dry-run] [--at TIME]``, ``aegis policy
  init|check|rules`` (:mod:`aegis.cli.cmd_policy`).
"""
