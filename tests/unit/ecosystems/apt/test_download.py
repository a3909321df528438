"""The private .deb cache: copy from local repositories, verify against the signed index."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from aegis.ecosystems.apt.evidence.download import (
    IN_MEMORY_MAX,
    DebDownloadError,
    DebHashMismatchError,
    cache_path,
    fetch_deb,
    fetched_private,
    private_copy,
    read_local_by_content,
    verified_bytes,
)
from aegis.errors import InputError, TrustError
from aegis.model import Provenance


def _prov(
    path: Path, *, sha: str | None = None, size: int | None = None, uri: str | None = None
) -> Provenance:
    data = path.read_bytes()
    return Provenance(
        package="pkg",
        version="1.0",
        arch="all",
        uri=uri or f"file:{path}",
        filename=f"pool/{path.name}",
        size=len(data) if size is None else size,
        sha256=sha or hashlib.sha256(data).hexdigest(),
        repository="r",
        chain=(),
        verified=False,
    )


@pytest.fixture
def deb(tmp_path: Path) -> Path:
    path = tmp_path / "repo" / "pkg_1.0_all.deb"
    path.parent.mkdir()
    path.write_bytes(b"!<arch>\n" + b"x" * 1000)
    return path


def test_copy_into_cache_by_hash(tmp_path: Path, deb: Path) -> None:
    prov = _prov(deb)
    out = fetch_deb(prov, cache_dir=tmp_path / "cache", apt_config=None)
    assert out == cache_path(tmp_path / "cache", prov.sha256)
    assert out.read_bytes() == deb.read_bytes()
    assert [p.name for p in out.parent.iterdir()] == [out.name]  # no temp left behind


def test_copy_uri_scheme(tmp_path: Path, deb: Path) -> None:
    prov = _prov(deb, uri=f"copy://{deb}")
    assert fetch_deb(prov, cache_dir=tmp_path / "c", apt_config=None).exists()


def test_hash_mismatch_refused_and_nothing_cached(tmp_path: Path, deb: Path) -> None:
    prov = _prov(deb, sha="0" * 64)
    with pytest.raises(DebHashMismatchError) as exc:
        fetch_deb(prov, cache_dir=tmp_path / "cache", apt_config=None)
    assert isinstance(exc.value, TrustError)
    assert not cache_path(tmp_path / "cache", prov.sha256).exists()


@pytest.mark.parametrize("delta", [-1, 1])
def test_size_mismatch_refused(tmp_path: Path, deb: Path, delta: int) -> None:
    prov = _prov(deb)
    prov = Provenance(**{**prov.__dict__, "size": prov.size + delta})
    with pytest.raises(DebHashMismatchError):
        fetch_deb(prov, cache_dir=tmp_path / "cache", apt_config=None)


def test_tampered_cache_entry_is_replaced(tmp_path: Path, deb: Path) -> None:
    prov = _prov(deb)
    out = fetch_deb(prov, cache_dir=tmp_path / "cache", apt_config=None)
    out.write_bytes(b"evil")
    again = fetch_deb(prov, cache_dir=tmp_path / "cache", apt_config=None)
    assert again.read_bytes() == deb.read_bytes()


def test_cached_entry_is_reused_without_the_source(tmp_path: Path, deb: Path) -> None:
    prov = _prov(deb)
    fetch_deb(prov, cache_dir=tmp_path / "cache", apt_config=None)
    deb.unlink()
    assert fetch_deb(prov, cache_dir=tmp_path / "cache", apt_config=None).exists()


@pytest.mark.parametrize(
    "field", [{"sha256": "ABC"}, {"size": 0}, {"package": "-rf"}, {"version": "1;x"}]
)
def test_malformed_provenance_refused(tmp_path: Path, deb: Path, field: dict[str, object]) -> None:
    prov = Provenance(**{**_prov(deb).__dict__, **field})
    with pytest.raises(InputError):
        fetch_deb(prov, cache_dir=tmp_path / "cache", apt_config=None)


def test_scanners_read_a_private_copy_of_the_verified_bytes(tmp_path: Path, deb: Path) -> None:
    prov = _prov(deb)
    cached = fetch_deb(prov, cache_dir=tmp_path / "cache", apt_config=None)
    with private_copy(cached, prov) as own:
        assert own.read_bytes() == deb.read_bytes()
        assert own.parent.stat().st_mode & 0o777 == 0o700
        # A group member swapping the shared cache entry now changes nothing scanned.
        cached.write_bytes(b"benign-looking replacement")
        assert own.read_bytes() == deb.read_bytes()
    assert not own.exists()


def test_a_swapped_cache_entry_is_refused_before_the_copy(tmp_path: Path, deb: Path) -> None:
    prov = _prov(deb)
    cached = fetch_deb(prov, cache_dir=tmp_path / "cache", apt_config=None)
    cached.write_bytes(deb.read_bytes()[:-1] + b"X")  # swapped after fetch_deb verified it
    with pytest.raises(DebHashMismatchError), private_copy(cached, prov):
        pass


def test_a_planted_fifo_never_hangs_the_fetch(tmp_path: Path, deb: Path) -> None:
    prov = _prov(deb)
    target = cache_path(tmp_path / "cache", prov.sha256)
    target.parent.mkdir(parents=True, mode=0o700)
    os.mkfifo(target)
    assert fetch_deb(prov, cache_dir=tmp_path / "cache", apt_config=None) == target
    assert target.read_bytes() == deb.read_bytes()  # discarded and fetched again
    fifo_source = tmp_path / "fifo.deb"
    os.mkfifo(fifo_source)
    with (
        pytest.raises(DebDownloadError, match="not a regular file"),
        private_copy(fifo_source, prov),
    ):
        pass


def test_a_link_planted_at_the_cache_name_is_replaced_not_written_through(
    tmp_path: Path, deb: Path
) -> None:
    prov = _prov(deb)
    victim = tmp_path / "victim"
    victim.write_text("root's file")
    target = cache_path(tmp_path / "cache", prov.sha256)
    target.parent.mkdir(parents=True, mode=0o700)
    target.symlink_to(victim)
    assert fetch_deb(prov, cache_dir=tmp_path / "cache", apt_config=None) == target
    assert victim.read_text() == "root's file"
    assert not target.is_symlink()
    assert target.read_bytes() == deb.read_bytes()


@pytest.mark.parametrize("how", ["loose-mode", "linked-dir"])
def test_a_cache_directory_that_is_not_private_is_never_written(
    tmp_path: Path, deb: Path, how: str
) -> None:
    prov = _prov(deb)
    slot = cache_path(tmp_path / "cache", prov.sha256).parent
    slot.parent.mkdir(parents=True)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir(mode=0o700)
    if how == "loose-mode":
        slot.mkdir(mode=0o700)
        slot.chmod(0o770)  # a group member could plant and swap entries
    else:
        slot.symlink_to(elsewhere)  # a member redirected the cache
    with pytest.raises(DebDownloadError, match="package cache"):
        fetch_deb(prov, cache_dir=tmp_path / "cache", apt_config=None)
    assert list(elsewhere.iterdir()) == []


def test_a_callers_work_directory_holds_files_only_while_needed(tmp_path: Path, deb: Path) -> None:
    # inspect_contents passes one private directory for a whole plan: the fetch and the
    # scanners' copies are files in it, removed when done, and the checks are the same.
    work = tmp_path / "work"
    work.mkdir(mode=0o700)
    prov = _prov(deb)
    cached = fetch_deb(prov, cache_dir=tmp_path / "cache", apt_config=None, work_dir=work)
    assert cached.read_bytes() == deb.read_bytes()
    assert list(work.iterdir()) == []
    with private_copy(cached, prov, work) as own:
        assert own.parent == work
        cached.write_bytes(b"benign-looking replacement")
        assert own.read_bytes() == deb.read_bytes()
    assert list(work.iterdir()) == []
    with pytest.raises(DebHashMismatchError), private_copy(cached, prov, work):
        pass
    bad = _prov(deb, sha="0" * 64)
    with pytest.raises(DebHashMismatchError):
        fetch_deb(bad, cache_dir=tmp_path / "cache2", apt_config=None, work_dir=work)
    assert list(work.iterdir()) == []


def test_fetched_private_scans_the_fetched_file_and_caches_a_copy(
    tmp_path: Path, deb: Path
) -> None:
    # A cache miss: the file fetched into the private work directory is what is scanned
    # (one copy fewer); the shared cache gets a copy, so swapping that changes nothing.
    work = tmp_path / "work"
    work.mkdir(mode=0o700)
    prov = _prov(deb)
    cache = tmp_path / "cache"
    with fetched_private(prov, cache_dir=cache, apt_config=None, work_dir=work) as own:
        assert own.parent == work
        cached = cache_path(cache, prov.sha256)
        assert cached.read_bytes() == deb.read_bytes()
        assert not own.samefile(cached)
        cached.write_bytes(b"benign-looking replacement")
        assert own.read_bytes() == deb.read_bytes()
    assert list(work.iterdir()) == []
    # A hit on a swapped entry: fetched again, never scanned as it was.
    with fetched_private(prov, cache_dir=cache, apt_config=None, work_dir=work) as own:
        assert own.read_bytes() == deb.read_bytes()
    assert cached.read_bytes() == deb.read_bytes()
    # A hit on a good entry: a private copy of it, removed afterwards.
    deb.unlink()
    with fetched_private(prov, cache_dir=cache, apt_config=None, work_dir=work) as own:
        assert own.parent == work
        assert own.read_bytes() == cached.read_bytes()
    assert list(work.iterdir()) == []


def test_fetched_private_refuses_other_bytes_and_keeps_nothing(tmp_path: Path, deb: Path) -> None:
    work = tmp_path / "work"
    work.mkdir(mode=0o700)
    bad = _prov(deb, sha="0" * 64)
    cache = tmp_path / "cache"
    with (
        pytest.raises(DebHashMismatchError),
        fetched_private(bad, cache_dir=cache, apt_config=None, work_dir=work),
    ):
        pass
    assert list(work.iterdir()) == []
    assert not cache_path(cache, bad.sha256).exists()


def test_verified_bytes_of_a_local_file_write_nothing(tmp_path: Path, deb: Path) -> None:
    # Planning scans bytes held in memory: a local repository's file is read in place,
    # with no private copy and no cache entry (copying it was most of the cost).
    work = tmp_path / "work"
    work.mkdir(mode=0o700)
    prov = _prov(deb)
    cache = tmp_path / "cache"
    data = verified_bytes(prov, cache_dir=cache, apt_config=None, work_dir=work)
    assert data == deb.read_bytes()
    cached = cache_path(cache, prov.sha256)
    assert not cached.exists()
    assert list(work.iterdir()) == []
    # An entry left there (aegisd's fetch, an older version) is used when it verifies...
    cached.write_bytes(data)
    deb.unlink()
    assert verified_bytes(prov, cache_dir=cache, apt_config=None, work_dir=work) == data
    # ...and a swapped one never is: removed, and the source read again.
    cached.write_bytes(b"benign-looking replacement")
    with pytest.raises(DebDownloadError):
        verified_bytes(prov, cache_dir=cache, apt_config=None, work_dir=work)
    assert not cached.exists()


def test_early_bytes_are_used_only_when_they_are_the_indexed_file(
    tmp_path: Path, deb: Path
) -> None:
    # Bytes read before the provenance existed (the cache warmer) are hashed again: other
    # bytes handed over under the right hash are never what is returned or scanned.
    work = tmp_path / "work"
    work.mkdir(mode=0o700)
    prov = _prov(deb)
    data = deb.read_bytes()
    cache = tmp_path / "cache"
    fetch = {"cache_dir": cache, "apt_config": None, "work_dir": work}
    assert verified_bytes(prov, **fetch, early=data) == data
    deb.unlink()  # the early bytes alone, once they verify
    assert verified_bytes(prov, **fetch, early=data) == data
    forged = b"!<arch>\n" + b"y" * 1000  # same size, other content
    with pytest.raises(DebDownloadError):
        verified_bytes(prov, **fetch, early=forged)  # not used: the source is read, and gone
    with pytest.raises(DebDownloadError):
        verified_bytes(prov, **fetch, early=data[:-1])


def test_verified_bytes_refuse_other_bytes_and_cache_nothing(tmp_path: Path, deb: Path) -> None:
    work = tmp_path / "work"
    work.mkdir(mode=0o700)
    cache = tmp_path / "cache"
    for bad in (_prov(deb, sha="0" * 64), _prov(deb, size=deb.stat().st_size - 1)):
        with pytest.raises(DebHashMismatchError):
            verified_bytes(bad, cache_dir=cache, apt_config=None, work_dir=work)
        assert not cache_path(cache, bad.sha256).exists()
    huge = _prov(deb, size=IN_MEMORY_MAX + 1)
    with pytest.raises(InputError, match="too large"):
        verified_bytes(huge, cache_dir=cache, apt_config=None, work_dir=work)


def test_early_reads_are_named_by_their_own_bytes(tmp_path: Path, deb: Path) -> None:
    # The cache warmer reads apt's download set before provenance exists: whatever it is
    # handed, what it keeps is named by the SHA-256 of the bytes read, and nothing is written.
    prov = _prov(deb)
    data = deb.read_bytes()
    assert read_local_by_content(prov.uri, prov.size) == (prov.sha256, data)
    assert read_local_by_content(f"copy:{deb}", prov.size) == (prov.sha256, data)
    assert read_local_by_content(prov.uri, prov.size + 1) is None  # other size
    assert read_local_by_content("http://example.invalid/p.deb", 10) is None
    assert read_local_by_content(f"file:{tmp_path}/missing.deb", 10) is None
    assert not (tmp_path / "cache").exists()
