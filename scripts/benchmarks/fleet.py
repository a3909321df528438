"""Fleet planning figure (issue 15 "Figures"): 50 local hosts through Ansible.

HOSTS local hosts (``aegis.devtools.fleet_hosts``: each its own AEGIS_HOME, throwaway root
updated from one signed test repository, own host id) plan ``apt install aegis-tool``
(analysis with content inspection, review skipped by configuration: no model here,
policy, cohort):

- ``fleet_s``: ``ansible-playbook aegis.ops.plan`` over all hosts with FORKS forks (local
  connection per host): the module ``aegis_plan`` runs ``aegis fleet plan`` on each host;
  run first, so any cache the first plan of a host warms favours the other side;
- ``sequential_s``: the same single-host plan (``aegis fleet plan -- apt install
  aegis-tool`` with the host's environment) run host after host.

Goal (issue 15): ``fleet_s`` at most 1.5 times ``sequential_s / forks``, reported as
``fleet_over_sequential_per_fork``. FORKS is the machine's CPU count (at least 2): forks
beyond the cores only queue for them.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HOSTS = int(os.environ.get("AEGIS_BENCH_FLEET_HOSTS", "50"))
"""50 as the issue asks; the variable is for a quick look while working on this."""
HERE = Path(__file__).resolve().parents[2]
INTENT = ["apt", "install", "aegis-tool"]


def _hosts(tmp: Path) -> list[Any]:
    from aegis.devtools import fleet_hosts, testrepo

    repo = testrepo.build_repo(tmp / "repo")
    return [
        fleet_hosts.make_host(tmp, f"h{i:02d}", repo, trusted_pubs={}, socket_dir=tmp)
        for i in range(HOSTS)
    ]


def _sequential(hosts: list[Any]) -> float:
    base = {k: v for k, v in os.environ.items() if not k.startswith("AEGIS_")}
    argv = [sys.executable, "-m", "aegis", "fleet", "plan", "--no-review", "--json", "--"]
    start = time.perf_counter()
    for h in hosts:
        env = {**base, **h.env, "PYTHONPATH": str(HERE)}
        subprocess.run([*argv, *INTENT], env=env, capture_output=True, check=True, cwd=HERE)
    return time.perf_counter() - start


def _fleet(tmp: Path, hosts: list[Any], forks: int) -> float:
    from aegis.devtools import fleet_hosts

    inventory = fleet_hosts.write_inventory(
        tmp / "inventory.json",
        hosts,
        aegis_command=[sys.executable, "-m", "aegis"],
        aegis_review=False,
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AEGIS_", "ANSIBLE_"))}
    env.update(
        ANSIBLE_COLLECTIONS_PATH=str(HERE),
        ANSIBLE_HOME=str(tmp / "ansible-home"),
        ANSIBLE_LOCAL_TEMP=str(tmp / "ansible-tmp"),
        # The module's code over the connection's stdin, not copied to a file per host:
        # what the operator guide recommends for fleets.
        ANSIBLE_PIPELINING="1",
        PYTHONPATH=str(HERE),
    )
    playbook = str(Path(sys.executable).with_name("ansible-playbook"))
    extra = {"aegis_intent": INTENT, "aegis_report": str(tmp / "plan.jsonl")}
    argv = [playbook, "-i", str(inventory), "-f", str(forks), "aegis.ops.plan"]
    start = time.perf_counter()
    subprocess.run(
        [*argv, "-e", json.dumps(extra)], env=env, capture_output=True, check=True, cwd=tmp
    )
    elapsed = time.perf_counter() - start
    rows = (tmp / "plan.jsonl").read_text().splitlines()
    if len(rows) != HOSTS:
        raise RuntimeError(f"the playbook reported {len(rows)} of {HOSTS} hosts")
    return elapsed


def run() -> dict[str, Any]:
    """Plan on HOSTS local hosts through Ansible, then one by one."""
    forks = max(2, os.cpu_count() or 2)
    tmp = Path(tempfile.mkdtemp(prefix="aegis-bench-fleet-"))
    try:
        hosts = _hosts(tmp)
        fleet_s = _fleet(tmp, hosts, forks)
        sequential_s = _sequential(hosts)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return {
        "hosts": HOSTS,
        "forks": forks,
        "fleet_s": round(fleet_s, 2),
        "sequential_s": round(sequential_s, 2),
        "sequential_per_host_s": round(sequential_s / HOSTS, 3),
        "fleet_over_sequential_per_fork": round(fleet_s / (sequential_s / forks), 3),
        "goal_fleet_over_sequential_per_fork": 1.5,
    }
