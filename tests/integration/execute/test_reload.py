"""``systemctl reload aegisd`` (SIGHUP) trusts a new signer key without a restart."""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from aegis.execute.protocol import Request, call

from .chain_helpers import make_chain

pytestmark = pytest.mark.root


def _wait_for(log: Path, text: str, timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if text in log.read_text():
            return
        time.sleep(0.05)
    raise AssertionError(f"{text!r} not in aegisd's log:\n{log.read_text()}")


def test_sighup_reloads_trusted_keys_and_apply_then_succeeds(
    make_daemon,  # type: ignore[no-untyped-def]
    key_set,
    tmp_path: Path,
) -> None:
    chain = make_chain(tmp_path, key_set)
    keys_dir = chain.cfg.keys_dir
    for sub in ("signers", "approvers"):
        (keys_dir / sub).mkdir(parents=True, exist_ok=True, mode=0o755)
    (keys_dir / "approvers/bob.pub").write_text(key_set.approver_pub + "\n")
    # Some other signer is trusted; alice (who signs below) is not yet.
    (keys_dir / "signers/other.pub").write_text(key_set.other_pub + "\n")
    extra = {k: v for k, v in chain.env.items() if k in ("AEGIS_APT_CONFIG", "AEGIS_DPKG_ROOT")}
    d = make_daemon(trusted=False, env_extra=extra, home=chain.home)
    data = chain.sign(chain.plan("aegis-tool"))
    refused = d.submit(data)
    assert refused.refusal == "refused:signature"
    assert "is not trusted" in refused.message
    assert f"{keys_dir}/signers/<name>.pub" in refused.message
    assert "systemctl reload aegisd" in refused.message
    (keys_dir / "signers/alice.pub").write_text(key_set.signer_pub + "\n")
    assert d.proc is not None
    pid = d.proc.pid
    # What ExecReload runs (systemctl reload aegisd).
    reload = subprocess.run(
        [sys.executable, "-m", "aegis.execute.aegisd", "--reload", str(pid)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert reload.returncode == 0, reload.stderr
    _wait_for(d.log, "aegisd: reloaded trusted keys: 2 signer key(s)")
    answer = d.submit(data)
    assert answer.ok, answer
    assert chain.installed()["aegis-tool"] == "2.0"
    assert d.proc is not None
    assert d.proc.pid == pid  # the same process: no restart


def test_a_broken_key_file_on_reload_keeps_the_previous_keys(
    make_daemon,  # type: ignore[no-untyped-def]
    key_set,
    tmp_path: Path,
) -> None:
    d = make_daemon()
    signers = d.cfg.keys_dir / "signers"
    signers.mkdir(parents=True, exist_ok=True, mode=0o755)
    (signers / "broken.pub").write_text("not a key\n")
    assert d.proc is not None
    os.kill(d.proc.pid, signal.SIGHUP)
    _wait_for(d.log, "aegisd: reload failed, keeping the previous keys")
    assert d.proc.poll() is None
    answer = call(str(d.socket), Request(op="ping"), timeout_s=10)
    assert answer.ok
    keys = {k: answer.result[k] for k in ("trusted_signer_keys", "trusted_approver_keys")}
    assert keys == {"trusted_signer_keys": 1, "trusted_approver_keys": 1}


def test_no_signer_key_refusal_names_the_signers_directory(
    make_daemon,  # type: ignore[no-untyped-def]
    key_set,
    tmp_path: Path,
) -> None:
    from aegis.devtools.sample_plans import sample_plan

    from .conftest import sign_plan

    d = make_daemon(trusted=False)
    answer = d.submit(sign_plan(d.cfg, sample_plan("p-nokeys"), key_set.signer))
    assert answer.refusal == "refused:no-trusted-keys"
    assert f"{d.cfg.keys_dir}/signers/<name>.pub" in answer.message
    assert "signer_public_keys" in answer.message


def test_keygen_creates_a_private_key_directory_0700(tmp_path: Path) -> None:
    out = tmp_path / "private" / "alice"
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            "from aegis.cli.aegisctl import main; main()",
            "keygen",
            "--out",
            str(out),
        ],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "AEGIS_HOME": str(tmp_path / "home")},
    )
    assert proc.returncode == 0, proc.stderr
    assert stat.S_IMODE(out.stat().st_mode) == 0o700
    assert stat.S_IMODE((out / "signer.key").stat().st_mode) == 0o600
