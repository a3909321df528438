"""Upgrade planning with contents inspected, 200 upgradable packages (issue 12 figure).

A signed ``file:`` repository of 200 small packages at 2.0 and a throwaway root whose
dpkg status lists them at 1.0 (nothing of the host is read or changed). In one run,
after one warm-up of each side, ROUNDS rounds alternating which side goes first, each
side with a cold cache; the figures are the medians (a machine shared with other work
makes single rounds vary by a factor of two):

- ``upgrade_contents_s``: ``aegis apt upgrade --plan`` as the CLI plans it (simulation,
  provenance, every .deb read (this local repository's in place), hashed against its
  signed provenance and scanned, first sightings, the plan and request written to a
  temporary AEGIS_HOME, its store created).
- ``apt_s_plus_download_s``: ``apt-get -s upgrade`` plus ``apt-get download`` of the same
  200 packages into an empty directory, under the root's private APT_CONFIG.
- ``upgrade_contents_ratio``: the first over the second (goal <= 1.5).
"""

from __future__ import annotations

import shutil
import statistics
import subprocess
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

PACKAGES = 200
ROUNDS = 9
GOAL = 1.5


def _setup(base: Path) -> tuple[Any, list[str]]:
    from aegis.devtools import testrepo

    names = [f"bench-up{i:03d}" for i in range(PACKAGES)]
    specs = [testrepo.PackageSpec(n, "2.0", description=f"bench package {n}") for n in names]
    repo = testrepo.build_repo(base / "repo", packages=specs)
    status = "".join(
        f"Package: {n}\nStatus: install ok installed\nPriority: optional\nSection: misc\n"
        f"Maintainer: Aegis Bench <bench@example.invalid>\nArchitecture: all\n"
        f"Version: 1.0\nDescription: bench package {n}\n\n"
        for n in names
    )
    root = testrepo.make_root(base / "root", [repo], status=status)
    testrepo.apt_update(root)
    return root, names


def _aegis(root: Any, base: Path, n: int) -> float:
    from aegis import api
    from aegis.analyze.stamps import format_time
    from aegis.config import load_config
    from aegis.ecosystems.apt.plan import analyze_apt
    from aegis.model import Intent, Operation, Tool

    cfg = load_config(
        {
            "AEGIS_HOME": str(base / f"home{n}"),
            "AEGIS_HOST_ID": "bench",
            "AEGIS_APT_CONFIG": str(root.apt_config),
            "AEGIS_DPKG_ROOT": str(root.root),
        }
    )
    start = time.perf_counter()
    now = datetime.now(UTC)
    intent = Intent(Tool.APT, Operation.UPGRADE, (), "bench", format_time(now))
    plan = analyze_apt(cfg, intent, now=now, inspect_contents=True)
    if plan.failure is not None:
        raise RuntimeError(f"planning failed: {plan.failure}")
    if not plan.content_inspected or len(plan.changes) != PACKAGES:
        raise RuntimeError(f"unexpected plan: {len(plan.changes)} changes")
    api.submit_plan(cfg, plan, "bench")
    return time.perf_counter() - start


def _apt(root: Any, base: Path, names: list[str], n: int) -> float:
    from aegis.devtools import testrepo

    env = testrepo.apt_env(root)
    dest = base / f"download{n}"
    dest.mkdir()
    start = time.perf_counter()
    subprocess.run(["/usr/bin/apt-get", "-s", "upgrade"], env=env, capture_output=True, check=True)
    subprocess.run(
        ["/usr/bin/apt-get", "download", *names],
        env=env,
        cwd=dest,
        capture_output=True,
        check=True,
    )
    elapsed = time.perf_counter() - start
    if len(list(dest.glob("*.deb"))) != PACKAGES:
        raise RuntimeError("apt-get download did not fetch every package")
    return elapsed


def run() -> dict[str, Any]:
    """Measure the figures above in this one run."""
    base = Path(tempfile.mkdtemp(prefix="aegis-bench-upgrade-"))
    try:
        root, names = _setup(base)
        _aegis(root, base, 0)  # warm-ups: page cache, imports
        _apt(root, base, names, 0)
        ours, theirs = [], []
        for n in range(1, ROUNDS + 1):
            if n % 2:
                theirs.append(_apt(root, base, names, n))
                ours.append(_aegis(root, base, n))
            else:
                ours.append(_aegis(root, base, n))
                theirs.append(_apt(root, base, names, n))
    finally:
        shutil.rmtree(base, ignore_errors=True)
    a, b = statistics.median(ours), statistics.median(theirs)
    return {
        "packages": PACKAGES,
        "upgrade_contents_s": round(a, 3),
        "apt_s_plus_download_s": round(b, 3),
        "upgrade_contents_ratio": round(a / b, 3),
        "goal_ratio": GOAL,
        "meets_goal": a / b <= GOAL,
    }


if __name__ == "__main__":
    import json

    print(json.dumps(run(), indent=2))
