"""Trusted key directories, approval files, passphrases, snapshot capability."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pytest

from aegis.errors import InputError
from aegis.sign import files
from aegis.sign.approvals import approval_bytes
from aegis.sign.snapshot_check import Probe, evaluate


def test_trusted_keys(tmp_path: Path, keys: Any) -> None:
    d = tmp_path / "approvers"
    assert files.trusted_keys(d) == frozenset()
    d.mkdir()
    (d / "bob.pub").write_text(keys.pub("approver").upper() + "\n")
    (d / "notes.txt").write_text("ignored")
    assert files.trusted_keys(d) == {keys.pub("approver")}
    (d / "bad.pub").write_text("not a key")
    with pytest.raises(InputError, match="not a public key"):
        files.trusted_keys(d)


def test_approver_role_directories_grant_roles(tmp_path: Path, keys: Any) -> None:
    d = tmp_path / "approvers"
    assert files.trusted_approver_grants(d) == {}
    (d / "security").mkdir(parents=True)
    (d / "bob.pub").write_text(keys.pub("approver") + "\n")
    (d / "security" / "carol.pub").write_text(keys.pub("approver2") + "\n")
    (d / "security" / "bob.pub").write_text(keys.pub("approver") + "\n")
    assert files.trusted_approver_grants(d) == {
        keys.pub("approver"): {"security"},
        keys.pub("approver2"): {"security"},
    }
    # Trust comes only from what the operator placed: a linked role directory is refused.
    (d / "linked.pub").symlink_to(d / "bob.pub")  # a linked key file is still fine
    assert keys.pub("approver") in files.trusted_approver_grants(d)
    (d / "dba").symlink_to(tmp_path)
    with pytest.raises(InputError, match="must be a real directory"):
        files.trusted_approver_grants(d)
    (d / "dba").unlink()
    (d / "Bad Role").mkdir()
    with pytest.raises(InputError, match="role"):
        files.trusted_approver_grants(d)


def test_approver_keys_from_arguments(keys: Any) -> None:
    bob, carol = keys.pub("approver"), keys.pub("approver2")
    assert files.approver_keys_from_args([bob.upper(), f"security:{carol}"], "--k") == {
        bob: frozenset(),
        carol: frozenset({"security"}),
    }
    with pytest.raises(InputError, match="--k: role"):
        files.approver_keys_from_args([f"Sec Urity:{bob}"], "--k")
    with pytest.raises(InputError, match="64 hex"):
        files.approver_keys_from_args(["security:nothex"], "--k")


def test_approvals_for_plan_reports_junk(tmp_path: Path, approve: Any) -> None:
    d = tmp_path / "approvals"
    d.mkdir()
    a = approve()
    (d / "p-0001.bob.approval.json").write_bytes(approval_bytes(a))
    (d / "p-0001.eve.approval.json").write_bytes(b'{"schema_version":"aegis.approval/1"}')
    (d / "p-0002.bob.approval.json").write_bytes(approval_bytes(a))
    (d / "p-0001.link.approval.json").symlink_to(d / "p-0001.bob.approval.json")
    found, problems = files.approvals_for_plan(d, "p-0001")
    assert found == [a]
    assert len(problems) == 2  # the junk file, and the symlink is not followed


def test_glob_metacharacters_in_plan_id(tmp_path: Path) -> None:
    d = tmp_path / "approvals"
    d.mkdir()
    (d / "pX.bob.approval.json").write_text("{}")
    assert files.approvals_for_plan(d, "p?") == ([], [])


def test_passphrase_sources(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    f = tmp_path / "pass"
    f.write_bytes(b"correct horse\n")
    assert files.read_passphrase(passphrase_file=f, from_stdin=False) == b"correct horse"
    monkeypatch.setattr("sys.stdin", io.TextIOWrapper(io.BytesIO(b"from stdin\nrest")))
    assert files.read_passphrase(passphrase_file=None, from_stdin=True) == b"from stdin"
    env = {"AEGIS_KEY_PASSPHRASE": "env"}
    assert files.read_passphrase(passphrase_file=None, from_stdin=False, env=env) == b"env"
    assert files.read_passphrase(passphrase_file=None, from_stdin=False, env={}) is None
    with pytest.raises(InputError, match="not both"):
        files.read_passphrase(passphrase_file=f, from_stdin=True)
    f.write_bytes(b"\n")
    with pytest.raises(InputError, match="empty"):
        files.read_passphrase(passphrase_file=f, from_stdin=False)


def _probe(**kw: Any) -> Probe:
    base: dict[str, Any] = {
        "dpkg_repack": True,
        "apt_archives": False,
        "dpkg_status_readable": True,
        "cache_dir": "/var/lib/aegis/aegisd/rollback-cache",
        "cache_writable": True,
        "cache_free_bytes": 10 * 1024**3,
    }
    base.update(kw)
    return Probe(**base)


@pytest.mark.parametrize(
    ("kw", "failed"),
    [
        ({}, []),
        ({"dpkg_repack": False, "apt_archives": True}, []),
        ({"dpkg_repack": False}, ["replaced-packages"]),
        ({"dpkg_status_readable": False}, ["dpkg-status"]),
        ({"cache_writable": False}, ["rollback-cache"]),
        ({"cache_free_bytes": 1}, ["free-space"]),
    ],
    ids=["repack", "apt-cache", "no-source", "no-status", "cache-ro", "disk-full"],
)
def test_snapshot_capability(kw: dict[str, Any], failed: list[str]) -> None:
    result = evaluate(_probe(**kw))
    assert [i.name for i in result.items if not i.ok] == failed
    assert result.ok is (not failed)
