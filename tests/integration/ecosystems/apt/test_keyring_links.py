"""Signed-By keyrings and trusted.gpg.d entries that are symlinks (trixie's layout).

trixie's debian-archive-keyring ships ``/usr/share/keyrings/debian-archive-keyring.gpg
-> debian-archive-keyring.pgp``; the root-only check used to refuse every link, so
every install from Debian itself was denied there. A link is followed now; it is
root-only when every link, the final file and every directory holding any of them
are root's alone. Hostile links (into a writable place, owned by another user in a
sticky directory, dangling, looping, too many hops) stay refused. Real apt follows
the same link, and the plan from it is not denied.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from aegis.devtools import testrepo
from aegis.ecosystems.apt.evidence.signature import MAX_LINK_HOPS, root_only_writable

from .conftest import Analyze

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 and os.environ.get("CI") != "true",
    reason="ownership checks need root to create root- and user-owned files",
)
NOBODY = 65534


def _trixie_layout(base: Path, key: bytes, where: str = "usr/share/keyrings") -> Path:
    """``usr/share/keyrings/debian-archive-keyring.gpg -> debian-archive-keyring.pgp``."""
    keyrings = base / where
    keyrings.mkdir(parents=True, exist_ok=True)
    (keyrings / "debian-archive-keyring.pgp").write_bytes(key)
    (keyrings / "debian-archive-keyring.pgp").chmod(0o644)
    link = keyrings / "debian-archive-keyring.gpg"
    link.symlink_to("debian-archive-keyring.pgp")
    return link


def test_trixies_keyring_link_is_root_only(tmp_path: Path, test_repo: testrepo.Repo) -> None:
    link = _trixie_layout(tmp_path / "root", test_repo.key_path.read_bytes())
    assert link.is_symlink()
    assert root_only_writable(link)


def test_an_absolute_link_and_a_linked_directory_are_followed(tmp_path: Path) -> None:
    real = tmp_path / "real"
    real.mkdir()
    (real / "k.gpg").write_bytes(b"\x99")
    (tmp_path / "dirlink").symlink_to(real)
    (tmp_path / "abs.gpg").symlink_to(real / "k.gpg")
    assert root_only_writable(tmp_path / "abs.gpg")
    assert root_only_writable(tmp_path / "dirlink" / "k.gpg")


def test_a_link_into_a_writable_directory_is_refused(tmp_path: Path) -> None:
    loose = tmp_path / "loose"
    loose.mkdir()
    loose.chmod(0o777)  # not sticky: anyone may replace the file
    (loose / "k.gpg").write_bytes(b"\x99")
    (tmp_path / "k.gpg").symlink_to(loose / "k.gpg")
    assert not root_only_writable(tmp_path / "k.gpg")


def test_a_link_into_a_directory_another_user_owns_is_refused(tmp_path: Path) -> None:
    theirs = tmp_path / "theirs"
    theirs.mkdir()
    (theirs / "k.gpg").write_bytes(b"\x99")
    os.chown(theirs, NOBODY, NOBODY)
    (tmp_path / "k.gpg").symlink_to(theirs / "k.gpg")
    assert not root_only_writable(tmp_path / "k.gpg")


def test_a_link_owned_by_another_user_in_a_sticky_directory_is_refused(tmp_path: Path) -> None:
    sticky = tmp_path / "sticky"
    sticky.mkdir()
    sticky.chmod(0o1777)
    (tmp_path / "k.gpg").write_bytes(b"\x99")
    mine = sticky / "mine.gpg"
    mine.symlink_to(tmp_path / "k.gpg")
    assert root_only_writable(mine)  # root's link in a sticky directory: others cannot swap it
    theirs = sticky / "theirs.gpg"
    theirs.symlink_to(tmp_path / "k.gpg")
    os.lchown(theirs, NOBODY, NOBODY)
    assert not root_only_writable(theirs)


def test_dangling_looping_and_long_chains_are_refused(tmp_path: Path) -> None:
    (tmp_path / "dangling.gpg").symlink_to(tmp_path / "nowhere.gpg")
    (tmp_path / "a.gpg").symlink_to("b.gpg")
    (tmp_path / "b.gpg").symlink_to("a.gpg")
    (tmp_path / "k0.gpg").write_bytes(b"\x99")
    for i in range(1, MAX_LINK_HOPS + 2):
        (tmp_path / f"k{i}.gpg").symlink_to(f"k{i - 1}.gpg")
    assert not root_only_writable(tmp_path / "dangling.gpg")
    assert not root_only_writable(tmp_path / "a.gpg")
    assert root_only_writable(tmp_path / f"k{MAX_LINK_HOPS}.gpg")
    assert not root_only_writable(tmp_path / f"k{MAX_LINK_HOPS + 1}.gpg")


def test_a_group_writable_target_is_refused(tmp_path: Path) -> None:
    (tmp_path / "k.pgp").write_bytes(b"\x99")
    (tmp_path / "k.pgp").chmod(0o664)
    (tmp_path / "k.gpg").symlink_to("k.pgp")
    assert not root_only_writable(tmp_path / "k.gpg")


def test_a_plan_through_trixies_keyring_link_is_not_a_loose_keyring(
    tmp_path: Path, analyze: Analyze, test_repo: testrepo.Repo
) -> None:
    """apt follows the link and verifies; Aegis records a root-only keyring, no problem."""
    root = testrepo.make_root(tmp_path / "root", [test_repo])
    # The same layout in the throwaway root's keyrings directory (a trusted directory
    # of its private apt configuration; the host's /usr/share/keyrings is not ours).
    link = _trixie_layout(root.root, test_repo.key_path.read_bytes(), "etc/apt/keyrings")
    for src in (root.root / "etc/apt/sources.list.d").iterdir():
        text = src.read_text()
        old = next(ln for ln in text.splitlines() if ln.startswith("Signed-By:"))
        src.write_text(text.replace(old, f"Signed-By: {link}"))
    testrepo.apt_update(root)
    (ev,) = analyze("install", "aegis-tool", root=root).repositories
    assert ev.signature == "good"
    assert ev.keyring_root_only
    assert ev.keyring_trusted_dir
    assert not {"keyring-writable", "keyring-untrusted-dir"} & set(ev.problems)


def test_a_trusted_gpg_d_link_to_a_user_owned_key_is_loose(
    tmp_path: Path, analyze: Analyze, test_repo: testrepo.Repo
) -> None:
    root = testrepo.make_root(tmp_path / "root", [test_repo], signed_by_form="fingerprint")
    home = tmp_path / "home"
    home.mkdir()
    os.chown(home, NOBODY, NOBODY)
    for kr in (root.root / "etc/apt/trusted.gpg.d").iterdir():
        target = home / kr.name
        target.write_bytes(kr.read_bytes())
        kr.unlink()
        kr.symlink_to(target)
    testrepo.apt_update(root)
    (ev,) = analyze("install", "aegis-tool", root=root).repositories
    assert not ev.keyring_root_only
    assert "keyring-writable" in ev.problems
