"""Root-side decisions do not trust what members of group aegis can write.

An agent (uid 65534 in group aegis, a real process through ``setpriv``) attacks the
group-writable store; aegisd (root, a real daemon applying to a throwaway root) must
still hold the change.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.execute.chain_helpers import make_chain
from tests.integration.execute.conftest import (  # noqa: F401 (fixtures)
    Keys,
    key_set,
    make_daemon,
    sock_dir,
)
from tests.integration.execute.test_attack_table import sign

from .conftest import MEMBER, SYSTEM_PYTHON, Host, free_gid
from .test_monitor_reconciles import _share_store

pytestmark = pytest.mark.root

BACKDATE = (
    "import sqlite3, sys\n"
    "db = sqlite3.connect(sys.argv[1])\n"
    "n = db.execute(\"UPDATE first_seen SET first_seen_at = '2020-01-01T00:00:00Z', \"\n"
    "               \"release_date = '2020-01-01T00:00:00Z'\").rowcount\n"
    "db.commit()\n"
    "print(n)\n"
)


@pytest.fixture
def base() -> Iterator[Path]:
    """A temp dir other users can traverse (pytest's tmp_path is root's only)."""
    d = Path(tempfile.mkdtemp(prefix="aegis-trust-", dir="/tmp"))
    d.chmod(0o755)
    yield d
    shutil.rmtree(d, ignore_errors=True)


def as_member(gid: int, *argv: str) -> subprocess.CompletedProcess[str]:
    cmd = ["setpriv", f"--reuid={MEMBER}", f"--regid={MEMBER}", f"--groups={gid}"]
    return subprocess.run(
        [*cmd, SYSTEM_PYTHON, *argv], capture_output=True, text=True, cwd="/", check=False
    )


def test_backdated_first_seen_does_not_skip_the_release_age_quarantine(
    base: Path,
    key_set: Keys,  # noqa: F811
    make_daemon,  # type: ignore[no-untyped-def]  # noqa: F811
) -> None:
    chain = make_chain(base, key_set)
    policy = chain.cfg.policy_path
    assert "min_release_age_s = 0 " in policy.read_text()
    policy.write_text(
        policy.read_text().replace("min_release_age_s = 0 ", "min_release_age_s = 259200 ")
    )
    env = {k: v for k, v in chain.env.items() if k in ("AEGIS_APT_CONFIG", "AEGIS_DPKG_ROOT")}
    d = make_daemon(env_extra=env, home=chain.home)
    first = chain.plan("aegis-tool")  # the store records the version as first seen now
    assert first.first_seen
    gid = free_gid()
    _share_store(chain.home, gid)
    attack = as_member(gid, "-c", BACKDATE, str(chain.cfg.store_path))
    assert attack.returncode == 0, attack.stderr
    assert int(attack.stdout) >= 1
    plan = chain.plan("aegis-tool")
    assert {f.first_seen for f in plan.first_seen} == {"2020-01-01T00:00:00Z"}
    data = sign(chain, plan)  # policy on the store's evidence: old enough
    from aegis.sign.execution_plan import parse_execution_plan

    assert "package.release-age" not in parse_execution_plan(data).policy.rule_ids
    answer = d.submit(data)
    assert answer.ok is False, answer
    assert answer.refusal == "refused:policy", answer
    assert "not signed: package.release-age" in answer.message, answer
    assert "aegis-tool" not in chain.installed()


TRACKER = {
    "openssl": {
        "CVE-2026-0001": {
            "description": "overflow",
            "releases": {"bookworm": {"status": "open", "urgency": "high", "repositories": {}}},
        }
    }
}
PLANT = (
    "import json, os, sys\n"
    "path = sys.argv[1]\n"
    "doc = json.load(open(path))\n"
    "doc['entries'] = {}\n"
    "tmp = path + '.agent'\n"
    "with open(tmp, 'w') as f:\n"
    "    json.dump(doc, f, sort_keys=True, separators=(',', ':'))\n"
    "os.chmod(tmp, 0o644)\n"
    "os.replace(tmp, path)\n"
)


def test_only_root_writes_the_vulnerability_index_and_an_agents_is_no_data(host: Host) -> None:
    import json
    import os

    tracker = host.root / "tracker.json"
    tracker.write_text(json.dumps(TRACKER))
    tracker.chmod(0o644)
    refused = host.member("vulndb", "import", str(tracker))
    assert refused.returncode == 7, refused.stderr
    assert "only root may import" in refused.stderr
    assert not (host.state / "vulndb.json").exists()
    imported = host.run_as(None, "vulndb", "import", str(tracker))
    assert imported.returncode == 0, imported.stderr
    st = os.stat(host.state / "vulndb.json")
    assert (st.st_uid, st.st_mode & 0o022) == (0, 0)
    seen = host.member("vulndb", "status", "--json")
    assert seen.returncode == 0, seen.stderr
    assert json.loads(seen.stdout)["entries"] == 1
    # The attack: an agent's index without the vulnerability, in root's file's place. The
    # sticky store refuses the rename; on a layout without the sticky bit (an install
    # older than it) it succeeds, and the readers refuse what it left.
    planted = host.member(str(host.state / "vulndb.json"), python=("-c", PLANT))
    assert planted.returncode == 1, planted.stderr
    assert "Operation not permitted" in planted.stderr
    host.state.chmod(0o2770)
    planted = host.member(str(host.state / "vulndb.json"), python=("-c", PLANT))
    assert planted.returncode == 0, planted.stderr
    assert os.stat(host.state / "vulndb.json").st_uid == MEMBER
    status = host.member("vulndb", "status", "--json")
    assert status.returncode == 3, status.stderr
    assert "only an index root imported is trusted" in status.stderr
    # Planning and aegisd read it through the same loader: no data, named.
    probe = (
        "from aegis.ecosystems.apt.inspect import match_vulnerabilities\n"
        "from aegis.config import load_config\n"
        "r = match_vulnerabilities(load_config(), ())\n"
        "print(r.db_date, [s.name for s in r.signals])\n"
    )
    as_root = host.run_as(None, python=("-c", probe))
    assert as_root.returncode == 0, as_root.stderr
    assert as_root.stdout.split(" ", 1) == ["None", "['vulnerability.db-invalid']\n"]


PLANT_OWN = (
    "import os, sys\n"
    "path = os.path.join(sys.argv[1], 'mine')\n"
    "for body in ('a', 'b'):\n"
    "    open(path + '.tmp', 'w').write(body)\n"
    "    os.replace(path + '.tmp', path)\n"
)

RENAME = (
    "import os, sys\n"
    "state = sys.argv[1]\n"
    "for name in sys.argv[2:]:\n"
    "    try:\n"
    "        os.rename(os.path.join(state, name), os.path.join(state, name + '.moved'))\n"
    "    except PermissionError:\n"
    "        print(name, 'refused')\n"
    "    else:\n"
    "        print(name, 'moved')\n"
)


def test_a_member_cannot_move_roots_entries_out_of_the_sticky_store(host: Host) -> None:
    import os

    # What root owns at the store's top level: aegisd's directory (the fixture's), the
    # store file, the vulnerability index; and one entry of another member's.
    (host.state / "state.db").touch()
    (host.state / "vulndb.json").touch()
    os.chown(host.state / "state.db", 0, host.gid)
    (host.state / "other").mkdir()
    os.chown(host.state / "other", 65533, host.gid)
    names = ("aegisd", "state.db", "vulndb.json", "other")
    moved = host.member(str(host.state), *names, python=("-c", RENAME))
    assert moved.returncode == 0, moved.stderr
    assert moved.stdout.split("\n")[:4] == [f"{n} refused" for n in names]
    assert (host.state / "aegisd").is_dir()
    # The member still creates, and replaces, its own entries there.
    own = host.member(str(host.state), python=("-c", PLANT_OWN))
    assert own.returncode == 0, own.stderr
