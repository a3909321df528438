"""A by-hash mirror read as apt reads it (issue 12 item 8).

A mirror that publishes ``Acquire-By-Hash: yes`` serves each index under
``by-hash/<hash>/<digest>``; its plain ``Packages`` files may lag behind (a mirror
mid-sync, or one that never rewrites them). apt fetches the by-hash objects and
updates cleanly; the update plan must not call the repository tampered. Where apt
would read the plain files (``Acquire::By-Hash "no"``, or no by-hash object), a
stale plain file is still a mismatch.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from aegis.devtools import testrepo
from aegis.devtools.testrepo_keys import get_key
from aegis.devtools.testrepo_repos import sign_release
from aegis.policy.result import Effect

from .apt_parity import approve, apt_refused, apt_update, cli_plan, config, copy_repo, decide, dist

_STRONGEST = ("SHA512", hashlib.sha512), ("SHA256", hashlib.sha256)


def _by_hash_mirror(repo: testrepo.Repo, stale: str = "all") -> None:
    """Publish every index by hash, then let plain ``Packages`` files go stale.

    ``stale``: ``all`` plain files, or only the ``compressed`` ones.
    """
    d = dist(repo)
    rel = d / "Release"
    text = rel.read_text()
    kind, fn = next((k, f) for k, f in _STRONGEST if f"\n{k}:" in text)
    for p in sorted(d.glob("main/binary-*/Packages*")):
        obj = p.parent / "by-hash" / kind / fn(p.read_bytes()).hexdigest()
        obj.parent.mkdir(parents=True, exist_ok=True)
        obj.write_bytes(p.read_bytes())
    rel.write_text(text.replace("Date:", "Acquire-By-Hash: yes\nDate:", 1))
    sign_release(d, get_key())
    for p in sorted(d.glob("main/binary-*/Packages*")):
        if stale == "all" or p.name != "Packages":
            p.write_bytes(p.read_bytes() + b"\n")  # the mirror's stale plain copies


@pytest.mark.parametrize(
    ("stale", "apt_by_hash"), [("compressed", "yes"), ("all", "yes"), ("all", "no")]
)
def test_a_signed_by_hash_mirror_with_stale_plain_indexes(
    tmp_path: Path, test_repo: testrepo.Repo, stale: str, apt_by_hash: str
) -> None:
    """Aegis agrees with the host's apt in each case.

    apt 2.6 reads the by-hash objects; apt 3's ``file:`` method hands over the plain
    uncompressed ``Packages`` beside them when there is one; with by-hash off both read
    the plain files.
    """
    repo = copy_repo(test_repo, tmp_path / "repo")
    _by_hash_mirror(repo, stale)
    extra = f'Acquire::By-Hash "{apt_by_hash}";\n' if apt_by_hash == "no" else ""
    root = testrepo.make_root(tmp_path / "root", [repo], extra_config=extra)
    cfg = config(tmp_path / "home", root)
    approve(cfg, repo)
    plan = cli_plan(cfg, root, "update")
    (ev,) = plan.repositories
    mismatched = [p for p in ev.problems if p.startswith("hash-mismatch:")]
    out = apt_update(root)
    assert bool(mismatched) is apt_refused(out), (ev.problems, out)
    if stale == "compressed" and apt_by_hash == "yes":
        # The false positive this fixes: a signed mirror mid-sync, accepted by apt.
        assert not mismatched
        assert "repo.untrusted" not in {f.rule_id for f in decide(cfg, plan).fired}
    if apt_by_hash == "no":
        assert mismatched
        assert decide(cfg, plan).decision is Effect.DENY


def test_a_by_hash_object_that_does_not_match_is_still_a_mismatch(
    tmp_path: Path, test_repo: testrepo.Repo
) -> None:
    repo = copy_repo(test_repo, tmp_path / "repo")
    _by_hash_mirror(repo)
    for obj in dist(repo).glob("main/binary-amd64/by-hash/*/*"):
        obj.write_bytes(obj.read_bytes() + b"tampered\n")
    root = testrepo.make_root(tmp_path / "root", [repo])
    assert apt_refused(apt_update(root))
    cfg = config(tmp_path / "home", root)
    approve(cfg, repo)
    (ev,) = cli_plan(cfg, root, "update").repositories
    assert [p for p in ev.problems if p.startswith("hash-mismatch:main/binary-amd64/")]
