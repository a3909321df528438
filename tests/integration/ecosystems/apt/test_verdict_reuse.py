"""A good Release verdict is reused only on byte-identical InRelease and keyrings.

The unattended pass verifies each source twice in one process (planning, then the
signer's re-check); the second may reuse the first's verdict. The attacks: an
InRelease or a keyring changed between the two is verified again, and fails.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from aegis.devtools import testrepo
from aegis.devtools.testrepo_keys import get_key
from aegis.ecosystems.apt.evidence import signature
from aegis.ecosystems.apt.evidence.repositories import find_release_files
from aegis.ecosystems.apt.evidence.sources import (
    AptPaths,
    SourceEntry,
    parse_sources,
    resolve_apt_paths,
)
from aegis.ecosystems.apt.parse import parse_apt_config_dump


@pytest.fixture
def reuse() -> Iterator[None]:
    signature.reuse_verdicts(120)
    yield
    signature.reuse_verdicts(0)


def _source(root: testrepo.AptRoot) -> tuple[SourceEntry, AptPaths]:
    dump = subprocess.run(
        ["apt-config", "dump"], env=testrepo.apt_env(root), capture_output=True, text=True,
        check=True,
    ).stdout  # fmt: skip
    paths = resolve_apt_paths(parse_apt_config_dump(dump))
    files = [(str(p), p.read_text()) for p in sorted(Path(paths.sourceparts).iterdir())]
    (entry,) = parse_sources(files)
    return entry, paths


def _verify(root: testrepo.AptRoot) -> str:
    """The status of verifying the root's one source, as the analyzer does."""
    entry, paths = _source(root)
    found = find_release_files(entry, paths, prefer_repository=True)
    return signature.verify_release(found, entry, paths, timeout_s=30.0).status


def test_identical_bytes_reuse_changed_bytes_are_verified_again(
    tmp_path: Path, reuse: None
) -> None:
    repo = testrepo.build_repo(tmp_path / "repo")
    root = testrepo.make_root(tmp_path / "root", [repo])
    before = signature.reused_verdicts()
    assert _verify(root) == "good"
    assert _verify(root) == "good"
    assert signature.reused_verdicts() == before + 1

    # A changed InRelease (one byte of the signed text) is verified again, and fails.
    inrelease = repo.path / "dists" / repo.suite / "InRelease"
    good = inrelease.read_bytes()
    inrelease.write_bytes(good.replace(b"Suite: ", b"Suite:  ", 1))
    assert _verify(root) == "bad"
    inrelease.write_bytes(good)

    # The same InRelease against another keyring in the source's Signed-By: verified again.
    [keyring] = signature.keyring_files(*_source(root))
    trusted = keyring.read_bytes()
    keyring.write_bytes(get_key("verdict-other").keyring.read_bytes())
    assert _verify(root) == "no-pubkey"
    keyring.write_bytes(trusted)
    assert signature.reused_verdicts() == before + 1

    assert _verify(root) == "good"  # the original bytes again: the verdict is theirs
    assert signature.reused_verdicts() == before + 2


def test_nothing_is_reused_unless_asked(tmp_path: Path) -> None:
    repo = testrepo.build_repo(tmp_path / "repo")
    root = testrepo.make_root(tmp_path / "root", [repo])
    before = signature.reused_verdicts()
    assert _verify(root) == "good"
    assert _verify(root) == "good"
    assert signature.reused_verdicts() == before
