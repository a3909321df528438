"""Pure parsers of apt output, on recorded output (tests/assets/apt/*.out)."""

from __future__ import annotations

from pathlib import Path

import pytest

from aegis.ecosystems.apt import parse as apt
from aegis.errors import InputError
from aegis.model import Action

ASSETS = Path(__file__).resolve().parents[3] / "assets" / "apt"


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


# Two builds of aegis-dup 2.0 as `apt-cache show aegis-dup` prints them (apt 2.6): same
# Filename in two repositories, different size and hashes (docs/apt-trust.md).
_TWO_BUILDS = """Package: aegis-dup
Version: 2.0
Filename: pool/main/aegis-dup_2.0~rc1_all.deb
Size: 656
MD5sum: bf0a81225b78395b3a5ec045ce19c80c
SHA256: {a}
Description: stable build

Package: aegis-dup
Version: 2.0
Filename: pool/main/aegis-dup_2.0~rc1_all.deb
Size: 730
MD5sum: 58f492732a31ca0bf8cd0a2978f623c8
SHA256: {b}
Description: rebuild build

Package: aegis-dup
Version: 1.0
Filename: pool/main/aegis-dup_1.0_all.deb
Size: 700
SHA256: {c}
""".format(a="a" * 64, b="b" * 64, c="c" * 64)

_REBUILD_URI = "'file:/srv/b/pool/main/aegis-dup_2.0%7erc1_all.deb' aegis-dup_2.0~rc1_all.deb 730"


def test_install_print_uris_lines_keep_the_hash_apt_printed_or_none() -> None:
    with_md5, local = apt.parse_print_uris(
        f"{_REBUILD_URI} MD5Sum:58F492732A31CA0BF8CD0A2978F623C8\n"
        "'file:/var/lib/aegis/aegisd/rollback-cache/s/x.deb' x_1.0_all.deb 658 \n"
    )
    assert (with_md5.size, with_md5.hash_type, with_md5.sha256) == (730, "MD5Sum", None)
    assert with_md5.hash_value == "58f492732a31ca0bf8cd0a2978f623c8"
    assert (local.filename, local.hash_type, local.hash_value) == ("x_1.0_all.deb", "", "")


def test_the_record_of_the_file_apt_downloads_is_picked_among_builds() -> None:
    records = apt.parse_control_records(_TWO_BUILDS)
    [dl] = apt.parse_print_uris(f"{_REBUILD_URI} MD5Sum:58f492732a31ca0bf8cd0a2978f623c8\n")
    rec, problem = apt.pick_build(dl, records, "aegis-dup", "2.0")
    assert (rec or {}).get("SHA256") == "b" * 64
    assert problem == ""
    assert not apt.download_matches(dl, records[0])  # the first build shown is not it
    assert apt.download_hash_compared(dl, records[1])


def test_builds_the_download_set_cannot_tell_apart_are_ambiguous() -> None:
    # Same size, and apt printed no hash (an index without MD5sum): two files fit.
    same_size = _TWO_BUILDS.replace("Size: 730", "Size: 656")
    records = apt.parse_control_records(same_size)
    [dl] = apt.parse_print_uris(_REBUILD_URI.replace(" 730", " 656") + "\n")
    assert not apt.download_hash_compared(dl, records[0])
    rec, problem = apt.pick_build(dl, records, "aegis-dup", "2.0")
    assert rec is None
    assert "2 builds in the signed indexes match" in problem
    # A file no record describes (another size): none.
    [odd] = apt.parse_print_uris(_REBUILD_URI.replace(" 730", " 999") + "\n")
    assert apt.pick_build(odd, records, "aegis-dup", "2.0")[1].startswith("aegis-dup 2.0: no build")
    # A hash that differs rules a record out even at the same size.
    [md5] = apt.parse_print_uris(_REBUILD_URI.replace(" 730", " 656") + " MD5Sum:" + "0" * 32)
    assert apt.pick_build(md5, records, "aegis-dup", "2.0")[0] is None
