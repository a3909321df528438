"""The test repository tooling itself: real apt accepts the good repo and every
Signed-By form, and rejects each negative repository with apt's own message (gpgv's
or sqv's wording, whichever verifier this host's apt runs)."""

from __future__ import annotations

from pathlib import Path

import pytest

from aegis.devtools import testrepo
from aegis.ecosystems.apt.parse import update_refusal


def test_default_repo_installs_into_throwaway_root(apt_root: testrepo.AptRoot) -> None:
    out = testrepo.run_apt(apt_root, "-s", "-qq", "install", "aegis-tool").stdout
    assert "Inst aegis-base (1.2 Aegis Test:aegis-test [all])" in out
    testrepo.run_apt(apt_root, "install", "-y", "aegis-tool", "aegis-hostile")
    status = apt_root.status.read_text()
    assert "Package: aegis-tool" in status
    # The hostile fixture wrote only under the throwaway root.
    assert "NOPASSWD" in (apt_root.root / "etc/sudoers").read_text()


@pytest.mark.parametrize("kind", testrepo.NEGATIVE_KINDS)
def test_negative_repos_rejected(tmp_path: Path, kind: str) -> None:
    repo = testrepo.negative_repo(tmp_path / "repo", kind)
    root = testrepo.make_root(tmp_path / "root", [repo])
    proc = testrepo.apt_update(root, check=False)
    assert proc.returncode == 100
    # The cause, however this host's apt words it (gpgv on bookworm, sqv on trixie).
    assert repo.expect_update_error
    assert update_refusal(proc.stdout + proc.stderr) == repo.expect_update_error, proc.stderr


@pytest.mark.parametrize("form", [f for f in testrepo.SIGNED_BY_FORMS if f != "none"])
def test_signed_by_forms_accepted(tmp_path: Path, test_repo: testrepo.Repo, form: str) -> None:
    root = testrepo.make_root(tmp_path / "root", [test_repo], signed_by_form=form)
    testrepo.apt_update(root)


def test_lookalike_wins_higher_version(tmp_path: Path, test_repo: testrepo.Repo) -> None:
    look = testrepo.debian_lookalike_repo(tmp_path / "look")
    root = testrepo.make_root(tmp_path / "root", [test_repo, look])
    testrepo.apt_update(root)
    out = testrepo.run_apt(root, "-s", "-qq", "install", "libssl3").stdout
    assert "Inst libssl3 (9.0 Debian:aegis-lookalike [all])" in out
