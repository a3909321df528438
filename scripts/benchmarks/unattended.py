"""Automatic upgrade figure (issue 19 "Figures"): one automatic pass against unattended-upgrade.

One ``aegis unattended run`` pass for a single security update, timer to applied, against
Debian's ``unattended-upgrade`` installing the same update, in this one run:

- ``uu_s``: ``unattended-upgrade`` itself, as apt-daily-upgrade.service runs it, in a
  chroot of the cached fresh Debian root with ``unattended-upgrades`` installed
  (scripts/benchmarks/_uu_root.py: it cannot be pointed at a throwaway root otherwise),
  its Origins-Pattern allowing the "security" repository; ``aegis-base`` 1.2 installed,
  1.3 published there. Reset to 1.2 before each round.
- ``pass_s``: ``aegis unattended run`` as aegis-unattended.service runs it (a new
  process) on a throwaway root with the same dpkg status, its AEGIS_HOME as an installed
  host's is before a daily pass (the store exists: it is created and migrated at its first
  use, not on every pass): ``apt upgrade`` analysis with
  content inspection, the review (skipped by configuration: no model here), policy, the
  scope check, ``aegisctl sign``'s re-checks with the automation key (the stored plan
  held to the pass's own analysis), and aegisd's apply with its own re-derivation,
  ledger, run, dpkg comparison, audit events and checkpoint.
- ``apt_s``: ``apt-get -y upgrade`` in the chroot (what both end in), for reference.

Medians over ROUNDS rounds. Goal (issue 19): ``pass_over_uu`` at most 1.5.
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROUNDS = 5
GOAL = 1.5
HERE = Path(__file__).resolve().parents[2]


def _policy(repo: Any, sec: Any) -> str:
    default = (HERE / "aegis/policy/default_policy.toml").read_text()
    out = default
    for name, r in (("test", repo), ("security", sec)):
        out += (
            f'\n[[sources]]\nname = "{name}"\nuri = "{r.uri}"\nsuite = "{r.suite}"\n'
            f'component = "main"\nsigner_fingerprint = "{r.fingerprint}"\npackages = ["aegis-*"]\n'
        )
    return out + (
        "\n[automation]\nenabled = true\n"
        f'[[automation.sources]]\nuri = "{sec.uri}"\nsuite = "{sec.suite}"\n'
        f'signer_fingerprint = "{sec.fingerprint}"\n'
    )


def _aegis_root(copy: Path, repo: Any, sec: Any) -> Any:
    """The chroot's copy as a throwaway root under a private APT_CONFIG (aegis-base 1.2)."""
    from aegis.devtools import testrepo

    # Its sources name file:/srv/..., which only resolve inside the chroot.
    (copy / "etc/apt/sources.list.d/aegis-bench.sources").unlink()
    root = testrepo.make_root(copy, [repo, sec])
    testrepo.apt_update(root)
    return root


def _uu_round(uu: Any) -> tuple[float, float]:
    """unattended-upgrade's time, then apt-get upgrade's, each from aegis-base 1.2."""
    times = []
    for command in ("unattended-upgrade", "apt-get -y -qq upgrade >/dev/null"):
        uu.sh("apt-get install -y -qq --allow-downgrades aegis-base=1.2 >/dev/null")
        t0 = time.perf_counter()
        uu.sh(command)
        times.append(time.perf_counter() - t0)
        if uu.version("aegis-base") != "1.3":
            raise RuntimeError(f"{command} did not install aegis-base 1.3")
    return times[0], times[1]


