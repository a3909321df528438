"""Pure parsers of apt output, on recorded output (tests/assets/apt/*.out)."""

from __future__ import annotations

from pathlib import Path

import pytest

from aegis.analyze import apt
from aegis.errors import InputError
from aegis.model import Action

ASSETS = Path(__file__).resolve().parents[2] / "assets" / "apt"


def sim(name: str) -> apt.Simulation:
    return apt.parse_apt_simulation((ASSETS / name).read_text())


def rows(s: apt.Simulation) -> list[tuple[str, str, str | None, str | None]]:
    return [(c.name, c.action.value, c.current_version, c.candidate_version) for c in s.changes]


def test_install_with_dependency() -> None:
    s = sim("install-tool.out")
    assert rows(s) == [
        ("aegis-base", "install", None, "1.2"),
        ("aegis-tool", "install", None, "2.0"),
    ]
    assert s.configure_order == ("aegis-base", "aegis-tool")
    assert s.changes[0].arch == "all"


def test_upgrade_with_held_back() -> None:
    s = sim("upgrade.out")
    assert rows(s) == [
        ("aegis-base", "upgrade", "1.0", "1.2"),
        ("aegis-benign", "upgrade", "1.0", "1.1"),
        ("libssl3", "upgrade", "3.0.1", "3.0.2"),
        ("aegis-held", "held-back", None, None),
    ]
    assert s.held_back == ("aegis-held",)


def test_downgrade_with_removal() -> None:
    s = sim("downgrade-with-dep.out")
    assert rows(s) == [
        ("aegis-tool", "remove", "2.0", None),
        ("aegis-base", "downgrade", "1.2", "1.0"),
    ]


@pytest.mark.parametrize(
    ("name", "action"), [("remove-base.out", "remove"), ("purge-base.out", "purge")]
)
def test_removal_and_purge(name: str, action: str) -> None:
    assert rows(sim(name)) == [
        ("aegis-tool", action, "2.0", None),
        ("aegis-base", action, "1.2", None),
    ]


def test_kernel_and_noop() -> None:
    assert rows(sim("kernel.out")) == [("linux-image-aegis", "install", None, "6.1.0-1")]
    assert sim("noop.out").changes == ()


def test_host_upgrade_multi_origin_and_trailing_brackets() -> None:
    s = sim("host-upgrade.out")
    assert len(s.changes) == 120
    assert all(c.action is Action.UPGRADE for c in s.changes)
    gcrypt = next(c for c in s.changes if c.name == "libgcrypt20")
    assert gcrypt.origins == "Debian:12.15/oldstable, Debian-Security:12/oldstable-security"
    assert len(s.configure_order) == 120


def test_reinstall_and_foreign_arch() -> None:
    s = apt.parse_apt_simulation("Inst libc6:i386 [2.36-9] (2.36-9 Debian:12 [i386])\n")
    assert rows(s) == [("libc6", "reinstall", "2.36-9", "2.36-9")]
    assert s.changes[0].arch == "i386"


def test_epoch_ordering_is_debian_order() -> None:
    s = apt.parse_apt_simulation(
        "Inst a [1:1.0] (2.0 X:s [all])\nInst b [1.0~rc1] (1.0 X:s [all])\n"
    )
    assert [c.action for c in s.changes] == [Action.DOWNGRADE, Action.UPGRADE]


def test_unknown_line_shape_is_refused() -> None:
    with pytest.raises(InputError):
        apt.parse_apt_simulation("Inst garbage\n")


@pytest.mark.parametrize(
    ("stderr", "kind"),
    [
        ("E: Unable to locate package aegis-nosuch\n", "unknown-package"),
        ("E: Version '9' for 'x' was not found\n", "unknown-package"),
        ("E: Unmet dependencies. Try 'apt --fix-broken install'\n", "broken-dependencies"),
        ("E: Could not get lock /var/lib/dpkg/lock-frontend\n", "lock"),
        ("E: something else\n", "tool-failed"),
    ],
)
def test_error_classification(stderr: str, kind: str) -> None:
    assert apt.parse_apt_error(stderr)[0] == kind


def test_policy_parse() -> None:
    text = """aegis-base:
  Installed: 1.2
  Candidate: 1.2
  Version table:
 *** 1.2 500
        500 file:/r aegis-test/main amd64 Packages
        100 /var/lib/dpkg/status
     1.0 500
        500 file:/r aegis-test/main amd64 Packages
"""
    pol = apt.parse_apt_policy(text)["aegis-base"]
    assert (pol.installed, pol.candidate) == ("1.2", "1.2")
    assert pol.versions["1.2"] == (apt.PolicySource(500, "file:/r", "aegis-test", "main", "amd64"),)
    assert set(pol.versions) == {"1.2", "1.0"}


def test_print_uris_and_source_field() -> None:
    line = "'file:/r/pool/a_1.0_all.deb' a_1.0_all.deb 668 SHA256:" + "AB" * 32 + "\n"
    (d,) = apt.parse_print_uris(line)
    assert (d.size, d.sha256) == (668, "ab" * 32)
    assert apt.parse_source_field("libssl3", "3.0.2", "openssl") == ("openssl", "3.0.2")
    assert apt.parse_source_field("x", "1+b1", "y (1)") == ("y", "1")
    assert apt.parse_source_field("x", "1", None) == ("x", "1")


# apt-get update's refusals as each verifier words them (apt 2.6 with gpgv on bookworm,
# apt 3.0 with sqv on trixie; shortened real output of the negative test repositories).
_R = "file:/tmp/r aegis-test InRelease"
_NOT_SIGNED = f"E: The repository '{_R}' is not signed.\n"
_GPGV = f"W: GPG error: {_R}: The following signatures "
_SQV = (
    f"W: OpenPGP signature verification failed: {_R}: Sub-process /usr/bin/sqv returned "
    "an error code (1), error message is: "
)
_FPR = "9B356C0B392DFCC0E8D2A914D09C7FE7C8041C1F"


@pytest.mark.parametrize(
    ("output", "reason"),
    [
        (
            f"{_GPGV}couldn't be verified because the public key is not available: "
            f"NO_PUBKEY D09C7FE7C8041C1F\n{_NOT_SIGNED}",
            "missing-key",
        ),
        (f"{_SQV}Missing key {_FPR}, which is needed to verify signature.\n", "missing-key"),
        (
            f"W: {_R}: The signatures couldn't be verified because no keyring is specified\n"
            f"{_NOT_SIGNED}",
            "missing-key",
        ),
        (f"{_GPGV}were invalid: BADSIG D09C7FE7C8041C1F Aegis\n{_NOT_SIGNED}", "bad-signature"),
        (
            f"{_SQV}Verifying signature:            Message has been manipulated\n{_NOT_SIGNED}",
            "bad-signature",
        ),
        (
            "E: Failed to fetch file:/tmp/r/dists/s/Packages.gz  Hash Sum mismatch\n",
            "hash-mismatch",
        ),
        (f"E: Release file for {_R} is expired (invalid since 1d 0h 0min 3s).\n", "expired"),
        (f"Ign:1 {_R}\n{_NOT_SIGNED}", "unsigned"),
        ("Hit:1 file:/tmp/r aegis-test InRelease\nReading package lists...\n", None),
    ],
)
def test_update_refusal_understands_gpgv_and_sqv(output: str, reason: str | None) -> None:
    assert apt.update_refusal(output) == reason
