"""Hostile repository metadata against the analyzer, with real gpgv and apt lists.

Each test updates a throwaway root from the signed test repository, then rewrites
apt's stored InRelease the way an attacker holding the signing key, or sitting on
the mirror, could: a second signed block, unsigned text around the signature, a
SHA256 section naming one index twice with different hashes, a Date far in the
future (which would defer the freeze check), an expired Valid-Until. The plan
must record a problem policy denies; unsigned text must never reach the evidence.
"""

from __future__ import annotations

import dataclasses
import shutil
import subprocess
from datetime import timedelta
from pathlib import Path

from aegis.devtools import testrepo
from aegis.devtools.testrepo_keys import get_key
from aegis.ecosystems.apt.evidence.release import release_problems

from .conftest import NOW, Analyze


def _updated_root(tmp_path: Path, repo: testrepo.Repo) -> tuple[testrepo.AptRoot, Path]:
    """A root updated from a private copy of ``repo``; returns the copy's InRelease.

    ``apt update --plan`` reads the repository's own Release files (what the next
    update would fetch); apt's stored lists are apt's business (apt itself drops
    an InRelease with text around its signature).
    """
    copy = tmp_path / "repo"
    shutil.copytree(repo.path, copy)
    mine = dataclasses.replace(repo, path=copy, uri=copy.as_uri())
    root = testrepo.make_root(tmp_path / "root", [mine])
    testrepo.apt_update(root)
    return root, copy / "dists" / repo.suite / "InRelease"


def _clearsign(text: str, tmp_path: Path) -> str:
    key = get_key()
    src = tmp_path / "release.txt"
    src.write_text(text)
    out = tmp_path / "release.asc"
    subprocess.run(
        [
            "gpg", "--batch", "--yes", "--pinentry-mode", "loopback", "--passphrase", "",
            "--local-user", key.fingerprint, "--digest-algo", "SHA256",
            "--clearsign", "-o", str(out), str(src),
        ],
        env={"GNUPGHOME": str(key.gnupg_home), "PATH": "/usr/bin:/bin"},
        check=True,
        capture_output=True,
    )  # fmt: skip
    return out.read_text()


def _release(repo: testrepo.Repo) -> str:
    return (repo.path / "dists" / repo.suite / "Release").read_text()


def test_a_second_signed_block_is_a_signature_error(
    tmp_path: Path, analyze: Analyze, test_repo: testrepo.Repo
) -> None:
    root, inrelease = _updated_root(tmp_path, test_repo)
    evil = _release(test_repo).replace("Date:", "X-Second: yes\nDate:", 1)
    inrelease.write_text(inrelease.read_text() + _clearsign(evil, tmp_path))
    (ev,) = analyze("update", root=root).repositories
    assert ev.signature == "error"
    assert "signature-error" in ev.problems


def test_unsigned_text_around_the_signature_never_reaches_the_evidence(
    tmp_path: Path, analyze: Analyze, test_repo: testrepo.Repo
) -> None:
    root, inrelease = _updated_root(tmp_path, test_repo)
    signed = inrelease.read_text()
    inrelease.write_text(
        "Origin: Debian\nValid-Until: Sat, 01 Jan 2099 00:00:00 UTC\n\n"
        + signed
        + "SHA256:\n 00 1 main/binary-amd64/Packages\n"
    )
    (ev,) = analyze("update", root=root).repositories
    # apt splits InRelease itself and refuses unsigned lines around the signed block
    # (SplitClearSignedFile); so does Aegis, whichever verifier the host uses.
    assert ev.signature == "error"
    assert "signature-error" in ev.problems
    assert ev.origin_text != "Debian"
    assert ev.valid_until is None or not ev.valid_until.startswith("2099")
    assert not [p for p in ev.problems if p.startswith("hash-")]


def test_an_index_listed_twice_with_different_hashes_is_a_problem(
    tmp_path: Path, analyze: Analyze, test_repo: testrepo.Repo
) -> None:
    root, inrelease = _updated_root(tmp_path, test_repo)
    text = _release(test_repo)
    line = next(ln for ln in text.split("SHA256:", 1)[1].splitlines() if ln.endswith("/Packages"))
    _digest, size, path = line.split()
    text = text.replace(line, f"{line}\n {'0' * 64} {size} {path}", 1)
    inrelease.write_text(_clearsign(text, tmp_path))
    plan = analyze("update", root=root)
    (ev,) = plan.repositories
    assert ev.signature == "good"
    assert f"hash-conflict:{path}" in ev.problems
    assert "repo.hash-conflict" in {s.name for s in plan.signals}  # repo.untrusted: deny


def test_a_date_far_in_the_future_is_a_problem(
    tmp_path: Path, analyze: Analyze, test_repo: testrepo.Repo
) -> None:
    root, inrelease = _updated_root(tmp_path, test_repo)
    text = _release(test_repo)
    date_line = next(ln for ln in text.splitlines() if ln.startswith("Date:"))
    text = text.replace(date_line, "Date: Mon, 01 Jan 2035 00:00:00 UTC")
    text = "\n".join(ln for ln in text.splitlines() if not ln.startswith("Valid-Until:")) + "\n"
    inrelease.write_text(_clearsign(text, tmp_path))
    plan = analyze("update", root=root)
    (ev,) = plan.repositories
    # gpgv calls the signature good; under sqv Aegis passes --not-before (the Release Date
    # less a day), so a signature made before the Release's own Date is also refused.
    sqv = bool(ev.verifier) and ev.verifier.startswith("sqv")
    assert ev.signature == ("backdated" if sqv else "good"), ev
    assert "date-future" in ev.problems
    assert "repo.date-future" in {s.name for s in plan.signals}
    assert "frozen" not in ev.problems  # what the future Date was hiding


def test_release_problems_tolerate_clock_skew_and_repeated_equal_lines() -> None:
    soon = (NOW + timedelta(seconds=30)).strftime("%a, %d %b %Y %H:%M:%S UTC")
    text = f"Date: {soon}\nSHA256:\n {'a' * 64} 10 main/x\n {'A' * 64} 10 main/x\n"
    assert release_problems(text, NOW) == []


def test_a_release_twelve_hours_ahead_is_beyond_the_policy_clock_skew() -> None:
    """apt allows 10 s (Acquire::Max-FutureTime); Aegis the policy's clock_skew_s (60 s)."""
    ahead = (NOW + timedelta(hours=12)).strftime("%a, %d %b %Y %H:%M:%S UTC")
    text = f"Date: {ahead}\nSHA256:\n {'a' * 64} 10 main/x\n"
    assert release_problems(text, NOW) == ["date-future"]
    assert release_problems(text, NOW, timedelta(days=1)) == []
