"""aegisd when its audit log cannot be written: refuse before anything runs, say it loudly.

Real faults against a real aegisd: the log replaced by a symlink (``ELOOP``), and the log's
file system full (a small tmpfs mounted on the log directory, filled by a file).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from aegis.execute.ledger import Ledger
from aegis.execute.protocol import Request, call

from .chain_helpers import AEGIS, apply_argv, run_cli, signed_request
from .conftest import Daemon

pytestmark = pytest.mark.root


def _state(env: dict[str, str], request_id: str) -> str:
    out = run_cli([*AEGIS, "requests", "--json"], env).stdout
    [req] = [r for r in json.loads(out)["requests"] if r["id"] == request_id]
    return str(req["state"])


def _installed(root: Path) -> str:
    return subprocess.run(
        ["dpkg-query", f"--root={root}", "-W"], capture_output=True, text=True, check=False
    ).stdout


def _ping(d: Daemon) -> dict[str, object]:
    return call(str(d.socket), Request(op="ping"), timeout_s=10).result


def _stop_cleanly(d: Daemon) -> None:
    """SIGTERM; aegisd closes its log once and exits 0 (no EBADF on a second close)."""
    proc = d.proc
    assert proc is not None
    d.stop()
    assert proc.returncode == 0, d.log.read_text()
    text = d.log.read_text()
    assert "Bad file descriptor" not in text
    assert "Traceback" not in text


def _verify(env: dict[str, str]) -> None:
    proc = run_cli([*AEGIS, "audit", "verify", "--json"], env, ok=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_a_symlinked_log_is_a_clean_refusal_and_restoring_it_needs_no_restart(
    tmp_path: Path, sock_dir: Path
) -> None:
    sr = signed_request(tmp_path)
    d = Daemon(
        sr.home, sock_dir / "a.sock", sr.env, ["--public-key-hex", sr.signer_pub], tmp_path / "l"
    ).start()
    log = d.cfg.audit_path
    saved = tmp_path / "saved.jsonl"
    os.rename(log, saved)
    decoy = tmp_path / "decoy"
    decoy.write_text("root's file\n")
    os.symlink(decoy, log)
    apply = apply_argv(sr.execution_plan, sr.signer_pub, d.socket)
    # The client asks first: the request stays signed.
    refused = run_cli(apply, sr.env, ok=False)
    assert refused.returncode == 7, refused.stderr
    assert "refused:audit-log" in refused.stderr
    assert _state(sr.env, sr.request_id) == "signed"
    # Straight to aegisd (no ping first), several times: each a clean answer, never a
    # dead handler; nothing ran and the execution id is unused.
    for _ in range(3):
        answer = d.submit(sr.execution_plan.read_bytes())
        assert answer.refusal == "refused:audit-log", answer
        assert "nothing ran" in answer.message
    assert Ledger(d.cfg.ledger_path).entries() == []
    assert "aegis-tool" not in _installed(sr.root.root)
    assert decoy.read_text() == "root's file\n"
    failures = int(str(_ping(d)["audit_append_failures"]))
    assert failures >= 3
    # The monitor's metrics carry aegisd's count (from the status file aegisd republishes).
    run_cli([*AEGIS, "monitor", "--json"], sr.env, ok=False)
    metrics = (d.cfg.metrics_dir / "aegis.prom").read_text()
    assert f"aegis_audit_append_failures {failures}" in metrics
    # The log is back: the very same request is served by the same aegisd.
    log.unlink()
    os.rename(saved, log)
    assert _ping(d)["audit_log"] is None
    run_cli(apply, sr.env)
    assert _state(sr.env, sr.request_id) == "audited"
    assert "aegis-tool" in _installed(sr.root.root)
    _stop_cleanly(d)
    _verify(sr.env)


@contextlib.contextmanager
def _small_tmpfs(directory: Path) -> Iterator[None]:
    """Mount a 2 MiB tmpfs on ``directory``, keeping what it held."""
    held = directory.with_name(directory.name + ".held")
    directory.mkdir(parents=True, exist_ok=True)
    shutil.copytree(directory, held)
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(directory)], check=True)
    try:
        shutil.copytree(held, directory, dirs_exist_ok=True)
        yield
    finally:
        subprocess.run(["umount", "-l", str(directory)], check=False)


def _fill(directory: Path) -> Path:
    """Fill the file system of ``directory`` to the last byte."""
    filler = directory / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        for size in (65536, 4096, 1):
            with contextlib.suppress(OSError):
                while True:
                    os.write(fd, b"\0" * size)
    finally:
        os.close(fd)
    return filler


def test_a_full_log_refuses_before_the_run_and_a_failed_append_after_it_is_loud(
    tmp_path: Path, sock_dir: Path
) -> None:
    sr = signed_request(tmp_path)
    hooks = tmp_path / "hooks"
    hooks.mkdir()
    env = {**sr.env, "AEGIS_TEST_HOOKS": "1", "AEGIS_TEST_HOOK_DIR": str(hooks)}
    log_dir = Daemon(sr.home, sock_dir / "x", env, [], tmp_path / "l").cfg.audit_path.parent
    with _small_tmpfs(log_dir):
        d = Daemon(
            sr.home, sock_dir / "a.sock", env, ["--public-key-hex", sr.signer_pub], tmp_path / "l"
        ).start()
        try:
            log = d.cfg.audit_path
            apply = apply_argv(sr.execution_plan, sr.signer_pub, d.socket)
            # Full before the run: refused while the execution id is unused; the log is
            # exactly as it was (no torn line); the request can be applied again.
            filler = _fill(log_dir)
            before = log.read_bytes()
            refused = run_cli(apply, sr.env, ok=False)
            assert refused.returncode == 7, refused.stderr
            assert "refused:audit-log" in refused.stderr
            assert "apply the same execution plan again" in refused.stderr
            assert log.read_bytes() == before
            assert Ledger(d.cfg.ledger_path).entries() == []
            assert "aegis-tool" not in _installed(sr.root.root)
            filler.unlink()
            _verify(sr.env)
            # Unwritable during the run (tmpfs pages leave room at the end of the log's last
            # page, so a full file system cannot be timed to the byte here; the writer test
            # shows a torn write cut back): the run happened and is recorded, the client
            # exits non-zero, the request is applied but not audited.
            (hooks / "before-run.wait").touch()
            client = subprocess.Popen(
                apply, env=sr.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
            )
            deadline = time.monotonic() + 60
            while not (hooks / "before-run.reached").exists():
                assert time.monotonic() < deadline
                time.sleep(0.02)
            saved = log.with_name("saved")
            os.rename(log, saved)
            os.symlink(saved, log)
            (hooks / "before-run.go").touch()
            _, err = client.communicate(timeout=120)
            assert client.returncode == 7, err
            assert "audit log failed" in err
            [row] = Ledger(d.cfg.ledger_path).entries()
            assert (row.state, row.exit_status) == ("finished", 0)
            assert "aegis-tool" in _installed(sr.root.root)
            assert _state(sr.env, sr.request_id) == "applied"
            assert int(str(_ping(d)["audit_append_failures"])) >= 2
            log.unlink()
            os.rename(saved, log)
            _verify(sr.env)
            _stop_cleanly(d)
        finally:
            d.stop()
