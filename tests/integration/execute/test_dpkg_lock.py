"""dpkg's lock around aegisd's run, and removals that never go beyond the signed set.

A held dpkg lock is a refusal before anything is spent; from re-derivation to the end of
the run aegisd holds dpkg's frontend lock, so no other apt or dpkg can move the state
it checked; a removal whose reverse dependencies changed after signing is refused.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from aegis.devtools import testrepo
from aegis.execute.ledger import Ledger
from aegis.model import Operation

from .chain_helpers import AEGIS, apply_argv, make_chain, run_cli, signed_request
from .conftest import Daemon

pytestmark = pytest.mark.root

_HOLD = """
import fcntl, os, sys, time
fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT, 0o640)
fcntl.lockf(fd, fcntl.LOCK_EX)  # what apt's GetLock takes
print("held", flush=True)
sys.stdin.read()
"""


class _Holder:
    """Another process holding one of dpkg's locks, the way apt holds it."""

    def __init__(self, path: Path) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-c", _HOLD, str(path)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stdout is not None
        assert self.proc.stdout.readline().strip() == "held"

    def release(self) -> None:
        self.proc.communicate(timeout=30)  # closes stdin: the holder exits, the lock goes


def _state(env: dict[str, str], request_id: str) -> str:
    out = run_cli([*AEGIS, "requests", "--json"], env).stdout
    [req] = [r for r in json.loads(out)["requests"] if r["id"] == request_id]
    return str(req["state"])


@pytest.mark.parametrize("lock", ["lock-frontend", "lock"])
def test_a_held_dpkg_lock_is_a_refusal_that_leaves_the_request_signed(
    tmp_path: Path, sock_dir: Path, lock: str
) -> None:
    sr = signed_request(tmp_path)
    d = Daemon(
        sr.home, sock_dir / "a.sock", sr.env, ["--public-key-hex", sr.signer_pub], tmp_path / "l"
    ).start()
    holder = _Holder(sr.root.root / "var/lib/dpkg" / lock)
    apply = apply_argv(sr.execution_plan, sr.signer_pub, d.socket)
    try:
        refused = run_cli(apply, sr.env, ok=False)
        assert refused.returncode == 7, refused.stderr
        assert "refused:dpkg-locked" in refused.stderr
        assert f"held by process {holder.proc.pid}" in refused.stderr
        assert _state(sr.env, sr.request_id) == "signed"
        # Straight to aegisd, past the client's question: refused before anything is
        # spent (the ledger never saw the id), and audited.
        answer = d.submit(sr.execution_plan.read_bytes())
        assert answer.refusal == "refused:dpkg-locked", answer
        assert Ledger(d.cfg.ledger_path).entries() == []
        *_, last, checkpoint = d.audit_events()
        assert (last["kind"], checkpoint["kind"]) == ("apply-refused", "checkpoint")
        assert last["decision"]["rule_ids"] == ["refused:dpkg-locked"]
    finally:
        holder.release()
    run_cli(apply, sr.env)
    assert _state(sr.env, sr.request_id) == "audited"
    d.stop()


@pytest.fixture
def removal(tmp_path: Path, key_set: Any) -> Any:
    chain = make_chain(tmp_path, key_set)
    testrepo.run_apt(chain.root, "install", "-y", "aegis-base")
    return chain


def _daemon(make_daemon: Any, chain: Any, **env: str) -> Daemon:
    extra = {k: v for k, v in chain.env.items() if k in ("AEGIS_APT_CONFIG", "AEGIS_DPKG_ROOT")}
    extra.update(env)
    d: Daemon = make_daemon(env_extra=extra, home=chain.home)
    return d


def test_a_reverse_dependency_installed_after_signing_refuses_the_removal(
    make_daemon: Any, removal: Any
) -> None:
    d = _daemon(make_daemon, removal)
    data = removal.sign(removal.plan("aegis-base", op=Operation.REMOVE))
    # Between signing and applying, a package that needs aegis-base arrives: removing
    # aegis-base now would also remove aegis-tool, which nobody signed.
    testrepo.run_apt(removal.root, "install", "-y", "aegis-tool")
    answer = d.submit(data)
    assert answer.refusal == "refused:rederivation", answer
    assert removal.installed() == {"aegis-base": "1.2", "aegis-tool": "2.0"}
    assert Ledger(d.cfg.ledger_path).entries() == []


def test_nothing_can_change_dpkg_between_rederivation_and_the_run(
    make_daemon: Any, removal: Any, tmp_path: Path
) -> None:
    hooks = tmp_path / "hooks"
    hooks.mkdir()
    d = _daemon(make_daemon, removal, AEGIS_TEST_HOOKS="1", AEGIS_TEST_HOOK_DIR=str(hooks))
    data = removal.sign(removal.plan("aegis-base", op=Operation.REMOVE))
    (hooks / "before-run.wait").touch()
    answers: list[Any] = []
    t = threading.Thread(target=lambda: answers.append(d.submit(data)))
    t.start()
    deadline = time.monotonic() + 60
    while not (hooks / "before-run.reached").exists():
        assert time.monotonic() < deadline
        time.sleep(0.02)
    # aegisd has re-derived "remove aegis-base" and is about to run it: the reverse
    # dependency cannot be slipped in now, neither through apt nor through dpkg.
    apt = testrepo.run_apt(removal.root, "install", "-y", "aegis-tool", check=False)
    assert apt.returncode == 100
    assert "Unable to acquire the dpkg frontend lock" in apt.stderr
    debs = sorted(removal.repo.path.rglob("aegis-tool_2.0_all.deb"))
    dpkg = subprocess.run(
        [
            "/usr/bin/dpkg",
            f"--root={removal.root.root}",
            "--force-script-chrootless",
            "-i",
            str(debs[0]),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert dpkg.returncode != 0
    assert "lock" in dpkg.stderr
    (hooks / "before-run.go").touch()
    t.join(120)
    [answer] = answers
    assert answer.ok, answer
    assert removal.installed() == {}
    finished = [e for e in d.audit_events() if e["kind"] == "apply-finished"][-1]
    assert finished["argv"][:3] == ["/usr/bin/apt-get", "-y", "remove"]
    assert finished["details"]["changed_packages"] == ["aegis-base:all"]
    assert finished["details"]["drift"] == []
