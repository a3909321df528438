"""Out-of-band check figures (issue 19 "Figures": a monitor pass's out-of-band check).

Builds a host-shaped throwaway root: dpkg's status with 2,000 installed packages, and
100,000 lines of dpkg log spread over ``dpkg.log``, ``dpkg.log.1`` and a compressed
``dpkg.log.2.gz`` (as logrotate leaves them), with apt's history beside it. Then times
the check a monitor pass runs (``aegis.oob.monitor.check``, read-only: no aegisd):

- ``unchanged_s``: dpkg's state equals the baseline (the common pass);
- ``recent_change_s``: one package changed since a baseline at the log's end;
- ``worst_case_s``: a baseline older than all 100,000 lines (every file read and every
  line parsed, 2,000 packages differ) - the goal applies here: <= 0.5 s.

Every pass also reads the Aegis-managed places (aegis/oob/places.py): a managed npm prefix
of 1,000 installed packages and two managed venvs of 150 distributions each; in the worst
case the baseline knows none of them either, so all 1,300 are findings too.
"""

from __future__ import annotations

import gzip
import os
import tempfile
import time
from pathlib import Path
from typing import Any

PACKAGES = 2_000
LOG_LINES = 100_000
NPM_PACKAGES = 1_000
VENV_DISTS = 150
GOAL_S = 0.5


def _status(n: int, bump: int = -1) -> str:
    out = []
    for i in range(n):
        version = f"1.{i}-1" if i != bump else f"1.{i}-2"
        out.append(
            f"Package: pkg{i}\nStatus: install ok installed\nPriority: optional\n"
            f"Section: misc\nInstalled-Size: 100\nMaintainer: m <m@example.org>\n"
            f"Architecture: amd64\nVersion: {version}\nDepends: libc6 (>= 2.36)\n"
            f"Description: package {i}\n a package\n"
        )
    return "\n".join(out) + "\n"


def _log_lines(n: int) -> list[str]:
    lines = []
    t0 = time.mktime(time.strptime("2026-01-01 00:00:00", "%Y-%m-%d %H:%M:%S"))
    steps = (
        "startup archives unpack",
        "upgrade {p}:amd64 1.0 1.1",
        "status unpacked {p}:amd64 1.1",
        "configure {p}:amd64 1.1 <none>",
        "status installed {p}:amd64 1.1",
    )
    for i in range(n):
        stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(t0 + i * 7))
        lines.append(f"{stamp} " + steps[i % len(steps)].format(p=f"pkg{i % PACKAGES}"))
    return lines


def _root(tmp: Path) -> tuple[Path, list[str]]:
    root = tmp / "root"
    (root / "var/lib/dpkg").mkdir(parents=True)
    (root / "var/log/apt").mkdir(parents=True)
    (root / "var/lib/dpkg/status").write_text(_status(PACKAGES))
    lines = _log_lines(LOG_LINES)
    log = root / "var/log/dpkg.log"
    parts = [lines[:30_000], lines[30_000:60_000], lines[60_000:]]
    (log.parent / "dpkg.log.2.gz").write_bytes(gzip.compress(("\n".join(parts[0]) + "\n").encode()))
    (log.parent / "dpkg.log.1").write_text("\n".join(parts[1]) + "\n")
    log.write_text("\n".join(parts[2]) + "\n")
    for name, part in (
        ("dpkg.log.2.gz", parts[0]),
        ("dpkg.log.1", parts[1]),
        ("dpkg.log", parts[2]),
    ):
        stamp = time.mktime(time.strptime(part[-1][:19], "%Y-%m-%d %H:%M:%S"))
        os.utime(log.parent / name, (stamp, stamp))
    (root / "var/log/apt/history.log").write_text(
        "\nStart-Date: 2026-01-01  00:00:00\nCommandline: apt-get upgrade\n"
        "Upgrade: pkg1:amd64 (1.0, 1.1)\nEnd-Date: 2026-01-01  00:00:09\n"
    )
    return root, lines


def _managed(state_dir: Path) -> None:
    """A managed npm prefix and two managed venvs, as aegisd's applies leave them."""
    import json

    nm = state_dir / "managed/npm/node_modules"
    nm.mkdir(parents=True)
    lock = {"name": "aegis-managed-npm", "lockfileVersion": 3, "packages": {
        f"node_modules/p{i}": {"version": f"1.{i}.0", "integrity": f"sha512-{i:086d}=="}
        for i in range(NPM_PACKAGES)}}  # fmt: skip
    (nm / ".package-lock.json").write_text(json.dumps(lock, indent=2))
    for venv in ("app", "tools"):
        site = state_dir / f"managed/python/{venv}/lib/python3.11/site-packages"
        for i in range(VENV_DISTS):
            info = site / f"dist{i}-1.{i}.dist-info"
            info.mkdir(parents=True)
            (info / "METADATA").write_text(
                f"Metadata-Version: 2.1\nName: dist{i}\nVersion: 1.{i}\nSummary: x\n\nlong\n"
            )
            (info / "RECORD").write_text(
                "".join(f"dist{i}/m{j}.py,sha256=abc{j},100\n" for j in range(20))
            )


def _time(fn: Any, runs: int = 3) -> float:
    best = float("inf")
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def run() -> dict[str, Any]:
    """Time the three passes (best of three each)."""
    from aegis.config import load_config
    from aegis.oob.baseline import Baseline, write_baseline
    from aegis.oob.findings import current_state, host_files
    from aegis.oob.logs import Cursor
    from aegis.oob.monitor import check
    from aegis.oob.places import read_places

    with tempfile.TemporaryDirectory(prefix="aegis-bench-drift-") as d:
        tmp = Path(d)
        root, _lines = _root(tmp)
        cfg = load_config({"AEGIS_HOME": str(tmp / "home"), "AEGIS_DPKG_ROOT": str(root)})
        sha, packages, cursor = current_state(host_files(root))
        _managed(cfg.state_dir)
        places = read_places(cfg, {})

        def base(
            status: str, pkgs: dict[str, str], cur: Cursor, known: dict[str, Any] | None = None
        ) -> None:
            write_baseline(
                cfg,
                Baseline("2026-01-01T00:00:00.000000Z", "start", status, pkgs, cur,
                         places=places if known is None else known),
            )  # fmt: skip

        base(sha, packages, cursor)
        unchanged = _time(lambda: check(cfg, record=False))
        assert check(cfg, record=False).status == "clean"
        # One package changed since a baseline at the end of the log.
        (root / "var/lib/dpkg/status").write_text(_status(PACKAGES, bump=7))
        with (root / "var/log/dpkg.log").open("a") as f:
            f.write("2027-01-01 00:00:00 upgrade pkg7:amd64 1.7-1 1.7-2\n")
        recent = _time(lambda: check(cfg, record=False))
        assert len(check(cfg, record=False).pending) == 1
        # Worst case: the baseline predates every line and no package matches it.
        base("0" * 64, {f"x{i}:amd64": "1 installed" for i in range(PACKAGES)}, Cursor("", 0), {})
        worst = _time(lambda: check(cfg, record=False))
        found = len(check(cfg, record=False).pending)
    return {
        "packages": PACKAGES,
        "dpkg_log_lines": LOG_LINES,
        "unchanged_s": round(unchanged, 4),
        "recent_change_s": round(recent, 4),
        "worst_case_s": round(worst, 4),
        "worst_case_findings": found,
        "managed_places_packages": sum(len(v) for v in places.values()),
        "goal_s": GOAL_S,
        "meets_goal": worst <= GOAL_S,
    }