def _round(tmp: Path, root: Any, repo: Any, sec: Any, spub: str, *, pycache: Path) -> float:
    from aegis.config import load_config
    from aegis.devtools import testrepo
    from aegis.execute.protocol import Request, call
    from aegis.sign import keys
    from aegis.workflow.access import open_store

    testrepo.run_apt(root, "install", "-y", "--allow-downgrades", "aegis-base=1.2")
    sock_dir = Path(tempfile.mkdtemp(prefix="aegis-bench-u-", dir="/tmp"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("AEGIS_")}
    # An installed Aegis runs from compiled bytecode (pip compiles at install), as
    # unattended-upgrade's python3-apt does: keep it, in a cache outside the tree.
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env["PYTHONPYCACHEPREFIX"] = str(pycache)
    env.update(
        AEGIS_HOME=str(tmp / "home"),
        AEGIS_HOST_ID="bench-host",
        AEGIS_AUDIT_SYSLOG="0",
        AEGIS_APT_CONFIG=str(root.apt_config),
        AEGIS_DPKG_ROOT=str(root.root),
        AEGIS_RUN_DIR=str(sock_dir),
        AEGIS_REVIEW="false",
        PYTHONPATH=str(HERE),
    )
    cfg = load_config(env)
    cfg.etc_dir.mkdir(parents=True, exist_ok=True)
    cfg.policy_path.write_text(_policy(repo, sec))
    with open_store(cfg):  # an installed host's store exists before its daily pass
        pass
    tracker = tmp / "tracker.json"
    tracker.write_text('{"zlib": {}}\n')
    aegis = [sys.executable, "-m", "aegis"]
    subprocess.run(
        [*aegis, "vulndb", "import", str(tracker)],
        env=env,
        check=True,
        capture_output=True,
        cwd=HERE,
    )
    keys.write_keypair(cfg.keys_dir / "automation", "signer", name="automation")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "aegis.execute.aegisd",
            "--socket",
            str(sock_dir / "aegisd.sock"),
            "--public-key-hex",
            spub,
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        cwd=HERE,
    )
    try:
        for _ in range(500):
            try:
                call(str(sock_dir / "aegisd.sock"), Request(op="ping"), timeout_s=5)
                break
            except Exception:
                time.sleep(0.02)
        t0 = time.perf_counter()
        out = subprocess.run(
            [*aegis, "unattended", "run", "--json"],
            env=env,
            capture_output=True,
            text=True,
            cwd=HERE,
            check=False,
        )
        pass_s = time.perf_counter() - t0
        if not out.stdout.startswith("{"):
            raise RuntimeError(f"aegis unattended run: {out.stderr[-3000:]}")
        report = json.loads(out.stdout)
        assert report["status"] == "applied", (out.stdout, out.stderr)
    finally:
        proc.terminate()
        proc.wait()
        shutil.rmtree(sock_dir, ignore_errors=True)
    return pass_s


def run() -> dict[str, Any]:
    """Median seconds of each side and the ratio."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import _uu_root  # scripts/benchmarks/_uu_root.py

    from aegis.devtools import testrepo
    from aegis.devtools.testrepo_packages import PackageSpec
    from aegis.sign import keys

    base = Path(tempfile.mkdtemp(prefix="aegis-bench-unattended-"))
    uu = None
    try:
        repo = testrepo.build_repo(base / "repo")
        sec = testrepo.build_repo(
            base / "security",
            suite="aegis-security",
            key_name="security",
            packages=[PackageSpec("aegis-base", "1.3", description="security fix")],
        )
        uu = _uu_root.make_uu_root([repo, sec], f"origin={sec.origin},suite={sec.suite}")
        uu.sh("apt-get install -y -qq aegis-base=1.2 >/dev/null")
        # The same system for Aegis: a copy of the chroot, files and dpkg database.
        copy = uu.work / "aegis-root"
        subprocess.run(["cp", "-a", str(uu.root), str(copy)], check=True)
        root = _aegis_root(copy, repo, sec)
        _, spub = keys.write_keypair(base / "keys", "signer")
        subprocess.run(
            [sys.executable, "-m", "compileall", "-q", str(HERE / "aegis")],
            env={**os.environ, "PYTHONPYCACHEPREFIX": str(base / "pycache")},
            check=True,
            capture_output=True,
        )
        uus, apts, passes = [], [], []
        for i in range(ROUNDS):
            u, a = _uu_round(uu)
            uus.append(u)
            apts.append(a)
            passes.append(_round(base / f"r{i}", root, repo, sec, spub, pycache=base / "pycache"))
    finally:
        shutil.rmtree(base, ignore_errors=True)
        if uu is not None:
            uu.remove()
    uu_s, apt_s, pass_s = (statistics.median(x) for x in (uus, apts, passes))
    return {
        "uu_s": round(uu_s, 3),
        "apt_s": round(apt_s, 3),
        "pass_s": round(pass_s, 3),
        "pass_over_uu": round(pass_s / uu_s, 2),
        "pass_over_apt": round(pass_s / apt_s, 2),
        "goal_ratio": GOAL,
        "meets_goal": pass_s / uu_s <= GOAL,
    }
