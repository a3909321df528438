"""The cache warmer: local download-set files read by content and parsed, never trusted."""

from __future__ import annotations

import hashlib
import shutil
from concurrent.futures import Future
from pathlib import Path

import pytest

from aegis.devtools.testrepo_packages import PackageSpec, build_deb
from aegis.ecosystems.apt.cache_warm import TWO_THREADS_FROM, CacheWarmer
from aegis.ecosystems.apt.run import RunResult


def _uris(*lines: str) -> Future[RunResult]:
    done: Future[RunResult] = Future()
    done.set_result(RunResult(("apt-get",), 0, "".join(f"{ln}\n" for ln in lines), ""))
    return done


@pytest.mark.parametrize("large", [False, True], ids=["one-thread", "two-threads"])
def test_local_files_are_read_by_content_and_parsed_by_hash(tmp_path: Path, large: bool) -> None:
    # A large declared file (absent here) makes the mean size call for two threads.
    big = [f"'file:{tmp_path}/big.deb' big_1.0_all.deb {TWO_THREADS_FROM * 4}"] if large else []
    deb = tmp_path / "pkg_1.0_all.deb"
    shutil.copy(build_deb(PackageSpec("aegis-warm", "1.0")), deb)
    data = deb.read_bytes()
    sha = hashlib.sha256(data).hexdigest()
    uri = f"file:{deb}"
    warmer = CacheWarmer(timeout_s=30)
    warmer.start(
        _uris(
            f"'{uri}' aegis-warm_1.0_all.deb {len(data)} MD5Sum:00",
            f"'file:{tmp_path}/missing.deb' missing_1.0_all.deb 10",
            "'http://example.invalid/x.deb' x_1.0_all.deb 10",
            *big,
        )
    )
    warmer.wait(uri)
    warmer.wait("file:/not/in/the/set.deb")  # returns at once
    warmer.join()
    assert not (tmp_path / "cache").exists()  # nothing written: read in place
    parsed = warmer.parsed(sha)
    assert parsed is not None
    assert parsed.control["Package"] == "aegis-warm"
    assert warmer.parsed("0" * 64) is None  # looked up only by the verified bytes' hash
    assert warmer.take(sha) == data
    assert warmer.take(sha) is None  # handed over once


def test_a_failed_download_set_releases_every_waiter(tmp_path: Path) -> None:
    failed: Future[RunResult] = Future()
    failed.set_result(RunResult(("apt-get",), 100, "", "E: broken"))
    warmer = CacheWarmer(timeout_s=30)
    warmer.start(failed)
    warmer.wait("file:/x.deb")
    warmer.join()
    assert warmer.parsed("0" * 64) is None
