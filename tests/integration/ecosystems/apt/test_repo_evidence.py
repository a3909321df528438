"""Repository evidence against real signed (and deliberately broken) repositories."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from aegis.devtools import testrepo

from .conftest import Analyze

EXPECT = {
    "wrong-key": ("no-pubkey", "signature-no-pubkey"),
    "unsigned": ("unsigned", "signature-unsigned"),
    "badsig": ("bad", "signature-bad"),
    "hash-mismatch": ("good", "hash-mismatch"),
    "expired": ("good", "expired"),
    "no-signed-by": ("no-pubkey", "no-signed-by"),
}


@pytest.mark.parametrize("kind", testrepo.NEGATIVE_KINDS)
def test_negative_repositories(tmp_path: Path, analyze: Analyze, kind: str) -> None:
    repo = testrepo.negative_repo(tmp_path / "repo", kind)
    root = testrepo.make_root(tmp_path / "r2", [repo])
    assert testrepo.apt_update(root, check=False).returncode == 100
    plan = analyze("update", root=root)
    (ev,) = plan.repositories
    signature, problem = EXPECT[kind]
    assert ev.signature == signature
    assert any(p.split(":")[0] == problem for p in ev.problems), ev.problems
    assert f"repo.{problem}" in {s.name for s in plan.signals}
    if kind == "expired":
        assert ev.expired
        assert ev.valid_until is not None
    if kind == "no-signed-by":
        assert ev.signed_by_form == "none"


@pytest.mark.parametrize("form", ["keyring-path", "armored-path", "fingerprint", "embedded"])
def test_signed_by_forms(
    tmp_path: Path, analyze: Analyze, test_repo: testrepo.Repo, form: str
) -> None:
    root = testrepo.make_root(tmp_path / "r2", [test_repo], signed_by_form=form)
    testrepo.apt_update(root)
    plan = analyze("install", "aegis-base", root=root)
    (ev,) = plan.repositories
    assert (ev.signed_by_form, ev.signature, ev.signer_fingerprint) == (
        form,
        "good",
        test_repo.fingerprint,
    )
    assert ev.keyring_trusted_dir
    assert ev.keyring_root_only
    assert not {"no-signed-by", "keyring-untrusted-dir", "keyring-writable"} & set(ev.problems)


def test_one_line_sources(tmp_path: Path, analyze: Analyze, test_repo: testrepo.Repo) -> None:
    root = testrepo.make_root(tmp_path / "r2", [test_repo], source_format="one-line")
    testrepo.apt_update(root)
    (ev,) = analyze("install", "aegis-base", root=root).repositories
    assert ev.signature == "good"
    assert ev.source_file.endswith(".list")
    assert ev.source_entry.startswith("deb [signed-by=")


def test_trusted_parts_without_signed_by(
    tmp_path: Path, analyze: Analyze, test_repo: testrepo.Repo
) -> None:
    root = testrepo.make_root(tmp_path / "r2", [test_repo], signed_by_form="trusted-parts")
    testrepo.apt_update(root)
    (ev,) = analyze("install", "aegis-base", root=root).repositories
    assert (ev.signed_by_form, ev.signature) == ("none", "good")
    assert "no-signed-by" in ev.problems


def test_keyring_outside_trusted_dir_and_writable(
    tmp_path: Path, analyze: Analyze, test_repo: testrepo.Repo
) -> None:
    root = testrepo.make_root(tmp_path / "r2", [test_repo])
    testrepo.apt_update(root)
    loose = tmp_path / "loose"
    loose.mkdir()
    key = loose / "key.gpg"
    shutil.copyfile(test_repo.key_path, key)
    os.chmod(key, 0o666)  # noqa: S103 - the attack: anyone could swap the key
    (src,) = root.sources_dir.iterdir()
    text = src.read_text()
    old = next(ln for ln in text.splitlines() if ln.startswith("Signed-By:"))
    src.write_text(text.replace(old, f"Signed-By: {key}"))
    (ev,) = analyze("install", "aegis-base", root=root).repositories
    assert ev.signature == "good"
    assert not ev.keyring_trusted_dir
    assert not ev.keyring_root_only
    assert {"keyring-untrusted-dir", "keyring-writable"} <= set(ev.problems)


def test_frozen_release(tmp_path: Path, analyze: Analyze) -> None:
    from datetime import UTC, datetime, timedelta

    repo = testrepo.build_repo(
        tmp_path / "repo", date=datetime.now(UTC) - timedelta(days=400), name="old"
    )
    root = testrepo.make_root(tmp_path / "r2", [repo])
    plan = analyze("update", root=root)
    (ev,) = plan.repositories
    assert ev.frozen
    assert ev.valid_until is None
    assert "frozen" in ev.problems


def test_freeze_window_comes_from_the_sources_policy_entry(
    tmp_path: Path, analyze: Analyze, aegis_home: Path
) -> None:
    """A Release 100 days old: fresh under the 180-day default, frozen under its own 30."""
    from datetime import UTC, datetime, timedelta

    from .conftest import approve, cfg_for, write_policy

    repo = testrepo.build_repo(
        tmp_path / "repo", date=datetime.now(UTC) - timedelta(days=100), name="quarterly"
    )
    root = testrepo.make_root(tmp_path / "r2", [repo])
    cfg = cfg_for(root, aegis_home)
    write_policy(cfg, [approve(cfg, repo)])
    (ev,) = analyze("update", root=root, cfg=cfg).repositories
    assert ev.approved
    assert not ev.frozen
    text = cfg.policy_path.read_text() + "freeze_after_s = 2592000\n"
    cfg.policy_path.write_text(text)
    (ev,) = analyze("update", root=root, cfg=cfg).repositories
    assert ev.frozen
    assert "frozen" in ev.problems


def test_tampered_lists_after_update(apt_root: testrepo.AptRoot, analyze: Analyze) -> None:
    """An attacker editing apt's lists (InRelease) after a good update is caught."""
    (inrel,) = apt_root.lists_dir.glob("*_InRelease")
    inrel.write_text(inrel.read_text().replace("Origin: Aegis Test", "Origin: Aegis Tesx", 1))
    (ev,) = analyze("install", "aegis-base").repositories
    assert ev.signature == "bad"


