"""``aegis fleet plan`` as each kind of user on a host layout.

Fleet planning is planning: a member of group aegis (an agent, or the Ansible module run
as such a user) plans and gets its cohort, writing group-aegis files; an outsider gets
exit 7 with the join hint, like every other reading command.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from aegis.devtools import fleet_hosts, testrepo

from .conftest import MEMBER, Host

PLAN = ("fleet", "plan", "--no-review", "--no-contents", "--json", "--", "apt", "install")


@pytest.fixture(scope="module")
def apt_world() -> Iterator[testrepo.AptRoot]:
    base = Path(tempfile.mkdtemp(prefix="aegis-fleet-apt-", dir="/tmp"))
    try:
        repo = testrepo.build_repo(base / "repo")
        root = testrepo.make_root(base / "root", [repo])
        testrepo.apt_update(root)
        for path in [base, *base.rglob("*")]:
            if not path.is_symlink():
                path.chmod(0o755 if path.is_dir() else 0o644)
        yield root
    finally:
        shutil.rmtree(base, ignore_errors=True)


def test_member_plans_its_cohort_and_an_outsider_gets_7(
    host: Host, apt_world: testrepo.AptRoot
) -> None:
    host.etc.joinpath("policy.toml").write_text(fleet_hosts.policy_text(apt_world.repos[0]))
    host.etc.joinpath("policy.toml").chmod(0o644)
    host.env["AEGIS_APT_CONFIG"] = str(apt_world.apt_config)
    proc = host.member(*PLAN, "aegis-tool")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    row = json.loads(proc.stdout)
    assert row["decision"] == "require-approval"
    cohort = Path(row["cohort_path"])
    assert cohort.name == f"{row['cohort_hash']}.cohort.json"
    assert cohort.stat().st_uid == MEMBER
    assert cohort.stat().st_gid == host.gid
    outsider = host.run_as(MEMBER, *PLAN, "aegis-tool")
    assert outsider.returncode == 7, outsider.stdout + outsider.stderr
    assert f"adduser <user> {host.gid}" in outsider.stderr
