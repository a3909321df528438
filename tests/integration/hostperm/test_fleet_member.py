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
from typing import Any

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
    assert "adduser <user>" in outsider.stderr
    assert f"adduser <user> {host.gid}" in outsider.stderr


CTL = ("-c", "from aegis.cli.aegisctl import main; main()")


def _free_gid_but(taken: int) -> int:
    import grp

    for gid in range(48000, 49000):
        try:
            grp.getgrgid(gid)
        except KeyError:
            if gid != taken:
                return gid
    raise AssertionError("no free gid")


def _own(path: Path, uid: int) -> None:
    import os

    for p in [path, *path.rglob("*")]:
        os.chown(p, uid, uid)


def test_cohort_approval_as_each_kind_of_user(host: Host, apt_world: testrepo.AptRoot) -> None:
    """Root and an aegis-apply member approve with their trusted keys; an agent cannot.

    An agent (group aegis only) holds no approver key: an operator's key is unreadable to
    it, and one it makes itself is not trusted here, so ``approve --cohort`` refuses before
    writing anything (exit 4) rather than leave a file that would never count. An
    outsider cannot read the cohort at all (exit 7). No traceback for anyone.
    """
    import os

    from aegis.sign import keys
    from tests.integration.hostperm.conftest import OTHER_MEMBER

    host.etc.joinpath("policy.toml").write_text(fleet_hosts.policy_text(apt_world.repos[0]))
    host.etc.joinpath("policy.toml").chmod(0o644)
    host.env["AEGIS_APT_CONFIG"] = str(apt_world.apt_config)
    planned = host.member(*PLAN, "aegis-tool")
    assert planned.returncode == 0, planned.stdout + planned.stderr
    cohort = json.loads(planned.stdout)["cohort_hash"]
    # Keys: root's (bob) in a root-only directory, the apply member's (carol) in its own.
    bob, _ = keys.write_keypair(host.root / "root-keys", "approver", name="bob")
    (host.root / "root-keys").chmod(0o700)
    carol, _ = keys.write_keypair(host.root / "carol-keys", "approver", name="carol")
    _own(host.root / "carol-keys", MEMBER)
    (host.root / "carol-keys").chmod(0o700)
    trusted = host.etc / "keys" / "approvers"
    trusted.mkdir(parents=True)
    for pub in (bob.with_suffix(".pub"), carol.with_suffix(".pub")):
        trusted.joinpath(pub.name).write_bytes(pub.read_bytes())
    for p in [host.etc / "keys", trusted, *trusted.iterdir()]:
        p.chmod(0o755 if p.is_dir() else 0o644)
    approvals = host.state / "cohort-approvals"

    def approve(uid: int | None, key: Path, who: str, **kw: Any) -> Any:
        argv = ("approve", "--cohort", cohort, "--reason", "CHG-15 fleet", "--key", str(key))
        return host.run_as(uid, *argv, "--approver", who, "--json", python=CTL, **kw)

    as_root = approve(None, bob, "bob")
    assert as_root.returncode == 0, as_root.stdout + as_root.stderr
    assert Path(json.loads(as_root.stdout)["path"]).parent == approvals
    apply_gid = _free_gid_but(host.gid)
    member = approve(MEMBER, carol, "carol", gid=apply_gid, groups=(host.gid,))
    assert member.returncode == 0, member.stdout + member.stderr
    made = Path(json.loads(member.stdout)["path"])
    assert (made.stat().st_uid, made.stat().st_gid) == (MEMBER, host.gid)
    before = sorted(os.listdir(approvals))

    # An agent: an operator's key is unreadable to it ...
    agent = approve(OTHER_MEMBER, bob, "bob", groups=(host.gid,))
    assert agent.returncode == 4, agent.stdout + agent.stderr
    assert "cannot read key file" in agent.stderr
    # ... and its own approver key is no approver here.
    own = host.root / "agent-keys"
    own.mkdir()
    _own(own, OTHER_MEMBER)
    made_key = host.run_as(
        OTHER_MEMBER, "keygen", "--role", "approver", "--out", str(own), python=CTL
    )
    assert made_key.returncode == 0, made_key.stdout + made_key.stderr
    forged = approve(OTHER_MEMBER, own / "approver.key", "bob", groups=(host.gid,))
    assert forged.returncode == 4, forged.stdout + forged.stderr
    assert "is not trusted here as an approver" in forged.stderr
    assert "none was written" in forged.stderr
    # An outsider cannot read the cohort document in the state directory.
    outsider = approve(OTHER_MEMBER, own / "approver.key", "eve")
    assert outsider.returncode == 7, outsider.stdout + outsider.stderr
    assert "adduser <user>" in outsider.stderr
    for proc in (agent, forged, outsider):
        assert "Traceback" not in proc.stderr
    assert sorted(os.listdir(approvals)) == before
