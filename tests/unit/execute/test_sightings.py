"""aegisd's own first sightings: the later of the store's and root's, root's Release date."""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

from aegis.config import load_config
from aegis.devtools.policy_plans import change, clean_plan
from aegis.execute.sightings import path_of, trusted_first_seen
from aegis.model import FirstSeen

NOW = datetime(2026, 1, 10, 12, 0, tzinfo=UTC)


def _plan(first_seen: str, release_date: str | None):  # type: ignore[no-untyped-def]
    seen = (FirstSeen("pkg0000", "1.2-1", "dist", first_seen, release_date),)
    return clean_plan(changes=(change("pkg0000"),), first_seen=seen)


def test_a_backdated_store_row_counts_from_roots_first_sighting(tmp_path: Path) -> None:
    cfg = load_config({"AEGIS_HOME": str(tmp_path)})
    cfg.aegisd_dir.mkdir(parents=True, mode=0o700)
    forged = _plan("2020-01-01T00:00:00Z", "2020-01-01T00:00:00Z")
    [seen] = trusted_first_seen(cfg, forged, NOW).first_seen
    assert seen.first_seen == "2026-01-10T12:00:00Z"
    assert seen.release_date != "2020-01-01T00:00:00Z"  # root's Release date, not the store's
    # Recorded once: a day later root still knows when it first saw the version.
    [later] = trusted_first_seen(cfg, forged, NOW + timedelta(days=1)).first_seen
    assert later.first_seen == "2026-01-10T12:00:00Z"
    assert os.stat(path_of(cfg)).st_mode & 0o777 == 0o600
    # A store row later than root's (stricter) is kept.
    fresh = _plan("2026-01-11T00:00:00Z", None)
    [kept] = trusted_first_seen(cfg, fresh, NOW + timedelta(days=2)).first_seen
    assert kept.first_seen == "2026-01-11T00:00:00Z"


def test_no_private_directory_means_no_sighting(tmp_path: Path) -> None:
    cfg = load_config({"AEGIS_HOME": str(tmp_path)})
    cfg.aegisd_dir.mkdir(parents=True, mode=0o700)
    cfg.aegisd_dir.chmod(0o770)  # group-writable: not aegisd's own
    plan = trusted_first_seen(cfg, _plan("2020-01-01T00:00:00Z", None), NOW)
    assert plan.first_seen == ()  # policy: never seen, so new, never old
    assert not path_of(cfg).exists()
