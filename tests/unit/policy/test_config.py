"""Policy config: strict TOML parse, fail-closed loading, overrides, source matching."""

from __future__ import annotations

import contextlib
from importlib import resources
from pathlib import Path

import pytest

from aegis.devtools.policy_plans import DIST_FPR, DIST_URI, VENDOR_FPR, VENDOR_URI, policy_toml
from aegis.errors import InputError
from aegis.policy.config import (
    PolicyConfigError,
    approved_sources,
    match_source,
    parse_policy_config,
    source_allows,
)
from aegis.policy.engine import check_config
from aegis.policy.load import load_policy_config


def test_fixture_policy_parses_with_defaults() -> None:
    config = parse_policy_config(policy_toml())
    assert config.name == "test"
    assert config.approval.count == 1
    assert config.approval.roles == ("approver",)
    assert config.review.allow_skip is True
    assert [s.name for s in approved_sources(config)] == ["dist", "vendor"]
    # Trailing slash dropped from the URI.
    assert config.sources[0].uri == DIST_URI


def test_shipped_default_policy_loads(tmp_path: Path) -> None:
    text = resources.files("aegis.policy").joinpath("default_policy.toml").read_text("utf-8")
    path = tmp_path / "policy.toml"
    path.write_text(text, encoding="utf-8")
    config = load_policy_config(path)
    assert config.ruleset == "aegis.rules/1"
    assert config.sources == ()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "empty"),
        ('format = "aegis.policy-config/1"', "no ruleset"),
        ('ruleset = "aegis.rules/1"', "format must be"),
        (policy_toml(extra="surprise = 1\n"), "unknown key(s) surprise"),
        (policy_toml(extra="[approval]\ncount = 0\n"), "approval.count"),
        (policy_toml(extra="[approval]\ncount = 1.5\n"), "approval.count"),
        (policy_toml(extra='[rules."kernel.change"]\neffect = "maybe"\n'), "effect: must be"),
        (policy_toml(extra='[rules."kernel.change"]\nwhen = 1\n'), "unknown key(s) when"),
        (policy_toml(extra="[[sources]]\nname = 'x'\n"), "sources[2]."),
        (
            policy_toml(review_required=None, extra="[review]\npublic_keys = ['zz']\n"),
            "review.public_keys",
        ),
        (
            policy_toml(
                review_required=None, extra="[review]\nrequired = false\nallow_skip = false\n"
            ),
            "needs allow_skip",
        ),
        ("= broken", "not valid TOML"),
    ],
    ids=[
        "empty",
        "no-ruleset",
        "no-format",
        "unknown-key",
        "zero-approvals",
        "float",
        "bad-effect",
        "override-unknown-key",
        "source-missing-uri",
        "bad-key",
        "skip-conflict",
        "not-toml",
    ],
)
def test_malformed_policy_is_refused(text: str, message: str) -> None:
    with pytest.raises(PolicyConfigError) as info:
        parse_policy_config(text)
    assert message in info.value.message
    assert isinstance(info.value, InputError)


def test_bad_fingerprint_and_distribution_with_packages_refused() -> None:
    bad_fpr = policy_toml().replace(DIST_FPR, "1234")
    with pytest.raises(PolicyConfigError, match="full hex fingerprint"):
        parse_policy_config(bad_fpr)
    dist_pkgs = policy_toml().replace("distribution = true", 'distribution = true\npackages=["a"]')
    with pytest.raises(PolicyConfigError, match="may supply any package"):
        parse_policy_config(dist_pkgs)


def test_absent_unreadable_and_empty_files_fail_closed(tmp_path: Path) -> None:
    with pytest.raises(PolicyConfigError, match="absent rule set denies") as info:
        load_policy_config(tmp_path / "nope.toml")
    assert info.value.hint is not None
    assert "aegis policy init" in info.value.hint
    empty = tmp_path / "empty.toml"
    empty.write_text("", encoding="utf-8")
    with pytest.raises(PolicyConfigError, match="empty"):
        load_policy_config(empty)
    binary = tmp_path / "bin.toml"
    binary.write_bytes(b"\xff\xfe")
    with pytest.raises(PolicyConfigError, match="not UTF-8"):
        load_policy_config(binary)
    # A directory cannot be read as a file, even by root.
    with pytest.raises(PolicyConfigError, match="cannot read"):
        load_policy_config(tmp_path)


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ('[rules."repo.untrusted"]\neffect = "allow"', "looser than deny"),
        ('[rules."kernel.change"]\neffect = "allow-with-snapshot"', "looser than require-approval"),
        ('[rules."command.metachar"]\nenabled = false', "cannot be disabled"),
        ('[approval]\ncount = 2\n[rules."apt.removal"]\napprovals = 1', "fewer than the default"),
        ('[rules."no.such-rule"]\neffect = "deny"', "no such rule"),
    ],
    ids=["deny-to-allow", "approval-to-snapshot", "disable", "fewer-approvals", "unknown-rule"],
)
def test_overrides_cannot_loosen_non_overridable_rules(
    tmp_path: Path, override: str, message: str
) -> None:
    path = tmp_path / "policy.toml"
    path.write_text(policy_toml(extra=override + "\n"), encoding="utf-8")
    with pytest.raises(PolicyConfigError, match=message):
        load_policy_config(path)


