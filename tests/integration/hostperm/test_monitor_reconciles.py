"""The monitor, a member of group aegis only, reconciles ``applying`` requests whose client
was killed, through the status file a real aegisd publishes (never its socket or ledger).

The monitor runs as uid 65534 with the test's group aegis as its primary group (the
unit's User=aegis-monitor, Group=aegis): aegisd's socket (root, 0660, no group it is in)
and its 0700 ledger are closed to it, as on a host.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from aegis.execute.ledger import Ledger
from tests.integration.execute.chain_helpers import AEGIS, apply_argv, run_cli, signed_request
from tests.integration.execute.conftest import _RUNNING, Daemon

from .conftest import MEMBER, free_gid, run_public

pytestmark = pytest.mark.root


@pytest.fixture
def public_base() -> Iterator[Path]:
    """A base directory other users may traverse (pytest's tmp_path is 0700)."""
    base = Path(tempfile.mkdtemp(prefix="aegis-reconcile-", dir="/tmp"))
    base.chmod(0o755)
    yield base
    shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def sock_dir() -> Iterator[Path]:
    """A short, world-traversable socket directory; stops any aegisd a test left running."""
    d = Path(tempfile.mkdtemp(prefix="aegisd-", dir="/tmp"))
    d.chmod(0o755)
    yield d
    for daemon in list(_RUNNING):
        daemon.stop()
    shutil.rmtree(d, ignore_errors=True)


def _share_store(home: Path, gid: int) -> None:
    """What the host's 2770 root:aegis store gives group aegis (aegisd's own dir stays 0700)."""
    state = home / "var/lib/aegis"
    (state / "results").mkdir(exist_ok=True)
    for path in [state, *state.rglob("*")]:
        if "aegisd" in path.relative_to(state).parts[:1]:
            continue
        os.chown(path, -1, gid)
        mode = stat.S_IMODE(path.stat().st_mode)
        path.chmod(mode | (0o2070 if path.is_dir() else 0o060))
    for d in (home, home / "var", home / "var/lib", home / "var/log", home / "var/log/aegis"):
        d.chmod(0o755)


def _start(sr, tmp: Path, sock_dir: Path, gid: int, point: str) -> tuple[Daemon, Path]:  # type: ignore[no-untyped-def]
    hooks = tmp / "hooks"
    hooks.mkdir()
    (hooks / f"{point}.wait").touch()
    env = {
        **sr.env,
        "AEGIS_TEST_HOOKS": "1",
        "AEGIS_TEST_HOOK_DIR": str(hooks),
        "AEGIS_GROUP": str(gid),
    }
    d = Daemon(
        sr.home, sock_dir / "a.sock", env, ["--public-key-hex", sr.signer_pub], tmp / "aegisd.log"
    ).start()
    client = subprocess.Popen(
        apply_argv(sr.execution_plan, sr.signer_pub, d.socket),
        env=sr.env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 60
    while not (hooks / f"{point}.reached").exists():
        assert time.monotonic() < deadline, d.log.read_text()
        time.sleep(0.02)
    client.kill()  # the operator's terminal died: the request is left in applying
    client.wait()
    return d, hooks


def _state(env: dict[str, str], request_id: str) -> str:
    out = run_cli([*AEGIS, "show", request_id, "--json"], env).stdout
    state: str = json.loads(out)["request"]["state"]
    return state


def _monitor_as_member(public: Path, sr, sock_dir: Path, gid: int) -> dict[str, object]:  # type: ignore[no-untyped-def]
    # The monitor sees aegisd's real socket where it would be, and still may not use it.
    (sock_dir / "aegisd.sock").symlink_to(sock_dir / "a.sock")
    env = {**sr.env, "AEGIS_RUN_DIR": str(sock_dir), "AEGIS_GROUP": str(gid)}
    proc = run_public(public, env, MEMBER, "monitor", "--json", gid=gid, umask=0o007)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    doc: dict[str, object] = json.loads(proc.stdout)
    return doc


def _item(doc: dict[str, object], request_id: str) -> dict[str, object]:
    items = doc["items"]
    assert isinstance(items, list)
    found: dict[str, object] = next(i for i in items if i["request_id"] == request_id)
    return found


def test_monitor_records_a_run_that_finished_after_its_client_died(
    public_tree: Path, public_base: Path, sock_dir: Path
) -> None:
    gid = free_gid()
    sr = signed_request(public_base)
    d, hooks = _start(sr, public_base, sock_dir, gid, "before-run")
    (hooks / "before-run.go").touch()
    deadline = time.monotonic() + 120
    while Ledger(d.cfg.ledger_path).entries()[0].state != "finished":
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert _state(sr.env, sr.request_id) == "applying"
    status = sr.home / "var/log/aegis/aegisd-status.json"
    st = status.stat()
    assert (stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid) == (0o640, 0, gid)
    _share_store(sr.home, gid)
    doc = _monitor_as_member(public_tree, sr, sock_dir, gid)
    item = _item(doc, sr.request_id)
    assert (item["action"], item["trigger"], item["state_after"]) == (
        "advanced",
        "finish",
        "applied",
    )
    assert _state(sr.env, sr.request_id) == "applied"
    d.stop()


def test_monitor_marks_a_run_aegisd_never_finished_interrupted(
    public_tree: Path, public_base: Path, sock_dir: Path
) -> None:
    gid = free_gid()
    sr = signed_request(public_base)
    d, _ = _start(sr, public_base, sock_dir, gid, "after-started")
    d.kill()  # aegisd died mid-run too: started, never finished
    _share_store(sr.home, gid)
    doc = _monitor_as_member(public_tree, sr, sock_dir, gid)
    item = _item(doc, sr.request_id)
    assert (item["trigger"], item["state_after"]) == ("interrupt", "interrupted")
    assert _state(sr.env, sr.request_id) == "interrupted"
    [row] = Ledger(d.cfg.ledger_path).entries()
    assert row.state == "started"  # never re-run, never touched by the monitor


def test_a_status_file_the_group_could_have_written_is_not_believed(
    public_tree: Path, public_base: Path, sock_dir: Path
) -> None:
    gid = free_gid()
    sr = signed_request(public_base)
    d, _ = _start(sr, public_base, sock_dir, gid, "after-started")
    d.kill()
    status = sr.home / "var/log/aegis/aegisd-status.json"
    # A member forging "finished, exit 0" for a run that never finished.
    doc = json.loads(status.read_text())
    entry = next(iter(doc["executions"].values()))
    entry.update({"state": "finished", "exit_status": 0, "outcome": "succeeded"})
    status.write_text(json.dumps(doc))
    os.chown(status, MEMBER, gid)
    status.chmod(0o660)
    _share_store(sr.home, gid)
    (sock_dir / "aegisd.sock").symlink_to(sock_dir / "a.sock")
    env = {**sr.env, "AEGIS_RUN_DIR": str(sock_dir), "AEGIS_GROUP": str(gid)}
    proc = run_public(public_tree, env, MEMBER, "monitor", "--json", gid=gid, umask=0o007)
    assert _state(sr.env, sr.request_id) == "applying", proc.stdout + proc.stderr


def test_monitor_leaves_a_run_that_is_going_on_alone(
    public_tree: Path, public_base: Path, sock_dir: Path
) -> None:
    gid = free_gid()
    sr = signed_request(public_base)
    d, hooks = _start(sr, public_base, sock_dir, gid, "before-run")
    _share_store(sr.home, gid)
    # started is in the ledger and the run is held: aegisd publishes it as running.
    doc = _monitor_as_member(public_tree, sr, sock_dir, gid)
    assert _item(doc, sr.request_id)["action"] != "advanced"
    assert _state(sr.env, sr.request_id) == "applying"
    (hooks / "before-run.go").touch()
    deadline = time.monotonic() + 120
    while Ledger(d.cfg.ledger_path).entries()[0].state != "finished":
        assert time.monotonic() < deadline
        time.sleep(0.05)
    (sock_dir / "aegisd.sock").unlink()
    doc = _monitor_as_member(public_tree, sr, sock_dir, gid)
    assert _item(doc, sr.request_id)["state_after"] == "applied"
    d.stop()