def test_insecure_apt_config_flags(
    tmp_path: Path, analyze: Analyze, test_repo: testrepo.Repo
) -> None:
    root = testrepo.make_root(
        tmp_path / "r2",
        [test_repo],
        extra_config='Acquire::Check-Valid-Until "false";\nDPkg::Post-Invoke { "true"; };\n',
    )
    testrepo.apt_update(root)
    plan = analyze("install", "aegis-base", root=root)
    assert {"check-valid-until-false", "dpkg-post-invoke"} <= set(plan.config.flags)


def test_fifos_in_apt_directories_do_not_hang_the_analysis(
    tmp_path: Path, aegis_home: Path, test_repo: testrepo.Repo
) -> None:
    """A FIFO as source file, pin file or Signed-By keyring: the plan finishes, fails closed."""
    import json
    import subprocess
    import sys

    root = testrepo.make_root(tmp_path / "r2", [test_repo])
    testrepo.apt_update(root)
    (key,) = root.keyrings_dir.glob("*.gpg")
    key.unlink()
    os.mkfifo(key)  # reading it would block for ever
    os.mkfifo(root.sources_dir / "zz.list")
    os.mkfifo(root.preferences_dir / "zz")
    env = {
        **os.environ,
        "AEGIS_HOME": str(aegis_home),
        "AEGIS_APT_CONFIG": str(root.apt_config),
        "AEGIS_APT_TIMEOUT": "20",
    }
    argv = [sys.executable, "-m", "aegis", "apt", "install", "aegis-base", "--plan", "--json"]
    try:
        res = subprocess.run(
            [*argv, "--no-contents"],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
    except subprocess.TimeoutExpired:
        pytest.fail("the analysis hung on a FIFO")
    assert res.returncode == 0, res.stderr
    (ev,) = json.loads(res.stdout)["plan"]["repositories"]
    assert ev["signature"] == "no-pubkey"  # the named keyring is no keyring: nothing verifies