def test_overrides_may_tighten_and_overridable_rules_may_loosen(tmp_path: Path) -> None:
    path = tmp_path / "policy.toml"
    path.write_text(
        policy_toml(
            extra=(
                '[rules."kernel.change"]\neffect = "deny"\n'
                '[rules."apt.removal"]\napprovals = 2\nroles = ["security"]\n'
                '[rules."apt.held-back"]\neffect = "allow"\n'
                '[rules."vuln.db-missing"]\nenabled = false\n'
            )
        ),
        encoding="utf-8",
    )
    config = load_policy_config(path)
    check_config(config)
    assert config.rules["kernel.change"].effect == "deny"
    assert config.rules["vuln.db-missing"].enabled is False


def test_unknown_ruleset_refused(tmp_path: Path) -> None:
    path = tmp_path / "policy.toml"
    path.write_text(policy_toml().replace("aegis.rules/1", "aegis.rules/99"), encoding="utf-8")
    with pytest.raises(PolicyConfigError, match="unknown ruleset"):
        load_policy_config(path)


def test_shadow_file_is_loaded_and_may_not_chain(tmp_path: Path) -> None:
    (tmp_path / "next.toml").write_text(
        policy_toml(extra='[rules."kernel.change"]\neffect = "deny"\n').replace(
            'name = "test"', 'name = "next"'
        ),
        encoding="utf-8",
    )
    path = tmp_path / "policy.toml"
    path.write_text(policy_toml(extra='[shadow]\npath = "next.toml"\n'), encoding="utf-8")
    config = load_policy_config(path)
    assert config.shadow is not None
    assert config.shadow.name == "next"
    (tmp_path / "next.toml").write_text(
        policy_toml(extra='[shadow]\npath = "policy.toml"\n'), encoding="utf-8"
    )
    with pytest.raises(PolicyConfigError, match="may not name its own shadow"):
        load_policy_config(path)
    (tmp_path / "next.toml").unlink()
    with pytest.raises(PolicyConfigError, match="absent rule set"):
        load_policy_config(path)


def test_match_source_uses_identity_never_origin() -> None:
    config = parse_policy_config(policy_toml())
    dist = match_source(config, DIST_URI + "/", "stable", "main", DIST_FPR.lower())
    assert dist is not None
    assert dist.name == "dist"
    assert match_source(config, DIST_URI, "stable", "main", VENDOR_FPR) is None
    assert match_source(config, DIST_URI, "unstable", "main", DIST_FPR) is None
    assert match_source(config, DIST_URI, "stable", "contrib", DIST_FPR) is None
    assert match_source(config, DIST_URI, "stable", "main", None) is None
    vendor = match_source(config.sources, VENDOR_URI, "stable", "main", VENDOR_FPR)
    assert vendor is not None
    assert source_allows(vendor, "vendor-agent")
    assert not source_allows(vendor, "openssl")
    assert source_allows(dist, "openssl")


def test_arbitrary_text_is_a_config_or_one_policy_config_error() -> None:
    from hypothesis import given, settings
    from hypothesis import strategies as st

    keys = st.sampled_from(
        ["format", "ruleset", "name", "approval", "sources", "rules", "shadow", "x", "count"]
    )
    values = st.one_of(
        st.integers(-3, 3).map(str),
        st.text(max_size=8).map(lambda t: '"' + t.replace('"', "").replace("\\", "") + '"'),
        st.just("[]"),
        st.just("true"),
        st.just("1.5"),
        st.just('["a", 1]'),
    )
    lines = st.lists(
        st.one_of(
            st.tuples(keys, values).map(lambda kv: f"{kv[0]} = {kv[1]}"),
            st.sampled_from(["[approval]", "[[sources]]", '[rules."apt.removal"]', "[review]"]),
        ),
        max_size=8,
    )

    @settings(max_examples=300, deadline=None)
    @given(lines)
    def check(body: list[str]) -> None:
        with contextlib.suppress(PolicyConfigError):
            check_config(parse_policy_config("\n".join(body)))

    check()


def test_every_load_reads_the_file_again(tmp_path: Path) -> None:
    # Loads of identical bytes share one parse; a change, or a removed file, is seen at once.
    path = tmp_path / "policy.toml"
    path.write_text(policy_toml(), encoding="utf-8")
    assert load_policy_config(path) is load_policy_config(path)
    path.write_text(policy_toml().replace('name = "test"', 'name = "edited"'), encoding="utf-8")
    assert load_policy_config(path).name == "edited"
    path.write_text("not = [toml", encoding="utf-8")
    with pytest.raises(PolicyConfigError):
        load_policy_config(path)
    path.unlink()
    with pytest.raises(PolicyConfigError, match="absent rule set"):
        load_policy_config(path)
