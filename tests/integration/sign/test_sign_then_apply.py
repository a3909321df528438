"""The privileged half end to end: approve, ``aegisctl sign``, ``aegisctl verify``, then
``aegisctl apply`` through a real aegisd into the throwaway root."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from aegis import api
from aegis.cli.aegisctl import cli

pytestmark = pytest.mark.root
REPO_ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture
def aegisd(flow: Any, tmp_path: Path) -> Iterator[Path]:
    from aegis.execute.protocol import Request, call

    sock_dir = Path(tempfile.mkdtemp(prefix="aegisd-", dir="/tmp"))
    sock = sock_dir / "aegisd.sock"
    env = {k: v for k, v in os.environ.items() if not k.startswith("AEGIS_")}
    env.update(
        {
            k: v
            for k, v in os.environ.items()
            if k in ("AEGIS_HOME", "AEGIS_HOST_ID", "AEGIS_APT_CONFIG", "AEGIS_DPKG_ROOT")
        }
    )
    env.update({"AEGIS_AUDIT_SYSLOG": "0", "PYTHONPATH": str(REPO_ROOT)})
    log = (tmp_path / "aegisd.log").open("wb")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "aegis.execute.aegisd",
            "--socket",
            str(sock),
            "--public-key-hex",
            flow.signer_pub,
            "--approval-public-key-hex",
            flow.approver_pub,
        ],
        env=env,
        stdout=log,
        stderr=log,
        cwd=REPO_ROOT,
    )
    deadline = time.monotonic() + 15
    while True:
        try:
            call(str(sock), Request(op="ping"), timeout_s=5)
            break
        except Exception:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError((tmp_path / "aegisd.log").read_text()) from None
            time.sleep(0.05)
    yield sock
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    log.close()
    shutil.rmtree(sock_dir, ignore_errors=True)


def test_sign_verify_apply(flow: Any, aegisd: Path, apt_root: Any) -> None:
    from aegis.ecosystems.apt.dpkg import dpkg_status

    from_ctl = CliRunner()
    request_id, plan_path, _ = flow.to_policy(flow.analyze("aegis-tool"))
    approve = from_ctl.invoke(
        cli,
        [
            "approve",
            str(plan_path),
            "--reason",
            "CHG-42",
            "--key",
            str(flow.approver_key),
            "--approver",
            "bob",
        ],
    )
    assert approve.exit_code == 0, approve.output
    sign = from_ctl.invoke(
        cli,
        [
            "sign",
            "--plan",
            str(plan_path),
            "--key",
            str(flow.signer_key),
            "--signer",
            "ops1",
            "--json",
        ],
    )
    assert sign.exit_code == 0, sign.output
    ep_path = json.loads(sign.stdout)["path"]
    verify = from_ctl.invoke(
        cli,
        [
            "verify",
            "--execution-plan",
            ep_path,
            "--public-key-hex",
            flow.signer_pub,
            "--approval-public-key-hex",
            flow.approver_pub,
        ],
    )
    assert verify.exit_code == 0, verify.output
    apply = from_ctl.invoke(
        cli,
        [
            "apply",
            "--execution-plan",
            ep_path,
            "--public-key-hex",
            flow.signer_pub,
            "--approval-public-key-hex",
            flow.approver_pub,
            "--socket",
            str(aegisd),
            "--json",
        ],
    )
    assert apply.exit_code == 0, apply.output
    installed = {
        k.split(":")[0]: v[0]
        for k, v in dpkg_status(apt_root.root, {}).items()
        if v[1] == "installed"
    }
    assert installed == {"aegis-base": "1.2", "aegis-tool": "2.0"}
    assert api.get_request(flow.cfg, request_id).state in ("applied", "audited")
    # The same execution plan never runs twice.
    again = from_ctl.invoke(
        cli,
        [
            "apply",
            "--execution-plan",
            ep_path,
            "--public-key-hex",
            flow.signer_pub,
            "--socket",
            str(aegisd),
        ],
    )
    assert again.exit_code != 0
