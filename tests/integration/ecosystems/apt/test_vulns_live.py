"""Vulnerability evidence in live plans: libssl3 matches through Source: openssl."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

from aegis.analyze.evidence.vulndb import import_file
from aegis.devtools import testrepo

from .conftest import Analyze, cfg_for


def _tracker(tmp_path: Path) -> Path:
    doc = {
        "openssl": {
            "CVE-2026-0001": {
                "description": "test",
                "releases": {
                    "bookworm": {
                        "status": "resolved",
                        "urgency": "high",
                        "fixed_version": "3.0.2",
                        "repositories": {"bookworm": "3.0.2"},
                    }
                },
            }
        }
    }
    path = tmp_path / "tracker.json"
    path.write_text(json.dumps(doc))
    return path


def test_vulnerable_version_fires_fixed_version_clears(
    tmp_path: Path, aegis_home: Path, apt_root: testrepo.AptRoot, analyze: Analyze
) -> None:
    cfg = cfg_for(apt_root, aegis_home)
    import_file(cfg, _tracker(tmp_path), datetime.now(UTC))
    old = analyze("install", "libssl3=3.0.1", cfg=cfg)
    (v,) = old.vulnerabilities
    assert (v.package, v.source_package, v.cve, v.fixed_version) == (
        "libssl3",
        "openssl",
        "CVE-2026-0001",
        "3.0.2",
    )
    assert not v.fixed_by_plan
    assert v.critical
    assert old.vulndb_date is not None
    assert "vulnerability" in {s.name for s in old.signals}
    assert analyze("install", "libssl3", cfg=cfg).vulnerabilities == ()
    testrepo.run_apt(apt_root, "install", "-y", "libssl3=3.0.1")
    up = analyze("install", "libssl3", cfg=cfg)
    assert [(v.cve, v.fixed_by_plan) for v in up.vulnerabilities] == [("CVE-2026-0001", True)]
