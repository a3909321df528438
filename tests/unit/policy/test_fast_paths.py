"""The policy bench's fast paths decide and hash exactly as before.

Plan hashes are recorded in stores and signatures, so the bench plans' hashes and the
decision bytes are pinned to the values the code gave before any of these speed-ups.
The split name matcher must answer as ``fnmatch`` does for every pattern shape, and the
command preview's one-regex check must leave the per-element answers unchanged.
"""

from __future__ import annotations

import fnmatch
import re
from dataclasses import replace
from datetime import datetime

from hypothesis import given, settings
from hypothesis import strategies as st

from aegis.canonical import canonical_hash, sha256_hex
from aegis.codec import _to_dict_generic
from aegis.devtools.policy_plans import NOW, clean_plan, policy_toml
from aegis.devtools.sample_plans import sample_plan
from aegis.model import plan_hash
from aegis.policy.config import NameMatcher, parse_policy_config
from aegis.policy.engine import evaluate
from aegis.policy.result import result_bytes
from aegis.policy.rules_repo import _ARGV_SAFE

# Computed by the code before the policy figure's work (integ at 77f68fe).
PINNED_PLAN_HASHES = {
    "clean-500": "6b464860a02ebe98e212617cbe01fc106b84ca3c4ab031b31c6f9cad56c85be5",
    "clean-1": "4814e516df1e898cd1c9cb9fe2a08653de9726d3c8679260c808af65188d4839",
    "sample": "ef3beda1fa93a7b25d3d4651021428bee53a97b1cbec22ccb1b0a2a6030e9cc2",
}
PINNED_DECISION_500 = "3286a879b77678287fc5dfe721ed21c4af532cd6b6fa1447649956b36d10edec"


def test_plan_hashes_are_the_recorded_ones() -> None:
    plans = {
        "clean-500": clean_plan(packages=500),
        "clean-1": clean_plan(packages=1),
        "sample": sample_plan("r-1"),
    }
    for name, plan in plans.items():
        assert plan_hash(plan) == PINNED_PLAN_HASHES[name], name
        # and the reference conversion still agrees with the fast one
        assert canonical_hash(_to_dict_generic(plan)) == PINNED_PLAN_HASHES[name], name


def test_bench_decision_bytes_are_the_recorded_ones() -> None:
    now = datetime.fromisoformat(NOW.replace("Z", "+00:00"))
    config = parse_policy_config(policy_toml())
    result = evaluate(clean_plan(packages=500), None, config, now)
    assert sha256_hex(result_bytes(result)) == PINNED_DECISION_500


_PART = st.text(alphabet="ab-*?[]!\n.", max_size=6)


@settings(max_examples=400, deadline=None)
@given(patterns=st.lists(_PART, max_size=5), names=st.lists(_PART, max_size=8))
def test_name_matcher_answers_as_fnmatch(patterns: list[str], names: list[str]) -> None:
    matcher = NameMatcher(tuple(patterns))
    # fnmatchcase's own regex per pattern is the reference (case-sensitive, whole name)
    want = [any(re.match(fnmatch.translate(p), n) for p in patterns) for n in names]
    assert [matcher(n) for n in names] == want
    assert matcher.flags(names) == want


def test_matcher_shapes() -> None:
    m = NameMatcher(("libssl*", "sudo", "lib?pam", "x[0-9]"))
    assert m.exact == frozenset({"sudo"})
    assert m.prefixes == ("libssl",)
    assert [m(n) for n in ("libssl3", "sudo", "sudo2", "libxpam", "x7", "libssl\n", "sudo\n")] == [
        True, True, False, True, True, True, False,
    ]  # fmt: skip


def test_command_preview_check_keeps_its_answers() -> None:
    now = datetime.fromisoformat(NOW.replace("Z", "+00:00"))
    config = parse_policy_config(policy_toml())
    base = clean_plan(packages=3)

    def metachar(extra: tuple[str, ...]) -> tuple[str, ...] | None:
        plan = replace(base, command_preview=base.command_preview + extra)
        fired = {f.rule_id: f for f in evaluate(plan, None, config, now).fired}
        hit = fired.get("command.metachar")
        return hit.subjects if hit else None

    def per_element(extra: tuple[str, ...]) -> tuple[str, ...] | None:
        return tuple(a for a in extra if not _ARGV_SAFE.match(a)) or None

    assert metachar(()) is None
    assert metachar(("a;b", "ok", "$(x)")) == ("a;b", "$(x)")
    # The one-regex check only ever short-cuts to "nothing found": it answers as the
    # per-element regex does.
    for extra in [("",), ("pkg\n",), ("pkg\n\n",), ("a b",), ("x", "y\n", "z\t")]:
        assert metachar(extra) == per_element(extra), extra


def test_a_trailing_newline_is_a_metacharacter() -> None:
    """``$`` matches before a final newline: an element ``pkg\\n`` once passed as plain argv."""
    now = datetime.fromisoformat(NOW.replace("Z", "+00:00"))
    config = parse_policy_config(policy_toml())
    base = clean_plan(packages=3)
    plan = replace(base, command_preview=(*base.command_preview, "pkg\n"))
    fired = {f.rule_id: f for f in evaluate(plan, None, config, now).fired}
    assert fired["command.metachar"].subjects == ("pkg\n",)
