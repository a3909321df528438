"""Signed files apt refuses although gpgv accepts them (issue 20 item 3).

Rebuilt from apt's test-cve-2019-3462-Release.gpg-payload, test-bug-921685 and
test-ubuntu-bug-784473: apt splits and checks a signed file before any verifier sees
it. Each scenario breaks a copy of the signed test repository, checks that the
host's apt refuses it, and plans ``aegis apt update --plan`` through the CLI: the
plan names the refusal (``malformed-signed-file``) and policy denies.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from aegis.devtools import testrepo
from aegis.devtools.testrepo_keys import get_key
from aegis.ecosystems.apt.evidence.verifier import SplitError, check_detached_signature
from aegis.policy.result import Effect

from .apt_parity import (
    approve,
    apt_refused,
    apt_update,
    cli_plan,
    config,
    copy_repo,
    decide,
    dist,
    fired,
)


def _detached_only(repo: testrepo.Repo) -> None:
    """Release + Release.gpg only: apt falls back to them when there is no InRelease."""
    (dist(repo) / "InRelease").unlink()


def _append_payload(repo: testrepo.Repo) -> None:
    _detached_only(repo)
    gpg = dist(repo) / "Release.gpg"
    gpg.write_text(gpg.read_text() + "Origin: Debian\nLabel: payload\n")


def _binary_signature(repo: testrepo.Repo) -> None:
    _detached_only(repo)
    key = get_key()
    subprocess.run(
        [
            "gpg", "--batch", "--yes", "--pinentry-mode", "loopback", "--passphrase", "",
            "--local-user", key.fingerprint, "--digest-algo", "SHA256", "--detach-sign",
            "-o", str(dist(repo) / "Release.gpg"), str(dist(repo) / "Release"),
        ],
        env={"GNUPGHOME": str(key.gnupg_home), "PATH": "/usr/bin:/bin"},
        check=True,
        capture_output=True,
    )  # fmt: skip


def _text_before_inrelease(repo: testrepo.Repo) -> None:
    inrelease = dist(repo) / "InRelease"
    inrelease.write_text("Origin: Debian\nValid-Until: Sat, 01 Jan 2099 00:00:00 UTC\n\n"
                         + inrelease.read_text())  # fmt: skip


SCENARIOS = {
    "payload-after-release-gpg": (_append_payload, "contains lines not belonging to a signature"),
    "binary-release-gpg": (_binary_signature, "is in unsupported binary format"),
    "text-before-inrelease": (_text_before_inrelease, "does not start with a signed message"),
}


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_signed_files_apt_refuses_are_refused_before_verification(
    tmp_path: Path, test_repo: testrepo.Repo, scenario: str
) -> None:
    break_it, words = SCENARIOS[scenario]
    repo = copy_repo(test_repo, tmp_path / "repo")
    break_it(repo)
    # gpgv alone accepts the detached cases: the refusal must come from the structure.
    root = testrepo.make_root(tmp_path / "root", [repo])
    out = apt_update(root)
    assert apt_refused(out), out
    cfg = config(tmp_path / "home", root)
    approve(cfg, repo)
    plan = cli_plan(cfg, root, "update")
    (ev,) = plan.repositories
    assert ev.signature == "error"
    malformed = [p for p in ev.problems if p.startswith("malformed-signed-file:")]
    assert malformed, ev.problems
    assert words in malformed[0]
    assert ev.origin_text != "Debian"
    result = decide(cfg, plan)
    assert result.decision is Effect.DENY
    assert "refused before verification as apt does" in fired(result)["repo.untrusted"]


def test_a_clean_detached_signature_is_still_good(tmp_path: Path, test_repo: testrepo.Repo) -> None:
    repo = copy_repo(test_repo, tmp_path / "repo")
    _detached_only(repo)
    root = testrepo.make_root(tmp_path / "root", [repo])
    assert not apt_refused(apt_update(root))
    cfg = config(tmp_path / "home", root)
    approve(cfg, repo)
    (ev,) = cli_plan(cfg, root, "update").repositories
    assert ev.signature == "good", ev.problems
    assert not [p for p in ev.problems if p.startswith("malformed")]


ARMOUR = "-----BEGIN PGP SIGNATURE-----\n\niQ==\n=abcd\n-----END PGP SIGNATURE-----\n"


@pytest.mark.parametrize(
    ("raw", "why"),
    [
        (b"", "NODATA"),
        (b"\x89\x01\x02", "binary"),
        (b"\xc2\x01\x02", "NODATA"),
        (ARMOUR.encode() + b"payload\n", "not belonging"),
        (b"payload\n" + ARMOUR.encode(), "not belonging"),
        (ARMOUR.replace("-----END PGP SIGNATURE-----\n", "").encode(), "unclosed"),
        (ARMOUR.replace("iQ==", "-iQ==").encode(), "dash"),
        (ARMOUR.encode() + b"\n", "not belonging"),
    ],
)
def test_detached_signature_structure_as_apt_checks_it(raw: bytes, why: str) -> None:
    with pytest.raises(SplitError, match=why):
        check_detached_signature(raw)


def test_several_armoured_signatures_pass_the_structure_check() -> None:
    check_detached_signature((ARMOUR + ARMOUR).encode())
    check_detached_signature(ARMOUR.replace("\n", "\r\n").encode())
