"""The quick benchmarks still run against today's code (figures are not judged here).

``scripts/bench`` is not part of the suite (speed goals are measured there, not in timed
tests), so an API change could break it unnoticed; this runs the modules that take
seconds and checks each printed its figures and exited 0.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]


@pytest.mark.parametrize(
    ("module", "figure"),
    [
        ("sign", "verify_per_s"),
        ("policy", "ms_per_decision"),
        ("review", "prompt_tokens_50"),
        ("vulndb", "match_s"),
    ],
)
def test_quick_benchmarks_run(module: str, figure: str) -> None:
    done = subprocess.run(
        [str(REPO / "scripts" / "bench"), "--only", module],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    figures = json.loads(done.stdout)
    assert f"{module}.{figure}" in figures
    assert not any(k.endswith(".error") for k in figures), figures
