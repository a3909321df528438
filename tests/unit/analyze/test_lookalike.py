"""name.lookalike: names that imitate an installed or depended-upon one (issue 12 item 17)."""

from __future__ import annotations

import pytest

from aegis.analyze.lookalike import lookalike, lookalike_signals
from aegis.ecosystems.apt.dpkg_status import scan_status

REFS = frozenset(
    {"openssl", "nginx", "libssl3", "python3-requests", "curl", "openssh-server", "gcc-12"}
)

CASES = [
    ("0penssl", "openssl", "confusable"),
    ("openssi", "openssl", "confusable"),
    ("ngirnx", "nginx", "edit"),
    ("nginx-official", "nginx", "affix"),
    ("secure-openssh-server", "openssh-server", "affix"),
    ("opnessl", "openssl", "edit"),
    ("opensssl", "openssl", "edit"),
    ("ngimx", "nginx", "edit"),
    ("python3-request", "python3-requests", "edit"),
    # Debian's own naming is not a trick:
    ("libssl1", None, None),
    ("gcc-13", None, None),
    ("nginx-common", None, None),
    ("openssh-client", None, None),
    ("curl2", None, None),
    ("openssl", None, None),  # the name itself
]


@pytest.mark.parametrize(("name", "ref", "kind"), CASES, ids=[c[0] for c in CASES])
def test_lookalike_table(name: str, ref: str | None, kind: str | None) -> None:
    found = lookalike(name, REFS)
    assert found == ((ref, kind) if ref else None)


def test_signals_name_both_packages() -> None:
    [sig] = lookalike_signals(["opnessl", "jq"], REFS)
    assert (sig.name, sig.package, sig.detail) == (
        "name.lookalike",
        "opnessl",
        "opnessl looks like openssl (edit)",
    )


def test_reference_names_from_dpkg_status() -> None:
    status = (
        "Package: nginx\nStatus: install ok installed\nVersion: 1\n"
        "Depends: libssl3 (>= 3), libc6:any | libc6-udeb, nginx-common (= 1)\n\n"
        "Package: gone\nStatus: deinstall ok config-files\nDepends: ghost\n\n"
        "Package: curl\nStatus: install ok installed\nPre-Depends: libcurl4\n"
    )
    assert scan_status(status).references == {
        "nginx",
        "libssl3",
        "libc6",
        "libc6-udeb",
        "nginx-common",
        "curl",
        "libcurl4",
    }


def test_holds_from_dpkg_status() -> None:
    status = (
        "Package: kept\nStatus: hold ok installed\nVersion: 1\n\n"
        "Package: free\nStatus: install ok installed\nVersion: 1\n"
    )
    facts = scan_status(status)
    assert facts.holds == frozenset({"kept"})
    assert facts.references == frozenset({"kept", "free"})
