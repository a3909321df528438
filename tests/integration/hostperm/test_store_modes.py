"""The store and its -wal/-shm are 0660 group aegis whoever opens them first (real SQLite).

Each case opens the store first as a different real user (root; the monitor's user with
its own umask and group aegis as primary group; an agent with group aegis as a
supplementary group), then another member writes to it through SQLite, and
``aegis doctor`` run as a member judges the result.
"""

from __future__ import annotations

import json
import os
import stat

import pytest

from .conftest import MEMBER, OTHER_MEMBER, Host

WRITE_PROBE = (
    "import sys\n"
    "from pathlib import Path\n"
    "from aegis.api import workflow\n"
    "from aegis.workflow.store import Store\n"
    "s = Store.open(Path(sys.argv[1]), states=frozenset(workflow().states), host_install=True)\n"
    "s.conn.execute('CREATE TABLE IF NOT EXISTS probe_' + sys.argv[2] + ' (x)')\n"
    "s.conn.execute('INSERT INTO probe_' + sys.argv[2] + ' VALUES (1)')\n"
    "s.close()\n"
    "print('wrote')\n"
)


def _modes(host: Host) -> dict[str, tuple[int, int, int]]:
    out = {}
    for name in ("state.db", "state.db-wal", "state.db-shm"):
        try:
            st = os.stat(host.state / name)
        except FileNotFoundError:
            continue
        out[name] = (stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid)
    return out


def _doctor_store(host: Host) -> dict[str, str]:
    proc = host.member("doctor", "--json")
    assert proc.returncode in (0, 7), proc.stderr  # other checks (sockets) may fail here
    checks = {c["name"]: c for c in json.loads(proc.stdout)["checks"]}
    return checks["store"]


@pytest.mark.parametrize("first", ["root", "monitor-umask-077", "agent-umask-077"])
def test_store_is_0660_group_aegis_whoever_opens_first(host: Host, first: str) -> None:
    if first == "root":
        opened = host.run_as(None, "requests", "--json", umask=0o077)
    elif first == "monitor-umask-077":
        # aegis-monitor: its own user, primary group aegis (User=/Group= in the unit).
        opened = host.run_as(MEMBER, "requests", "--json", gid=host.gid, umask=0o077)
    else:
        opened = host.member("requests", "--json", umask=0o077)
    assert opened.returncode == 0, opened.stderr
    modes = _modes(host)
    assert modes["state.db"][0] == 0o660
    assert modes["state.db"][2] == host.gid
    if first == "root":
        assert modes["state.db"][1] == 0
    # Another member (own primary group, aegis supplementary) writes through SQLite.
    wrote = host.run_as(
        OTHER_MEMBER,
        str(host.state / "state.db"),
        "other",
        groups=(host.gid,),
        umask=0o077,
        python=("-c", WRITE_PROBE),
    )
    assert wrote.returncode == 0, wrote.stderr
    for name, (mode, _uid, gid) in _modes(host).items():
        assert (mode, gid) == (0o660, host.gid), name
    # Root running any command makes root the owner, as documented.
    assert host.run_as(None, "requests", "--json").returncode == 0
    assert _modes(host)["state.db"][1] == 0
    assert _doctor_store(host)["status"] == "ok"


def test_doctor_names_a_store_the_group_cannot_write_and_the_fix(host: Host) -> None:
    assert host.run_as(None, "requests").returncode == 0
    db = host.state / "state.db"
    # What the first monitor run used to leave: 0640 aegis-monitor:aegis.
    os.chown(db, MEMBER, host.gid)
    db.chmod(0o640)
    check = _doctor_store(host)
    assert check["status"] == "fail"
    assert "mode 0640, expected 0660" in check["detail"]
    assert "owner uid 65534, expected root" in check["detail"]
    assert f"chown root:{host.gid} {db}* && chmod 0660 {db}*" in check["detail"]
    # The other member really cannot write it: the same store write fails with exit 7.
    wrote = host.run_as(
        OTHER_MEMBER,
        str(db),
        "blocked",
        groups=(host.gid,),
        python=("-c", WRITE_PROBE),
    )
    assert wrote.returncode != 0
    # Root's next command repairs it (owner root, 0660 group aegis).
    assert host.run_as(None, "requests").returncode == 0
    assert _modes(host)["state.db"] == (0o660, 0, host.gid)
    assert _doctor_store(host)["status"] == "ok"


def test_wrong_group_is_named(host: Host) -> None:
    assert host.run_as(None, "requests").returncode == 0
    os.chown(host.state / "state.db", 0, 0)
    check = _doctor_store(host)
    assert check["status"] == "fail"
    assert f"group gid 0, expected {host.gid}" in check["detail"]


def test_a_planted_fifo_is_refused_not_waited_on(host: Host) -> None:
    os.mkfifo(host.state / "state.db")
    proc = host.member("requests", timeout=30)
    assert proc.returncode == 7
    assert "not a regular file" in proc.stderr
