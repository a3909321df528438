"""Pure evidence helpers: sources, Signed-By forms, apt config flags, state hash."""

# ruff: noqa: E501  (expected-value tables read best on one line)

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

from aegis.ecosystems.apt.evidence.aptconfig import assess_apt_config
from aegis.ecosystems.apt.evidence.release import assess_release, parse_gpgv_status, release_sha256
from aegis.ecosystems.apt.evidence.sources import (
    parse_deb822,
    parse_one_line,
    resolve_apt_paths,
    signed_by_form,
    uri_to_filename,
)
from aegis.ecosystems.apt.state import StateInputs, package_state_hash

FPR = "6E5F118784F866DE7E1ACE844AA30A6B01A79418"


def test_one_line_and_deb822() -> None:
    (a, b) = parse_one_line(
        "# c\ndeb [signed-by=/etc/apt/keyrings/x.gpg arch=amd64] http://h/d/ bookworm main contrib\n"
        "deb-src http://h/d bookworm main\n",
        "/f.list",
    )
    assert (a.uri, a.suite, a.component, b.component) == (
        "http://h/d",
        "bookworm",
        "main",
        "contrib",
    )
    assert a.signed_by_form == "keyring-path"
    assert (
        a.one_line()
        == "deb [signed-by=/etc/apt/keyrings/x.gpg arch=amd64] http://h/d bookworm main"
    )
    (c,) = parse_one_line("deb [trusted=yes] http://h/d s main\n", "/f")
    assert c.trusted_yes
    assert c.signed_by_form == "none"
    entries = parse_deb822(
        "Types: deb deb-src\nURIs: http://h/d\nSuites: s s-updates\nComponents: main\n"
        f"Signed-By: {FPR}\n\nTypes: deb\nURIs: http://x\nSuites: s\nComponents: main\nEnabled: no\n",
        "/f.sources",
    )
    assert [(e.suite, e.signed_by_form) for e in entries] == [
        ("s", "fingerprint"),
        ("s-updates", "fingerprint"),
    ]


def test_signed_by_forms() -> None:
    assert signed_by_form(None) == "none"
    assert signed_by_form("/k.gpg") == "keyring-path"
    assert signed_by_form("/k.asc") == "armored-path"
    assert signed_by_form(FPR + "!") == "fingerprint"
    assert signed_by_form("-----BEGIN PGP PUBLIC KEY BLOCK-----\n\nabc\n-----END PGP") == "embedded"


def test_uri_to_filename_matches_apt() -> None:
    assert (
        uri_to_filename("http://deb.debian.org/debian/dists/bookworm/")
        == "deb.debian.org_debian_dists_bookworm_"
    )
    assert uri_to_filename("file:/tmp/r/dists/s/") == "_tmp_r_dists_s_"
    assert uri_to_filename("https://u:p@h:8080/a_b/") == "h:8080_a%5fb_"


def test_apt_paths_resolution() -> None:
    p = resolve_apt_paths(
        [
            ("Dir", "/"),
            ("Dir::State", "var/lib/apt/"),
            ("Dir::State::lists", "lists/"),
            ("Dir::Etc", "etc/apt/"),
            ("Dir::Etc::sourceparts", "sources.list.d"),
        ]
    )
    assert (p.lists, p.sourceparts, p.sourcelist) == (
        "/var/lib/apt/lists/",
        "/etc/apt/sources.list.d/",
        "/etc/apt/sources.list",
    )


def test_config_flags() -> None:
    dump = (
        'Acquire::AllowInsecureRepositories "true";\nAPT::Get::AllowUnauthenticated "1";\n'
        'Acquire::Check-Valid-Until "false";\nDPkg::Pre-Invoke "";\nDPkg::Pre-Invoke:: "echo hi";\n'
        'DPkg::Post-Invoke:: "x";\nAPT::Update::Post-Invoke-Success:: "y";\n'
    )
    ev = assess_apt_config(dump, {}, trusted_yes=True)
    assert ev.flags == (
        "allow-insecure",
        "allow-unauthenticated",
        "apt-hooks",
        "check-valid-until-false",
        "dpkg-post-invoke",
        "dpkg-pre-invoke",
        "trusted-yes",
    )
    assert "DPkg::Pre-Invoke: echo hi" in ev.hooks
    clean = assess_apt_config('APT::Architecture "amd64";\n', {}, trusted_yes=False)
    assert clean.flags == ()
    assert clean.apt_config_hash != ev.apt_config_hash


def test_gpgv_status_parsing() -> None:
    good = f"[GNUPG:] GOODSIG X n\n[GNUPG:] VALIDSIG {FPR} 2026 1 0 4 0 22 8 01 {FPR}\n"
    assert parse_gpgv_status(good) == ("good", FPR)
    assert parse_gpgv_status("[GNUPG:] BADSIG X n\n")[0] == "bad"
    assert (
        parse_gpgv_status("[GNUPG:] ERRSIG X 22 8 01 1 9 -\n[GNUPG:] NO_PUBKEY X\n")[0]
        == "no-pubkey"
    )


def test_release_assessment() -> None:
    now = datetime(2026, 8, 1, tzinfo=UTC)  # 212 days: past the 180-day window
    text = "Origin: Debian\nDate: Sat, 01 Jan 2026 00:00:00 UTC\nSHA256:\n ab 12 main/binary-amd64/Packages\n"
    date, until, expired, frozen, origin = assess_release(text, now)
    assert (date, until, expired, frozen, origin) == (
        "2026-01-01T00:00:00Z",
        None,
        False,
        True,
        "Debian",
    )
    text2 = text + "Valid-Until: Mon, 01 Jun 2026 00:00:00 UTC\n"
    assert assess_release(text2, datetime(2026, 6, 2, tzinfo=UTC))[2] is True
    assert release_sha256(text) == {"main/binary-amd64/Packages": "ab"}


def test_state_hash_covers_every_input() -> None:
    base = StateInputs("s", {"r": "1"}, {"src": "1"}, {"k": "1"}, {}, "apt", "dpkg")
    h = package_state_hash(base)
    assert package_state_hash(replace(base)) == h
    for changed in (
        replace(base, status="t"),
        replace(base, release_files={"r": "2"}),
        replace(base, sources={"src": "2"}),
        replace(base, keyrings={"k": "2"}),
        replace(base, preferences={"p": "1"}),
        replace(base, apt_config_hash="x"),
        replace(base, dpkg_config_hash="y"),
    ):
        assert package_state_hash(changed) != h
