"""The monitor reads managed and applied-into places as group aegis, not as root.

A user's 0700 venv is then unknown to it: the place keeps its recorded state instead of
reading as emptied, which would report every distribution in it as removed.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import pytest

from .conftest import run_public

pytestmark = pytest.mark.root


def test_a_place_the_reader_cannot_read_keeps_its_state(public_tree: Path) -> None:
    base = Path(tempfile.mkdtemp(prefix="aegis-places-", dir="/tmp"))
    try:
        base.chmod(0o755)
        venv = base / "venv"
        (venv / "lib/python3.11/site-packages").mkdir(parents=True)
        venv.chmod(0o700)
        code = (
            "import sys; from aegis.config import load_config; "
            "from aegis.oob.places import read_places; "
            f"b = {{'venv:{venv}': {{'demo-lib': '1.0 aa'}}}}; "
            f"sys.exit(0 if read_places(load_config({{'AEGIS_HOME': '{base}/h'}}), b) == b else 1)"
        )
        got = run_public(public_tree, {}, 65534, python=("-c", code), gid=65534)
        assert got.returncode == 0, got.stderr
    finally:
        shutil.rmtree(base)
