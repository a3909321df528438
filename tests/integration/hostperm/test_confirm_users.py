"""``aegisctl confirm`` as each kind of user: only root and aegis-apply keep a change.

Policy asks a human to confirm aegis-benign's upgrade; its probe passes. An agent (group
aegis only) and an outsider are refused and the change stays verifying; a member of the
apply group confirms it and aegisd keeps it (audited with that uid).
"""

from __future__ import annotations

import grp
import json
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from aegis.execute.verifications import Verifications
from tests.integration.execute.chain_helpers import AEGIS, apply_argv, run_cli
from tests.integration.execute.conftest import _RUNNING, Daemon
from tests.integration.execute.test_probes import _Service, benign_request

from .conftest import MEMBER, OTHER_MEMBER, SYSTEM_PYTHON, free_gid
from .test_monitor_reconciles import _share_store

pytestmark = pytest.mark.root

APPLY_GROUP = "users"
"""An existing group stands in for aegis-apply (the host's /etc/group is never touched)."""


@pytest.fixture
def public_base() -> Iterator[Path]:
    base = Path(tempfile.mkdtemp(prefix="aegis-confirm-", dir="/tmp"))
    base.chmod(0o755)
    yield base
    for daemon in list(_RUNNING):
        daemon.stop()
    shutil.rmtree(base, ignore_errors=True)


def test_only_root_or_the_apply_group_confirms_a_verifying_change(
    public_tree: Path, public_base: Path
) -> None:
    import subprocess

    try:
        apply_gid = grp.getgrnam(APPLY_GROUP).gr_gid
    except KeyError:
        pytest.skip(f"no group {APPLY_GROUP!r} on this machine")
    gid = free_gid()
    svc = _Service(always_ok=True)
    try:
        sr = benign_request(public_base, svc, "5m", confirm=True)
        # 0666: outsiders reach aegisd, so its own peer check is what refuses them.
        (sr.home / "etc/aegis/aegisd.toml").write_text(
            f'apply_group = "{APPLY_GROUP}"\nsocket_mode = "0666"\n'
        )
        env = {**sr.env, "AEGIS_GROUP": str(gid)}
        d = Daemon(
            sr.home,
            public_base / "a.sock",
            env,
            ["--public-key-hex", sr.signer_pub],
            public_base / "aegisd.log",
        ).start()
        out = run_cli(apply_argv(sr.execution_plan, sr.signer_pub, d.socket, "--json"), env)
        doc = json.loads(out.stdout)
        assert doc["request_state"] == "verifying", doc
        v = doc["answer"]["result"]["verification"]
        assert (v["probes_passed"], v["confirm"], v["state"]) == (True, True, "verifying")
        doctor = run_cli([*AEGIS, "doctor", "--json"], env, ok=False)
        [check] = [c for c in json.loads(doctor.stdout)["checks"] if c["name"] == "verifications"]
        assert (check["status"], f"verifying: {sr.request_id}" in check["detail"]) == ("ok", True)
        # While it is verifying no other change runs: a restore must undo only its own delta.
        again = d.submit(sr.execution_plan.read_bytes())
        assert again.refusal == "refused:verifying", again
        _share_store(sr.home, gid)
        user_env = {
            **env,
            "PATH": "/usr/sbin:/usr/bin:/sbin:/bin",
            "PYTHONPATH": f"{public_tree / 'site'}:{public_tree / 'src'}",
            "PYTHONDONTWRITEBYTECODE": "1",
            "HOME": "/",
        }

        def confirm_as(uid: int, primary: int, groups: str) -> subprocess.CompletedProcess[str]:
            return subprocess.run(
                [
                    "setpriv",
                    f"--reuid={uid}",
                    f"--regid={primary}",
                    groups,
                    SYSTEM_PYTHON,
                    "-c",
                    "from aegis.cli.aegisctl import main; main()",
                    "confirm",
                    sr.request_id,
                    "--socket",
                    str(d.socket),
                    "--json",
                ],
                env=user_env,
                capture_output=True,
                text=True,
                cwd="/",
                timeout=120,
                check=False,
            )

        agent = confirm_as(MEMBER, gid, "--clear-groups")
        assert agent.returncode == 4, (agent.stdout, agent.stderr)
        assert "refused:peer" in agent.stderr
        outsider = confirm_as(OTHER_MEMBER, OTHER_MEMBER, "--clear-groups")
        assert outsider.returncode not in (0, 1, 2), (outsider.stdout, outsider.stderr)
        rows = Verifications(d.cfg.ledger_path)
        row = rows.get(doc["execution_id"])
        assert row is not None
        assert (row.state, row.confirmed_by) == ("verifying", None)

        member = confirm_as(MEMBER, apply_gid, f"--groups={gid}")
        assert member.returncode == 0, (member.stdout, member.stderr)
        assert json.loads(member.stdout)["verification"]["state"] == "passed"
        row = rows.get(doc["execution_id"])
        assert row is not None
        assert (row.state, row.confirmed_by) == ("passed", MEMBER)
        kinds = [e["kind"] for e in d.audit_events() if e.get("request_id") == sr.request_id]
        assert "verify-confirmed" in kinds
        assert kinds[-1] == "verify-passed"
        run_cli([*AEGIS, "resume"], env, ok=False)
        shown = json.loads(run_cli([*AEGIS, "show", sr.request_id, "--json"], env).stdout)
        assert shown["request"]["state"] == "audited"
    finally:
        svc.close()
