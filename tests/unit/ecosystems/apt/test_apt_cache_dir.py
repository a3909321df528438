"""Aegis's own apt cache: per uid, and never one a group member could have planted."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from aegis.config import Config, load_config
from aegis.ecosystems.apt.apt_runner import AptRunner, private_cache_dir
from tests.conftest import require_root


@pytest.fixture
def cfg(tmp_path: Path) -> Config:
    c = load_config({"AEGIS_HOME": str(tmp_path)})
    assert c.apt_config is None  # the host-configuration path is the one that caches
    return c


def _slot(cfg: Config) -> Path:
    return cfg.cache_dir / "apt" / f"uid-{os.geteuid()}"


def test_own_cache_is_created_private_and_used(cfg: Config) -> None:
    cache = private_cache_dir(cfg)
    assert cache == _slot(cfg)
    assert cache.stat().st_mode & 0o777 == 0o700
    opts = AptRunner(cfg).cache_opts
    assert f"Dir::Cache::pkgcache={cache}/pkgcache.bin" in opts


def test_a_planted_link_is_not_used(cfg: Config, tmp_path: Path) -> None:
    elsewhere = tmp_path / "theirs"
    elsewhere.mkdir(mode=0o700)
    _slot(cfg).parent.mkdir(parents=True)
    _slot(cfg).symlink_to(elsewhere)
    assert private_cache_dir(cfg) is None
    assert AptRunner(cfg).cache_opts == ()


def test_a_loosened_mode_is_not_used(cfg: Config) -> None:
    _slot(cfg).mkdir(parents=True, mode=0o700)
    _slot(cfg).chmod(0o770)
    assert private_cache_dir(cfg) is None


@pytest.mark.root
def test_a_directory_another_user_owns_is_not_used(cfg: Config) -> None:
    require_root("creating a directory owned by another user")
    _slot(cfg).mkdir(parents=True, mode=0o700)
    os.chown(_slot(cfg), 65534, 65534)
    assert private_cache_dir(cfg) is None
    assert AptRunner(cfg).cache_opts == ()
