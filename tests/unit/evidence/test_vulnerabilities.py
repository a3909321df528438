"""Tracker parsing (strict), the stored index, matching by source and version, severity map."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aegis.analyze.debversion import compare_versions, version_key
from aegis.analyze.evidence.vulnerabilities import (
    CRITICAL_URGENCIES,
    VulnIndex,
    index_from_dict,
    index_to_dict,
    is_critical,
    match,
    parse_tracker,
)
from aegis.errors import InputError
from aegis.model import Action, PackageChange

DATE = "2026-11-01T00:00:00Z"
NOW = "2026-11-02T00:00:00Z"


def _rel(status: str, urgency: str, fixed: str | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"status": status, "urgency": urgency, "repositories": {"bookworm": "1"}}
    if fixed is not None:
        out["fixed_version"] = fixed
    return out


def _doc(entries: dict[str, dict[str, dict[str, Any]]]) -> bytes:
    return json.dumps(
        {
            src: {cve: {"description": "d", "releases": rels} for cve, rels in cves.items()}
            for src, cves in entries.items()
        }
    ).encode()


def _index(entries: dict[str, dict[str, dict[str, Any]]], release: str = "bookworm") -> VulnIndex:
    return parse_tracker(_doc(entries), release=release, date=DATE, imported_at=NOW)


OPENSSL = {
    "openssl": {
        "CVE-2024-0001": {"bookworm": _rel("resolved", "high", "3.0.2")},
        "CVE-2024-0002": {"bookworm": _rel("open", "medium")},
        "CVE-2024-0003": {"bookworm": _rel("resolved", "low", "0")},
        "CVE-2024-0004": {"trixie": _rel("open", "high")},
    }
}


def _change(
    name: str,
    action: Action,
    current: str | None,
    candidate: str | None,
    source: str | None = None,
    source_version: str | None = None,
) -> PackageChange:
    return PackageChange(
        name=name,
        arch="amd64",
        action=action,
        current_version=current,
        candidate_version=candidate,
        source_package=source or name,
        source_version=source_version,
        repository=None,
    )


def _m(*changes: PackageChange) -> set[tuple[str, str, str | None, bool, bool]]:
    return {
        (v.package, v.cve, v.fixed_version, v.fixed_by_plan, v.critical)
        for v in match(changes, _index(OPENSSL))
    }


def test_libssl3_vulnerable_through_source_openssl() -> None:
    found = _m(_change("libssl3", Action.INSTALL, None, "3.0.1", source="openssl"))
    assert found == {
        ("libssl3", "CVE-2024-0001", "3.0.2", False, True),
        ("libssl3", "CVE-2024-0002", None, False, False),
    }


def test_fixed_version_clears_it_on_install() -> None:
    found = _m(_change("libssl3", Action.INSTALL, None, "3.0.2", source="openssl"))
    assert found == {("libssl3", "CVE-2024-0002", None, False, False)}


def test_upgrade_to_fix_is_recorded_as_fixed_by_plan() -> None:
    found = _m(_change("libssl3", Action.UPGRADE, "3.0.1", "3.0.2", source="openssl"))
    assert ("libssl3", "CVE-2024-0001", "3.0.2", True, True) in found


def test_already_fixed_installed_is_not_a_match() -> None:
    found = _m(_change("libssl3", Action.UPGRADE, "3.0.2", "3.0.3", source="openssl"))
    assert {cve for _, cve, *_ in found} == {"CVE-2024-0002"}


def test_downgrade_below_fix_matches() -> None:
    found = _m(_change("libssl3", Action.DOWNGRADE, "3.0.2", "3.0.1", source="openssl"))
    assert ("libssl3", "CVE-2024-0001", "3.0.2", False, True) in found


def test_binary_name_alone_does_not_match_source() -> None:
    assert _m(_change("libssl3", Action.INSTALL, None, "3.0.1")) == set()


def test_removal_is_skipped_and_held_back_uses_current() -> None:
    assert _m(_change("libssl3", Action.REMOVE, "3.0.1", None, source="openssl")) == set()
    held = _m(_change("libssl3", Action.HELD_BACK, "3.0.1", "3.0.2", source="openssl"))
    assert ("libssl3", "CVE-2024-0001", "3.0.2", False, True) in held


def test_source_version_is_compared_when_binary_differs() -> None:
    # A binNMU-style binary version below the fix, source version at the fix.
    found = _m(
        _change(
            "libssl3", Action.INSTALL, None, "3.0.1+b1", source="openssl", source_version="3.0.2"
        )
    )
    assert {cve for _, cve, *_ in found} == {"CVE-2024-0002"}


@pytest.mark.parametrize(
    ("version", "fixed", "vulnerable"),
    [
        ("1:1.0", "2.0", False),
        ("1.0~rc1", "1.0", True),
        ("1.0", "1.0~rc1", False),
        ("3.0.11-1~deb12u2", "3.0.13-1~deb12u1", True),
        ("2.36-9+deb12u4", "2.36-9+deb12u4", False),
    ],
    ids=["epoch", "tilde-before", "tilde-after", "deb12u", "equal"],
)
def test_debian_version_order(version: str, fixed: str, vulnerable: bool) -> None:
    index = _index({"x": {"CVE-2024-1000": {"bookworm": _rel("resolved", "high", fixed)}}})
    assert bool(match([_change("x", Action.INSTALL, None, version)], index)) is vulnerable


@pytest.mark.parametrize(
    ("urgency", "critical"),
    [
        ("high", True),
        ("not yet assigned", True),
        ("medium", False),
        ("low", False),
        ("unimportant", False),
        ("end-of-life", False),
        ("high**", True),
    ],
)
def test_severity_mapping(urgency: str, critical: bool) -> None:
    assert is_critical(urgency) is critical


def test_critical_set_is_documented() -> None:
    import aegis.analyze.evidence.vulnerabilities as mod

    assert mod.__doc__ is not None
    for urgency in CRITICAL_URGENCIES:
        assert urgency in mod.__doc__


def test_other_release_is_ignored() -> None:
    index = _index(OPENSSL, release="trixie")
    assert [e.cve for e in index.entries["openssl"]] == ["CVE-2024-0004"]


def test_index_round_trip() -> None:
    index = _index(OPENSSL)
    again = index_from_dict(json.loads(json.dumps(index_to_dict(index))))
    assert again == index
    assert again.entry_count == 2  # fixed_version "0" and the other release are dropped


def test_an_empty_export_means_no_known_issues() -> None:
    index = parse_tracker(b"{}", release="bookworm", date=NOW, imported_at=NOW)
    assert index.entry_count == 0
    assert index.entries == {}


BAD_TRACKERS = [
    ("not-object", b"[]"),
    ("bad-source", _doc({"Bad Name": {"CVE-2024-0001": {"bookworm": _rel("open", "low")}}})),
    ("bad-cve", _doc({"x": {"CVE-24-1": {"bookworm": _rel("open", "low")}}})),
    ("bad-status", _doc({"x": {"CVE-2024-0001": {"bookworm": _rel("fixed", "low")}}})),
    ("bad-urgency", _doc({"x": {"CVE-2024-0001": {"bookworm": _rel("open", "urgent")}}})),
    ("resolved-no-fix", _doc({"x": {"CVE-2024-0001": {"bookworm": _rel("resolved", "low")}}})),
    (
        "bad-version",
        _doc({"x": {"CVE-2024-0001": {"bookworm": _rel("resolved", "low", "1.0; rm")}}}),
    ),
    ("unknown-key", b'{"x": {"CVE-2024-0001": {"releases": {}, "extra": 1}}}'),
    (
        "unknown-release-key",
        b'{"x": {"CVE-2024-0001": {"releases": {"bookworm": '
        b'{"status": "open", "urgency": "low", "x": 1}}}}}',
    ),
    (
        "duplicate-key",
        b'{"x": {"CVE-2024-0001": {"releases": {}}, "CVE-2024-0001": {"releases": {}}}}',
    ),
    ("float", b'{"x": {"CVE-2024-0001": {"releases": {}, "debianbug": 1.5}}}'),
    ("bug-not-int", b'{"x": {"CVE-2024-0001": {"releases": {}, "debianbug": "1"}}}'),
    ("releases-not-object", b'{"x": {"CVE-2024-0001": {"releases": []}}}'),
    ("not-json", b"{nope"),
    ("not-utf8", b'{"x\xff": {}}'),
]


@pytest.mark.parametrize("data", [d for _, d in BAD_TRACKERS], ids=[i for i, _ in BAD_TRACKERS])
def test_malformed_tracker_refused(data: bytes) -> None:
    with pytest.raises(InputError):
        parse_tracker(data, release="bookworm", date=DATE, imported_at=NOW)


def test_bad_release_name_refused() -> None:
    with pytest.raises(InputError, match="codename"):
        parse_tracker(_doc(OPENSSL), release="../etc", date=DATE, imported_at=NOW)


@pytest.mark.parametrize(
    "doc",
    [
        {},
        {"schema_version": "other"},
        {**index_to_dict(_index(OPENSSL)), "extra": 1},
        {**index_to_dict(_index(OPENSSL)), "packages": {"openssl": [["CVE-2024-0001", "open"]]}},
        {**index_to_dict(_index(OPENSSL)), "packages": {"openssl": [["x", "open", "low", None]]}},
    ],
    ids=["empty", "schema", "extra-key", "short-row", "bad-cve"],
)
def test_stored_index_is_parsed_strictly(doc: dict[str, Any]) -> None:
    with pytest.raises(InputError):
        index_from_dict(doc)


_VERSION_TEXT = st.builds(
    lambda epoch, up, rev: f"{epoch}{up}{rev}",
    st.sampled_from(["", "0:", "1:", "10:"]),
    st.from_regex(r"[0-9][A-Za-z0-9.+~]{0,8}", fullmatch=True),
    st.sampled_from(["", "-0", "-1", "-1~", "-0~a", "-1+b1", "-1~deb12u1", "-10.2", "-a"]),
)


@settings(max_examples=600, deadline=None)
@given(_VERSION_TEXT, _VERSION_TEXT)
def test_version_key_matches_python_debian(a: str, b: str) -> None:
    from debian.debian_support import version_compare

    expected = version_compare(a, b)
    got = (version_key(a) > version_key(b)) - (version_key(a) < version_key(b))
    assert got == (expected > 0) - (expected < 0), (a, b)


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("1.0", "1.0-0"),
        ("1.0~", "1.0"),
        ("1.0-0~", "1.0"),
        ("1:0", "0:9"),
        ("1.0a", "1.0+"),
        ("1.00", "1.0"),
    ],
)
def test_version_key_edge_cases(a: str, b: str) -> None:
    from debian.debian_support import version_compare

    assert ((version_key(a) > version_key(b)) - (version_key(a) < version_key(b))) == (
        (version_compare(a, b) > 0) - (version_compare(a, b) < 0)
    )


def test_version_key_refuses_garbage() -> None:
    with pytest.raises(InputError):
        version_key("not a version!")


@pytest.mark.parametrize(
    "bad", ["", "1.0\n", "\uff11.0", ":1", "~1", "1.0 ", "\u0661:1.0"],
    ids=["empty", "newline", "fullwidth-digit", "leading-colon", "leading-tilde", "space",
         "arabic-epoch"],
)  # fmt: skip
def test_one_grammar_refuses_outside_debian_versions_with_input_error(bad: str) -> None:
    with pytest.raises(InputError):
        compare_versions(bad, "1.0")


def test_huge_numbers_are_input_errors_never_value_errors() -> None:
    """Python refuses int() of 4,300+ digits with ValueError; the comparator refuses first."""
    big = "9" * 5000
    for a in (f"1.{big}", f"{big}:1", f"1.0-{big}"):
        with pytest.raises(InputError, match="not a Debian version"):
            compare_versions(a, "1.0")
    assert compare_versions("1." + "9" * 998, "1." + "9" * 997) > 0
    assert compare_versions("1.0010", "1.10") == 0
