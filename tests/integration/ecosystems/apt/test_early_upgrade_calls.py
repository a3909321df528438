"""The unattended pass's early apt calls (aegis/unattended/early.py) are the analysis's own.

Started before the analyzer is imported, each is taken by the analysis (nothing is left
to kill) and the plan is the one an analysis starting every call itself makes.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from aegis.config import load_config
from aegis.devtools import testrepo
from aegis.early import slot
from aegis.ecosystems.apt.plan import analyze_apt
from aegis.model import Intent, Operation, Tool, reproducible_view
from aegis.unattended import early


def test_the_analysis_takes_every_early_call_and_plans_the_same(
    apt_root: testrepo.AptRoot, aegis_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    testrepo.run_apt(apt_root, "install", "-y", "aegis-base=1.0", "aegis-benign=1.0")
    monkeypatch.setenv("AEGIS_APT_CONFIG", str(apt_root.apt_config))
    cfg = load_config()
    now = datetime.now(UTC)
    intent = Intent(Tool.APT, Operation.UPGRADE, (), "automation", "2026-01-01T00:00:00Z")
    early.start_apt()
    started = slot.pending()
    assert len(started) == 4  # dump, simulation, download set, its archive directory
    archives = Path(started[3].name)  # type: ignore[attr-defined]
    assert archives.is_dir()
    with_early = analyze_apt(cfg, intent, now)
    assert slot.pending() == ()
    assert not archives.exists()
    alone = analyze_apt(cfg, intent, now)
    assert with_early.changes
    assert with_early.provenance
    assert reproducible_view(with_early) == reproducible_view(alone)
