"""aegisd's own configuration: keys only from root-owned sources, strict parsing."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from aegis.config import load_config
from aegis.errors import InputError, TrustError
from aegis.execute.settings import load_settings

K1, K2 = "a" * 64, "b" * 64


def _cfg(home: Path):  # type: ignore[no-untyped-def]
    return load_config({"AEGIS_HOME": str(home)})


def test_no_keys_means_refuse_everything_with_a_reason(tmp_path: Path) -> None:
    s = load_settings(_cfg(tmp_path))
    assert s.keys_problem is not None
    assert "signer" in s.keys_problem
    assert s.socket_path == tmp_path / "run/aegis/aegisd.sock"


def test_keys_from_file_dirs_and_options(tmp_path: Path) -> None:
    cfg = _cfg(tmp_path)
    cfg.etc_dir.mkdir(parents=True)
    (cfg.etc_dir / "aegisd.toml").write_text(
        f'signer_public_keys = ["{K1}"]\nsocket_mode = "0666"\nrun_timeout_s = 5\n'
    )
    (cfg.keys_dir / "approvers").mkdir(parents=True)
    (cfg.keys_dir / "approvers" / "bob.pub").write_text(K2 + "\n")
    s = load_settings(cfg, public_keys=(K1.upper(),), approval_keys=())
    assert s.signer_keys == (K1,)
    assert s.approver_keys == (K2,)
    assert s.socket_mode == 0o666
    assert s.run_timeout_s == 5
    assert s.keys_problem is None


@pytest.mark.parametrize(
    "text",
    [
        'signer_public_keys = ["nothex"]',
        "unknown = 1",
        "run_timeout_s = -1",
        'snapshot_command = ["relative"]',
        "not toml [",
    ],
    ids=["bad-key", "unknown-key", "negative", "relative-hook", "not-toml"],
)
def test_bad_config_refused(tmp_path: Path, text: str) -> None:
    cfg = _cfg(tmp_path)
    cfg.etc_dir.mkdir(parents=True)
    (cfg.etc_dir / "aegisd.toml").write_text(text + "\n")
    with pytest.raises(InputError):
        load_settings(cfg)


def test_approver_roles_from_file_dirs_and_options(tmp_path: Path) -> None:
    k3 = "c" * 64
    cfg = _cfg(tmp_path)
    cfg.etc_dir.mkdir(parents=True)
    (cfg.etc_dir / "aegisd.toml").write_text(
        f'signer_public_keys = ["{K1}"]\n[approver_roles]\nsecurity = ["{K2}"]\n'
    )
    (cfg.keys_dir / "approvers" / "dba").mkdir(parents=True)
    (cfg.keys_dir / "approvers" / "dba" / "carol.pub").write_text(k3 + "\n")
    s = load_settings(cfg, approval_keys=(f"release:{K2}",))
    assert s.approver_grants == {K2: {"security", "release"}, k3: {"dba"}}
    assert set(s.approver_keys) == {K2, k3}  # a role grant makes the key a trusted approver


def test_bad_approver_roles_refused(tmp_path: Path) -> None:
    cfg = _cfg(tmp_path)
    cfg.etc_dir.mkdir(parents=True)
    for text in ('approver_roles = ["x"]', '[approver_roles]\n"Bad Role" = []'):
        (cfg.etc_dir / "aegisd.toml").write_text(text + "\n")
        with pytest.raises(InputError, match="approver_roles"):
            load_settings(cfg)


def test_group_writable_config_refused_as_root(tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("ownership checks apply to a root aegisd")
    cfg = _cfg(tmp_path)
    cfg.etc_dir.mkdir(parents=True)
    path = cfg.etc_dir / "aegisd.toml"
    path.write_text(f'signer_public_keys = ["{K1}"]\n')
    path.chmod(0o664)
    with pytest.raises(TrustError, match="writable by others"):
        load_settings(cfg)


@pytest.mark.parametrize("armed", [False, True], ids=["hooks-off", "hooks-on"])
def test_test_hooks_only_with_aegis_test_hooks(tmp_path: Path, armed: bool) -> None:
    from aegis.execute.daemon import Aegisd

    cfg = load_config({"AEGIS_HOME": str(tmp_path / "home"), "AEGIS_HOST_ID": "h"})
    hook_dir = tmp_path / "hooks"
    hook_dir.mkdir()
    env = {"AEGIS_TEST_HOOK_DIR": str(hook_dir), "AEGIS_AUDIT_SYSLOG": "0"}
    if armed:
        env["AEGIS_TEST_HOOKS"] = "1"
    daemon = Aegisd(cfg, load_settings(cfg), env=env)
    try:
        daemon.hook("after-started")
    finally:
        daemon.audit.close()
    assert (hook_dir / "after-started.reached").exists() is armed


def test_witness_file_defaults_to_the_documented_path_and_verify_uses_the_same(
    tmp_path: Path,
) -> None:
    from aegis.audit.verify import default_witness_path
    from aegis.execute.settings import configured_witness_file

    cfg = _cfg(tmp_path)
    default = default_witness_path(cfg.log_dir)
    assert load_settings(cfg).witness_file == default
    assert configured_witness_file(cfg) == default
    cfg.etc_dir.mkdir(parents=True)
    conf = cfg.etc_dir / "aegisd.toml"
    conf.write_text(f'witness_file = "{tmp_path}/elsewhere.jsonl"\n')
    assert load_settings(cfg).witness_file == tmp_path / "elsewhere.jsonl"
    assert configured_witness_file(cfg) == tmp_path / "elsewhere.jsonl"
    conf.write_text('witness_file = ""\n')  # explicitly off
    assert load_settings(cfg).witness_file is None
    assert configured_witness_file(cfg) is None
    conf.write_text("witness_file = 3\n")
    with pytest.raises(InputError, match="witness_file"):
        load_settings(cfg)
    assert configured_witness_file(cfg) == default  # verify never crashes on it
