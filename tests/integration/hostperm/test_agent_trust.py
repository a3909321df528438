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

from .conftest import MEMBER, SYSTEM_PYTHON, free_gid
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
