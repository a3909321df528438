"""Freshness of a Release and its history in apt's lists (issue 20 item 4, issue 12 item 6).

Each scenario edits and re-signs a copy of the signed test repository with the
approved key, lets the host's apt judge it, and plans through the CLI:

- neither ``Date`` nor ``Valid-Until``: apt warns ("Invalid 'Date' entry"); Aegis
  names ``undated`` and denies (``repo.undated``) unless the source's freeze window
  is 0;
- an index listed only with MD5 while the others have SHA256: apt skips it ("weak
  security information"); Aegis never counts it as verified;
- an update whose Release changes Origin, Label, Suite, Codename or the default pin
  against the copy in apt's lists needs approval (apt refuses it without
  ``--allow-releaseinfo-change``); one dated before that copy is a rollback: denied.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from aegis.devtools import testrepo
from aegis.devtools.testrepo_keys import get_key
from aegis.devtools.testrepo_repos import sign_release
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


def _edit(repo: testrepo.Repo, edit: Callable[[str], str]) -> None:
    rel = dist(repo) / "Release"
    rel.write_text(edit(rel.read_text()))
    sign_release(dist(repo), get_key())


def _drop(field: str) -> Callable[[str], str]:
    return lambda t: "".join(ln for ln in t.splitlines(True) if not ln.startswith(f"{field}:"))


def _set(field: str, value: str) -> Callable[[str], str]:
    def edit(text: str) -> str:
        if re.search(rf"^{field}:", text, re.M):
            return re.sub(rf"^{field}:.*$", f"{field}: {value}", text, count=1, flags=re.M)
        return text.replace("Date:", f"{field}: {value}\nDate:", 1)

    return edit


def _when(dt: datetime) -> str:
    return dt.strftime("%a, %d %b %Y %H:%M:%S UTC")


# --- issue 20 item 4: freshness and weak indices -------------------------------------


def test_a_release_without_date_or_valid_until_is_named_and_denied(
    tmp_path: Path, test_repo: testrepo.Repo
) -> None:
    repo = copy_repo(test_repo, tmp_path / "repo")
    _edit(repo, lambda t: _drop("Valid-Until")(_drop("Date")(t)))
    root = testrepo.make_root(tmp_path / "root", [repo])
    assert "Invalid 'Date' entry" in apt_update(root)
    cfg = config(tmp_path / "home", root)
    approve(cfg, repo)
    plan = cli_plan(cfg, root, "update")
    (ev,) = plan.repositories
    assert ev.signature == "good"
    assert "undated" in ev.problems
    result = decide(cfg, plan)
    assert result.decision is Effect.DENY
    assert "Release without Date or Valid-Until" in fired(result)["repo.undated"]
    # The operator's way to say "this source is never re-dated": no age judgement.
    approve(cfg, repo, extra="freeze_after_s = 0")
    assert "repo.undated" not in fired(decide(cfg, plan))


def test_valid_until_alone_still_dates_a_release(tmp_path: Path, test_repo: testrepo.Repo) -> None:
    repo = copy_repo(test_repo, tmp_path / "repo")
    until = _when(datetime.now(UTC) + timedelta(days=7))
    _edit(repo, lambda t: re.sub(r"^Date:.*$", f"Valid-Until: {until}", t, flags=re.M))
    root = testrepo.make_root(tmp_path / "root", [repo])
    cfg = config(tmp_path / "home", root)
    approve(cfg, repo)
    (ev,) = cli_plan(cfg, root, "update").repositories
    assert "undated" not in ev.problems


def _md5_only(dist_dir: Path, path: str) -> Callable[[str], str]:
    """``path`` listed only under MD5Sum; every other index keeps its SHA256."""

    def edit(text: str) -> str:
        sums: list[str] = []
        for p in sorted(dist_dir.glob("main/binary-*/Packages*")):
            digest = hashlib.md5(p.read_bytes(), usedforsecurity=False).hexdigest()
            sums.append(f" {digest} {p.stat().st_size} {p.relative_to(dist_dir)}\n")
        kept = [
            ln
            for ln in text.splitlines(True)
            if not (ln.startswith(" ") and len(ln.split()[0]) >= 64 and ln.split()[-1] == path)
        ]
        body = "".join(kept)
        body = re.sub(r"^MD5Sum:\n( .*\n)*", "", body, flags=re.M)
        return body.replace("SHA256:", "MD5Sum:\n" + "".join(sums) + "SHA256:", 1)

    return edit


def test_an_index_with_only_md5_is_not_verified_evidence_for_an_install(
    tmp_path: Path, test_repo: testrepo.Repo
) -> None:
    repo = copy_repo(test_repo, tmp_path / "repo")
    weak = "main/binary-amd64/Packages"
    _edit(repo, _md5_only(dist(repo), weak))
    root = testrepo.make_root(tmp_path / "root", [repo])
    out = apt_update(root)
    assert "weak security information" in out, out
    cfg = config(tmp_path / "home", root)
    approve(cfg, repo)
    plan = cli_plan(cfg, root, "install", "aegis-tool")
    assert any(f"weak-index-hash:{weak}" in r.problems for r in plan.repositories)
    assert decide(cfg, plan).decision is Effect.DENY


# --- issue 12 item 6: the update against apt's lists ------------------------------------

CHANGES = {
    "Origin": (_set("Origin", "Debian"), True),
    "Label": (_set("Label", "Debian-Security"), True),
    "Codename": (_set("Codename", "aegis-next"), True),
    "Suite": (_set("Suite", "aegis-renamed"), False),  # apt only notes a new Suite
    "DefaultPin": (_set("NotAutomatic", "yes"), True),
}


@pytest.mark.parametrize("field", sorted(CHANGES))
def test_a_release_info_change_against_the_lists_needs_approval(
    tmp_path: Path, test_repo: testrepo.Repo, field: str
) -> None:
    edit, apt_refuses = CHANGES[field]
    repo = copy_repo(test_repo, tmp_path / "repo")
    root = testrepo.make_root(tmp_path / "root", [repo])
    testrepo.apt_update(root)
    _edit(repo, edit)
    cfg = config(tmp_path / "home", root)
    approve(cfg, repo)
    plan = cli_plan(cfg, root, "update")
    (ev,) = plan.repositories
    changed = [p for p in ev.problems if p.startswith(f"release-info-changed:{field} ")]
    assert changed, ev.problems
    out = apt_update(root)
    assert apt_refused(out) is apt_refuses, out
    if apt_refuses:
        assert "changed its" in out, out
    result = decide(cfg, plan)
    assert "repo.release-changed" in fired(result)
    assert result.decision is Effect.REQUIRE_APPROVAL, fired(result)


def test_an_older_release_than_the_lists_copy_is_a_rollback(
    tmp_path: Path, test_repo: testrepo.Repo
) -> None:
    repo = copy_repo(test_repo, tmp_path / "repo")
    root = testrepo.make_root(tmp_path / "root", [repo])
    testrepo.apt_update(root)
    _edit(repo, _set("Date", _when(datetime.now(UTC) - timedelta(days=3))))
    out = apt_update(root)
    # apt ignores the older file silently and keeps its lists: no error to see.
    assert not apt_refused(out), out
    cfg = config(tmp_path / "home", root)
    approve(cfg, repo)
    plan = cli_plan(cfg, root, "update")
    (ev,) = plan.repositories
    assert [p for p in ev.problems if p.startswith("release-rollback:")], ev.problems
    result = decide(cfg, plan)
    assert result.decision is Effect.DENY
    assert "rollback" in fired(result)["repo.rollback"]


def test_an_unchanged_or_newer_release_is_not_flagged(
    tmp_path: Path, test_repo: testrepo.Repo
) -> None:
    repo = copy_repo(test_repo, tmp_path / "repo")
    root = testrepo.make_root(tmp_path / "root", [repo])
    testrepo.apt_update(root)
    cfg = config(tmp_path / "home", root)
    approve(cfg, repo)
    (ev,) = cli_plan(cfg, root, "update").repositories
    assert not [p for p in ev.problems if p.startswith("release-")], ev.problems
    _edit(repo, _set("Date", _when(datetime.now(UTC))))
    (ev,) = cli_plan(cfg, root, "update").repositories
    assert not [p for p in ev.problems if p.startswith("release-")], ev.problems
