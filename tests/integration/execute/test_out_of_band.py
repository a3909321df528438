"""Package changes behind aegisd's back are found, recorded once, and never its own applies.

Real dpkg and apt change a throwaway root while a real aegisd (subprocess) runs; the
monitor pass and ``aegis drift`` (CLIs) ask aegisd over its findings socket.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from aegis.devtools import testrepo
from aegis.execute.protocol import Request, call
from aegis.oob.serve import beside

from .chain_helpers import AEGIS, Chain, make_chain, run_cli
from .conftest import Daemon

pytestmark = pytest.mark.root


@pytest.fixture
def chain(tmp_path: Path, key_set):  # type: ignore[no-untyped-def]
    return make_chain(tmp_path, key_set)


@pytest.fixture
def daemon(chain: Chain, sock_dir: Path, key_set, tmp_path: Path):  # type: ignore[no-untyped-def]
    # The socket where the CLIs look for it (AEGIS_RUN_DIR), so `aegis monitor` finds the
    # findings socket beside it.
    chain.env["AEGIS_RUN_DIR"] = str(sock_dir)
    d = Daemon(
        chain.home,
        sock_dir / "aegisd.sock",
        dict(chain.env),
        ["--public-key-hex", key_set.signer_pub, "--approval-public-key-hex", key_set.approver_pub],
        tmp_path / "aegisd.log",
    )
    d.start()
    yield d
    d.stop()


def _deb(chain: Chain, name: str, version: str) -> Path:
    [deb] = list(chain.repo.path.rglob(f"{name}_{version}_*.deb"))
    return deb


def _dpkg_i(chain: Chain, deb: Path) -> None:
    r = chain.root.root
    subprocess.run(
        [
            "dpkg",
            f"--root={r}",
            f"--log={r}/var/log/dpkg.log",
            "--force-script-chrootless",
            "-i",
            str(deb),
        ],
        check=True,
        capture_output=True,
        env=testrepo.apt_env(chain.root),
    )


def _apt(chain: Chain, *args: str, sudo_uid: str | None = None) -> None:
    env = testrepo.apt_env(chain.root)
    if sudo_uid is not None:
        env["SUDO_UID"] = sudo_uid  # apt records Requested-By for a run under sudo
    subprocess.run(["apt-get", *args], check=True, capture_output=True, env=env, timeout=120)


def _record(d: Daemon) -> Any:
    return call(str(beside(d.socket)), Request(op="record-out-of-band"), timeout_s=60)


def _oob(d: Daemon) -> list[dict[str, Any]]:
    return [e for e in d.audit_events() if e["kind"] == "out-of-band-change"]


def test_changes_behind_aegisds_back_are_named_once(chain: Chain, daemon: Daemon) -> None:
    assert (daemon.cfg.log_dir / "package-baseline.json").exists()
    _dpkg_i(chain, _deb(chain, "aegis-base", "1.0"))
    _apt(chain, "install", "-y", "aegis-benign=1.0", sudo_uid="65534")
    _apt(chain, "remove", "-y", "aegis-benign")
    # The monitor pass finds them and has aegisd record them (it never writes the log).
    out = run_cli([*AEGIS, "monitor", "--json"], chain.env)
    oob = json.loads(out.stdout)["out_of_band"]
    assert oob["status"] == "recorded", oob
    events = _oob(daemon)
    got = {(e["details"]["package"], e["details"]["action"]): e["details"] for e in events}
    assert set(got) == {
        ("aegis-base", "install"),
        ("aegis-benign", "install"),
        ("aegis-benign", "remove"),
    }
    base = got[("aegis-base", "install")]
    assert (base["tool"], base["to"], base["commandline"]) == ("dpkg", "1.0", None)
    inst = got[("aegis-benign", "install")]
    assert inst["tool"] == "apt-get"
    assert "install -y aegis-benign=1.0" in inst["commandline"]
    assert (inst["user"], inst["uid"]) == ("nobody", 65534)
    assert events[0]["actor"]["uid"] == 65534 or events[0]["details"]["uid"] is None
    rem = got[("aegis-benign", "remove")]
    assert (rem["tool"], rem["from"], rem["to"]) == ("apt-get", "1.0", None)
    assert daemon.audit_events()[-1]["kind"] == "checkpoint"
    prom = (daemon.cfg.metrics_dir / "aegis.prom").read_text()
    assert 'aegis_out_of_band_changes_total{tool="apt-get"} 2' in prom
    assert 'aegis_out_of_band_changes_total{tool="dpkg"} 1' in prom
    # Once: the next pass records nothing more.
    assert _record(daemon).result["recorded"] == []
    assert len(_oob(daemon)) == 3
    # aegis drift lists them from the log, with --since and --json.
    drift = json.loads(run_cli([*AEGIS, "drift", "--json"], chain.env).stdout)
    assert len(drift["recorded"]) == 3
    assert drift["pending"] == []
    assert (
        json.loads(run_cli([*AEGIS, "drift", "--since", "2099-01-01", "--json"], chain.env).stdout)[
            "recorded"
        ]
        == []
    )
    text = run_cli([*AEGIS, "drift"], chain.env).stdout
    assert "dpkg directly" in text
    assert "apt-get install -y aegis-benign=1.0" in text


def test_a_signed_apply_is_never_reported(chain: Chain, daemon: Daemon) -> None:
    answer = daemon.submit(chain.sign(chain.plan("aegis-tool")))
    assert answer.ok, answer
    assert _record(daemon).result["recorded"] == []
    assert _oob(daemon) == []
    # A change just before an apply is recorded by aegisd first, and the apply is still not.
    _dpkg_i(chain, _deb(chain, "aegis-benign", "1.0"))
    answer = daemon.submit(chain.sign(chain.plan("aegis-held")))
    assert answer.ok, answer
    assert [e["details"]["package"] for e in _oob(daemon)] == ["aegis-benign"]
    assert _record(daemon).result["recorded"] == []


def test_pending_until_aegisd_records_and_doctor_warns(chain: Chain, daemon: Daemon) -> None:
    daemon.stop()  # aegisd down: the change stays pending, never lost
    _dpkg_i(chain, _deb(chain, "aegis-base", "1.0"))
    out = json.loads(run_cli([*AEGIS, "monitor", "--json"], chain.env).stdout)
    assert out["out_of_band"]["status"] == "pending"
    assert [f["package"] for f in out["out_of_band"]["findings"]] == ["aegis-base"]
    doctor = run_cli([*AEGIS, "doctor", "--json"], chain.env, ok=False)
    [row] = [c for c in json.loads(doctor.stdout)["checks"] if c["name"] == "out-of-band changes"]
    assert row["status"] == "warn"
    assert "1 change" in row["detail"]
    daemon.start()  # at start aegisd records what happened while it was down
    assert [e["details"]["package"] for e in _oob(daemon)] == ["aegis-base"]
    assert json.loads(run_cli([*AEGIS, "drift", "--json"], chain.env).stdout)["pending"] == []


def test_findings_socket_refuses_anything_else(chain: Chain, daemon: Daemon) -> None:
    answer = call(str(beside(daemon.socket)), Request(op="apply", execution_plan="{}"))
    assert answer.refusal == "refused:findings-socket"
    assert daemon.audit_events()[-1]["decision"]["rule_ids"] == ["refused:findings-socket"]
