"""A real aegisd (subprocess) on a real Unix socket, with keys and execution plans."""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from aegis.config import Config, load_config
from aegis.execute.protocol import Answer, Request, call
from aegis.sign import keys

REPO = Path(__file__).resolve().parents[3]


@dataclass
class Keys:
    """Signer and approver key pairs."""

    signer_path: Path
    signer_pub: str
    approver_path: Path
    approver_pub: str
    other_path: Path
    other_pub: str

    @property
    def signer(self) -> Any:
        return keys.load_signing_key(self.signer_path)

    @property
    def approver(self) -> Any:
        return keys.load_signing_key(self.approver_path)

    @property
    def other(self) -> Any:
        return keys.load_signing_key(self.other_path)


@pytest.fixture
def key_set(tmp_path: Path) -> Keys:
    d = tmp_path / "keys"
    sp, spub = keys.write_keypair(d, "signer")
    ap, apub = keys.write_keypair(d, "approver")
    op, opub = keys.write_keypair(d, "signer", name="untrusted")
    return Keys(sp, spub, ap, apub, op, opub)


_RUNNING: list[Daemon] = []
"""Every Daemon started and not yet stopped (see :func:`_stop_daemons_a_test_left`)."""


@pytest.fixture(autouse=True)
def _stop_daemons_a_test_left() -> Iterator[None]:
    # A test that fails between start() and stop() must not leave aegisd running; daemons
    # started by wider-scoped fixtures (before this test) are left to their fixtures.
    before = [id(d) for d in _RUNNING]
    yield
    for d in [d for d in _RUNNING if id(d) not in before]:
        d.stop()


@dataclass
class Daemon:
    """A running aegisd subprocess."""

    home: Path
    socket: Path
    env: dict[str, str]
    args: list[str]
    log: Path
    proc: subprocess.Popen[bytes] | None = None
    hook_dir: Path | None = None
    extra: dict[str, str] = field(default_factory=dict)

    @property
    def cfg(self) -> Config:
        return load_config(self.env)

    def start(self) -> Daemon:
        if not any(d is self for d in _RUNNING):
            _RUNNING.append(self)
        if self.socket.exists():
            self.socket.unlink()
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "aegis.execute.aegisd",
                    "--socket",
                    str(self.socket),
                    *self.args,
                ],
                env=self.env,
                stdout=log,
                stderr=log,
                cwd=REPO,
            )
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"aegisd exited: {self.log.read_text()}")
            try:
                call(str(self.socket), Request(op="ping"), timeout_s=5)
                return self
            except Exception:
                time.sleep(0.05)
        raise RuntimeError(f"aegisd did not come up: {self.log.read_text()}")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None
        _RUNNING[:] = [d for d in _RUNNING if d is not self]

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()
        self.proc = None

    def submit(self, data: bytes | str, **kw: Any) -> Answer:
        text = data.decode("utf-8") if isinstance(data, bytes) else data
        return call(str(self.socket), Request(op="apply", execution_plan=text, **kw))

    def audit_events(self) -> list[dict[str, Any]]:
        import json

        path = self.cfg.audit_path
        if not path.exists():
            return []
        return [json.loads(x)["event"] for x in path.read_text().splitlines() if x.strip()]


def base_env(home: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AEGIS_")}
    env.update(
        {
            "AEGIS_HOME": str(home),
            "AEGIS_HOST_ID": "test-host",
            "AEGIS_AUDIT_SYSLOG": "0",
            "PYTHONPATH": str(REPO),
        }
    )
    env.update(extra)
    return env


@pytest.fixture
def sock_dir() -> Iterator[Path]:
    """A short, world-traversable directory for sockets (other uids must reach them)."""
    d = Path(tempfile.mkdtemp(prefix="aegisd-", dir="/tmp"))
    d.chmod(0o755)
    yield d
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
def make_daemon(tmp_path: Path, sock_dir: Path, key_set: Keys) -> Iterator[Any]:
    started: list[Daemon] = []

    def factory(
        *,
        trusted: bool = True,
        env_extra: dict[str, str] | None = None,
        config: str | None = None,
        home: Path | None = None,
        extra_args: tuple[str, ...] = (),
    ) -> Daemon:
        home = home or (tmp_path / "home")
        home.mkdir(exist_ok=True)
        env = base_env(home, **(env_extra or {}))
        if config is not None:
            etc = home / "etc/aegis"
            etc.mkdir(parents=True, exist_ok=True)
            (etc / "aegisd.toml").write_text(config)
        args = []
        if trusted:
            args = [
                "--public-key-hex",
                key_set.signer_pub,
                "--approval-public-key-hex",
                key_set.approver_pub,
            ]
        args.extend(extra_args)
        d = Daemon(home, sock_dir / f"d{len(started)}.sock", env, args, tmp_path / "aegisd.log")
        started.append(d)
        return d.start()

    yield factory
    for d in started:
        d.stop()


def sign_plan(
    cfg: Config,
    plan: Any,
    key: Any,
    *,
    now: datetime | None = None,
    expires_in: timedelta = timedelta(hours=1),
    execution_id: str | None = None,
    approvals: tuple[Any, ...] = (),
    policy: Any = None,
    argv: Any = None,
    request_id: str | None = None,
) -> bytes:
    """Sign an execution plan for ``plan`` (host fixed to this host)."""
    from aegis.ecosystems.apt.argv import derive_argv
    from aegis.execute.apply import this_host
    from aegis.sign.execution_plan import (
        PolicyBinding,
        build_execution_plan,
        execution_plan_bytes,
    )

    plan = replace(plan, host=this_host(cfg))
    policy = policy or PolicyBinding(
        result_hash="1" * 64,
        decision="allow",
        policy_version="test",
        controls=(),
        required_approvals=0,
        required_roles=(),
        rule_ids=("test.allow",),
    )
    ep = build_execution_plan(
        execution_id=execution_id or secrets.token_hex(16),
        request_id=request_id,
        plan=plan,
        policy=policy,
        review_hash=None,
        approvals=approvals,
        argv=argv if argv is not None else derive_argv(plan, dpkg_root=cfg.dpkg_root),
        now=now or datetime.now(UTC),
        expires_in=expires_in,
        signer_id="alice",
        key=key,
    )
    return execution_plan_bytes(ep)


def hostname() -> str:
    return socket.gethostname()
