"""Fixtures shared by every test.

Tests never touch the host's package state: each gets a temporary AEGIS_HOME,
and apt runs only inside throwaway roots with a private APT_CONFIG built by
``aegis.devtools.testrepo``.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import settings

IN_CI = os.environ.get("CI") == "true"

# Property tests assert behaviour, not speed (speed lives in scripts/bench): on a loaded
# 2-core CI machine a per-example deadline only adds flaky failures.
settings.register_profile("aegis", deadline=None)
settings.load_profile("aegis")


def require_root(reason: str = "needs root") -> None:
    """Skip a test that needs root, except in CI where a skip is a failure."""
    if os.geteuid() != 0:
        if IN_CI:
            pytest.fail(f"CI=true runs as root, but euid is {os.geteuid()}: {reason}")
        pytest.skip(reason)


@pytest.fixture
def aegis_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A fresh AEGIS_HOME; every path Aegis uses lives under it."""
    home = tmp_path / "aegis-home"
    home.mkdir()
    for var in list(os.environ):
        if var.startswith("AEGIS_"):
            monkeypatch.delenv(var)
    monkeypatch.setenv("AEGIS_HOME", str(home))
    monkeypatch.setenv("AEGIS_HOST_ID", "test-host")
    yield home  # noqa: PT022 - kept a generator so teardown can be added


@pytest.fixture(scope="session")
def test_repo(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    """The default signed test repository, built once per run."""
    from aegis.devtools import testrepo

    return testrepo.build_repo(tmp_path_factory.mktemp("repo"))


@pytest.fixture
def apt_root(tmp_path: Path, test_repo):  # type: ignore[no-untyped-def]
    """A fresh throwaway root with a private APT_CONFIG pointing at ``test_repo``, updated."""
    from aegis.devtools import testrepo

    root = testrepo.make_root(tmp_path / "root", [test_repo])
    testrepo.apt_update(root)
    return root


FILES_ONLY = ("-o", "Dir::Etc::SourceList=/dev/null")
"""How every install argv starts after apt-get (aegis/ecosystems/apt/argv.py ``files_only``)."""


def planned_debs(plan: object) -> list[str]:
    """The files an install argv names for ``plan`` (a Plan or its JSON), sorted.

    Each is ``<deb_dir>/<name>_<version>_<arch>_<sha256>.deb`` from the plan's
    provenance: aegisd's verified copy of the very build apt's resolution picked.
    """
    from aegis.model import plan_to_dict

    doc = plan if isinstance(plan, dict) else plan_to_dict(plan)  # type: ignore[arg-type]
    return sorted(
        f"{doc['deb_dir']}/{p['package']}_{p['version'].replace(':', '%3a')}_{p['arch']}_"
        f"{p['sha256']}.deb"
        for p in doc["provenance"]
    )
