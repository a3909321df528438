"""apt planning cost on this machine's real package lists (read-only; issue 3 "Figures").

Compares, in one run, Aegis planning (analysis plus writing the plan and request
into a temporary AEGIS_HOME; the host's own apt configuration, ``apt-get -s`` only)
with the bare simulation under the host's configuration:

- ``apt_install_nginx_ratio``: ``aegis apt install nginx --plan --no-contents`` over
  ``apt-get -s install nginx`` (goal <= 1.25)
- ``apt_install_nginx_contents_ratio``: the same with content inspection, the .debs
  already in Aegis's cache (downloads excluded; goal <= 1.5)
- ``apt_upgrade_ratio``: ``aegis apt upgrade --plan --no-contents`` over
  ``apt-get -s upgrade`` (goal <= 1.25)

Each figure is the median of a few alternating runs after one warm-up of each side
(the warm-up fills Aegis's persistent package cache and .deb cache). Nothing here
changes the host: apt only simulates, and every Aegis file goes to a temp directory.
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

ROUNDS = 3


def _apt_s(*args: str) -> Callable[[], None]:
    env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C", "LC_ALL": "C"}

    def run() -> None:
        subprocess.run(["/usr/bin/apt-get", "-s", *args], env=env, capture_output=True, check=True)

    return run


def _aegis(cfg: Any, op: str, targets: tuple[str, ...], contents: bool) -> Callable[[], None]:
    from aegis import api
    from aegis.analyze.stamps import format_time
    from aegis.ecosystems.apt.plan import analyze_apt
    from aegis.model import Intent, Operation, Tool

    def run() -> None:
        now = datetime.now(UTC)
        intent = Intent(Tool.APT, Operation(op), targets, "bench", format_time(now))
        plan = analyze_apt(cfg, intent, now=now, inspect_contents=contents)
        if plan.failure is not None:
            raise RuntimeError(f"planning failed: {plan.failure}")
        api.submit_plan(cfg, plan, "bench")

    return run


def _timed(fn: Callable[[], None]) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def _ratio(ours: Callable[[], None], base: Callable[[], None]) -> tuple[float, float, float]:
    ours()
    base()  # warm-ups: caches, page cache
    a: list[float] = []
    b: list[float] = []
    for _ in range(ROUNDS):
        b.append(_timed(base))
        a.append(_timed(ours))
    ma, mb = statistics.median(a), statistics.median(b)
    return ma / mb, ma, mb


def run() -> dict[str, Any]:
    """Measure the three ratios; skipped (with a reason) where apt or nginx is absent."""
    if not os.path.exists("/usr/bin/apt-get"):
        return {"apt_skipped": "no apt-get on this machine"}
    check = subprocess.run(
        ["/usr/bin/apt-get", "-s", "-qq", "install", "nginx"],
        env={"PATH": "/usr/bin:/bin", "LANG": "C"},
        capture_output=True,
        check=False,
    )
    if check.returncode != 0:
        return {"apt_skipped": "nginx is not installable from this machine's lists"}
    from aegis.config import load_config

    home = tempfile.mkdtemp(prefix="aegis-bench-apt-")
    try:
        cfg = load_config({"AEGIS_HOME": home, "AEGIS_HOST_ID": "bench"})
        out: dict[str, Any] = {}
        r, a, b = _ratio(_aegis(cfg, "install", ("nginx",), False), _apt_s("install", "nginx"))
        out.update(
            apt_install_nginx_ratio=round(r, 3),
            apt_install_nginx_s=round(a, 3),
            apt_get_s_install_nginx_s=round(b, 3),
        )
        r, a, b = _ratio(_aegis(cfg, "install", ("nginx",), True), _apt_s("install", "nginx"))
        out.update(
            apt_install_nginx_contents_ratio=round(r, 3), apt_install_nginx_contents_s=round(a, 3)
        )
        r, a, b = _ratio(_aegis(cfg, "upgrade", (), False), _apt_s("upgrade"))
        out.update(
            apt_upgrade_ratio=round(r, 3),
            apt_upgrade_s=round(a, 3),
            apt_get_s_upgrade_s=round(b, 3),
        )
        return out
    finally:
        shutil.rmtree(home, ignore_errors=True)


if __name__ == "__main__":
    import json

    print(json.dumps(run(), indent=2))
