"""A member of the apply group who cannot read aegisd's ledger is told only what is known.

The member (uid 65534, in the apply group and in group aegis) runs ``aegisctl apply``;
aegisd dies after recording ``started``. The ledger is root's, and the member cannot read
aegisd's status file either: the client must not claim "nothing ran", only that the state
is unknown, and leave the request in ``applying`` for root's ``aegisctl resolve``.
"""

from __future__ import annotations

import grp
import json
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from aegis.execute.ledger import Ledger
from tests.integration.execute.chain_helpers import AEGIS, apply_argv, run_cli, signed_request
from tests.integration.execute.conftest import _RUNNING, Daemon

from .conftest import MEMBER, SYSTEM_PYTHON, free_gid
from .test_monitor_reconciles import _share_store

pytestmark = pytest.mark.root

APPLY_GROUP = "users"
"""An existing group stands in for aegis-apply (the host's /etc/group is never touched)."""


@pytest.fixture
def public_base() -> Iterator[Path]:
    base = Path(tempfile.mkdtemp(prefix="aegis-member-", dir="/tmp"))
    base.chmod(0o755)
    yield base
    shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def sock_dir() -> Iterator[Path]:
    d = Path(tempfile.mkdtemp(prefix="aegisd-", dir="/tmp"))
    d.chmod(0o755)
    yield d
    for daemon in list(_RUNNING):
        daemon.stop()
    shutil.rmtree(d, ignore_errors=True)


def test_a_member_who_cannot_read_the_ledger_is_told_the_state_is_unknown(
    public_tree: Path, public_base: Path, sock_dir: Path
) -> None:
    try:
        apply_gid = grp.getgrnam(APPLY_GROUP).gr_gid
    except KeyError:
        pytest.skip(f"no group {APPLY_GROUP!r} on this machine")
    gid = free_gid()
    sr = signed_request(public_base)
    etc = sr.home / "etc/aegis"
    (etc / "aegisd.toml").write_text(f'apply_group = "{APPLY_GROUP}"\n')
    hooks = public_base / "hooks"
    hooks.mkdir()
    (hooks / "after-started.wait").touch()
    env = {
        **sr.env,
        "AEGIS_TEST_HOOKS": "1",
        "AEGIS_TEST_HOOK_DIR": str(hooks),
        "AEGIS_GROUP": str(gid),
    }
    d = Daemon(
        sr.home, sock_dir / "a.sock", env, ["--public-key-hex", sr.signer_pub], public_base / "l"
    ).start()
    _share_store(sr.home, gid)
    member_env = {
        **sr.env,
        "AEGIS_GROUP": str(gid),
        "PATH": "/usr/sbin:/usr/bin:/sbin:/bin",
        "PYTHONPATH": f"{public_tree / 'site'}:{public_tree / 'src'}",
        "PYTHONDONTWRITEBYTECODE": "1",
        "HOME": "/",
    }
    argv = apply_argv(sr.execution_plan, sr.signer_pub, d.socket)
    ctl = argv.index("apply")
    client = subprocess.Popen(
        [
            "setpriv",
            f"--reuid={MEMBER}",
            # aegisd learns a peer's groups from the passwd entry and SO_PEERCRED's gid:
            # the apply group is the member's primary group here, group aegis an extra one.
            f"--regid={apply_gid}",
            f"--groups={gid}",
            "sh",
            "-c",
            'umask 007; exec "$@"',
            "sh",
            SYSTEM_PYTHON,
            "-c",
            "from aegis.cli.aegisctl import main; main()",
            *argv[ctl:],
        ],
        env=member_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd="/",
    )
    deadline = time.monotonic() + 60
    while not (hooks / "after-started.reached").exists():
        assert client.poll() is None, client.communicate()
        assert time.monotonic() < deadline, d.log.read_text()
        time.sleep(0.02)
    # Neither the ledger (root's) nor aegisd's published copy is readable by the member.
    (sr.home / "var/log/aegis/aegisd-status.json").chmod(0o600)
    d.kill()
    _, err = client.communicate(timeout=60)
    assert client.returncode == 10, err
    assert "state unknown" in err
    assert "aegisctl resolve" in err
    assert "nothing ran" not in err
    [row] = Ledger(d.cfg.ledger_path).entries()
    assert row.state == "started"
    out = run_cli([*AEGIS, "show", sr.request_id, "--json"], sr.env).stdout
    assert json.loads(out)["request"]["state"] == "applying"
