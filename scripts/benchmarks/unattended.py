"""Automatic upgrade figure (issue 19 "Figures"): one automatic pass against apt.

One ``aegis unattended run`` pass for a single security update, timer to applied, against
apt installing the same update.

Both sides start from identical fresh throwaway roots (the test distribution repository
and a "security" repository signed by its own key, ``aegis-base`` 1.2 installed, 1.3
published in the security repository), in this one run:

- ``apt_s``: ``apt-get -y upgrade`` run directly with the root's private APT_CONFIG, the
  step unattended-upgrades itself ends in. Debian's ``unattended-upgrade`` program is not
  measured here: it needs python3-apt and a system it may configure, which a throwaway
  root under a private APT_CONFIG does not give it; it adds its own start-up, allowed-origin
  matching and per-package checks on top of this, so this side is its lower bound.
- ``pass_s``: ``aegis unattended run`` as aegis-unattended.service runs it (a new
  process): ``apt upgrade`` analysis with content inspection, the review (skipped by
  configuration: no model here), policy, the scope check, ``aegisctl sign``'s re-checks
  (re-analysis included) with the automation key, and aegisd's apply with its own
  re-derivation, ledger, run, dpkg comparison, audit events and checkpoint.

Medians over ROUNDS fresh root pairs. Goal (issue 19): ``pass_s`` at most 1.5 times
unattended-upgrade's time; reported as ``pass_over_apt`` against the lower bound.
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

ROUNDS = 2
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


def _root(tmp: Path, name: str, repo: Any, sec: Any) -> Any:
    from aegis.devtools import testrepo

    root = testrepo.make_root(tmp / name, [repo, sec])
    testrepo.apt_update(root)
    testrepo.run_apt(root, "install", "-y", "aegis-base=1.2")
    return root


def _round(tmp: Path, repo: Any, sec: Any, spub: str) -> tuple[float, float]:
    from aegis.config import load_config
    from aegis.devtools import testrepo
    from aegis.execute.protocol import Request, call
    from aegis.sign import keys

    direct = _root(tmp, "direct", repo, sec)
    root = _root(tmp, "aegis", repo, sec)
    sock_dir = Path(tempfile.mkdtemp(prefix="aegis-bench-u-", dir="/tmp"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("AEGIS_")}
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
        testrepo.run_apt(direct, "-y", "upgrade")
        apt_s = time.perf_counter() - t0
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
        report = json.loads(out.stdout)
        assert report["status"] == "applied", (out.stdout, out.stderr)
    finally:
        proc.terminate()
        proc.wait()
        shutil.rmtree(sock_dir, ignore_errors=True)
    return apt_s, pass_s


def run() -> dict[str, Any]:
    """Median seconds of both sides and their ratio."""
    from aegis.devtools import testrepo
    from aegis.devtools.testrepo_packages import PackageSpec
    from aegis.sign import keys

    base = Path(tempfile.mkdtemp(prefix="aegis-bench-unattended-"))
    try:
        repo = testrepo.build_repo(base / "repo")
        sec = testrepo.build_repo(
            base / "security",
            suite="aegis-security",
            key_name="security",
            packages=[PackageSpec("aegis-base", "1.3", description="security fix")],
        )
        _, spub = keys.write_keypair(base / "keys", "signer")
        apts, passes = [], []
        for i in range(ROUNDS):
            a, p = _round(base / f"r{i}", repo, sec, spub)
            apts.append(a)
            passes.append(p)
    finally:
        shutil.rmtree(base, ignore_errors=True)
    apt_s, pass_s = statistics.median(apts), statistics.median(passes)
    return {
        "apt_s": round(apt_s, 3),
        "pass_s": round(pass_s, 3),
        "pass_over_apt": round(pass_s / apt_s, 2),
        "goal_ratio": 1.5,
        "unattended_upgrade_measured": False,
    }
