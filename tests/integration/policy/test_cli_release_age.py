"""Release-age quarantine through the real CLI (issue 12 item 18).

A signed test repository starts to offer a new version; ``aegis apt install --plan``
(real apt) records when Aegis first saw it, and ``aegis policy`` requires approval
(``package.release-age``, exit 8) until ``min_release_age_s`` has passed, then lets the
same version through. A version listed in a Release dated long ago is not held: the
Release Date bounds when it was published. The clock is moved with freezegun; apt, gpgv
and dpkg run for real.
"""

from __future__ import annotations

import json
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from freezegun import freeze_time

from aegis.cli.aegis import cli
from aegis.config import load_config
from aegis.devtools import testrepo

DAY = timedelta(days=1)
MIN_AGE = 3 * 86_400


def _setup(tmp: Path, monkeypatch: pytest.MonkeyPatch, release_date: datetime) -> None:
    repo = testrepo.build_repo(tmp / "repo", date=release_date)
    root = testrepo.make_root(tmp / "root", [repo])
    testrepo.apt_update(root)
    monkeypatch.setenv("AEGIS_APT_CONFIG", str(root.apt_config))
    cfg = load_config()
    cfg.policy_path.parent.mkdir(parents=True, exist_ok=True)
    default = (Path(__file__).resolve().parents[3] / "aegis/policy/default_policy.toml").read_text()
    assert "min_release_age_s = 0 " in default  # off unless the operator sets it
    policy = default.replace("min_release_age_s = 0 ", f"min_release_age_s = {MIN_AGE} ")
    cfg.policy_path.write_text(
        policy + f'\n[[sources]]\nname = "test"\nuri = "{repo.uri}"\nsuite = "{repo.suite}"\n'
        f'component = "main"\nsigner_fingerprint = "{repo.fingerprint}"\n'
        'packages = ["aegis-*"]\n'
    )


def _decide(at: datetime) -> tuple[int, dict[str, Any], dict[str, Any]]:
    """Plan ``aegis-tool`` and decide, both at ``at``."""
    run = CliRunner()
    with freeze_time(at):
        planned = run.invoke(
            cli, ["apt", "install", "aegis-tool", "--plan", "--json", "--no-contents"]
        )
        assert planned.exit_code == 0, planned.output
        plan_path = json.loads(planned.stdout)["plan_path"]
        assert run.invoke(cli, ["review", plan_path, "--no-review"]).exit_code == 0
        decided = run.invoke(cli, ["policy", plan_path, "--json"])
    plan = json.loads(Path(plan_path).read_text())
    return decided.exit_code, json.loads(decided.stdout), plan


def _release_age(result: dict[str, Any]) -> str | None:
    fired = {f["rule_id"]: f for f in result["result"]["fired"]}
    hit = fired.get("package.release-age")
    return None if hit is None else str(hit["reason"])


def test_a_new_version_waits_for_approval_until_it_is_old_enough(
    tmp_path: Path, aegis_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    start = datetime.now(UTC).replace(microsecond=0)
    _setup(tmp_path, monkeypatch, release_date=start - timedelta(minutes=5))

    code, result, plan = _decide(start)
    assert code == 8, result
    reason = _release_age(result)
    assert reason is not None
    assert "aegis-tool 2.0 (offered for 5m, minimum 3d)" in reason
    seen = {f["package"]: f for f in plan["first_seen"]}
    assert seen["aegis-tool"]["first_seen"] == start.strftime("%Y-%m-%dT%H:%M:%SZ")

    # The first sighting is kept: a day later the same version is still young ...
    code, result, plan = _decide(start + DAY)
    assert _release_age(result) is not None
    assert "offered for 1d" in str(_release_age(result))
    assert {f["package"]: f for f in plan["first_seen"]}["aegis-tool"] == seen["aegis-tool"]
    # ... and past the minimum age it goes through without the quarantine.
    code, result, _ = _decide(start + 3 * DAY + timedelta(minutes=10))
    assert _release_age(result) is None

    with sqlite3.connect(load_config().store_path) as db:
        rows = db.execute("SELECT package, version FROM first_seen ORDER BY package").fetchall()
    db.close()
    assert ("aegis-tool", "2.0") in rows


def test_a_version_in_a_release_dated_long_ago_is_not_held(
    tmp_path: Path, aegis_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Seen by Aegis for the first time now, but listed in a Release signed 10 days ago:
    # published by then, so older than the minimum.
    start = datetime.now(UTC).replace(microsecond=0)
    _setup(tmp_path, monkeypatch, release_date=start - 10 * DAY)
    code, result, plan = _decide(start)
    assert _release_age(result) is None, result
    assert code != 5, result
    (entry,) = [f for f in plan["first_seen"] if f["package"] == "aegis-tool"]
    assert entry["release_date"] == (start - 10 * DAY).strftime("%Y-%m-%dT%H:%M:%SZ")


def test_a_planted_store_link_is_never_opened(tmp_path: Path, aegis_home: Path) -> None:
    """aegisd re-derives plans as root: a ``state.db`` a group member replaced with a link
    to a root-owned database is left alone (no first sighting is recorded instead)."""
    from aegis.ecosystems.apt.first_seen import record_first_seen
    from aegis.model import Action, PackageChange

    victim = tmp_path / "victim.db"
    with sqlite3.connect(victim) as db:
        db.execute("CREATE TABLE precious (x)")
    db.close()
    before = victim.read_bytes()
    cfg = load_config()
    cfg.store_path.parent.mkdir(parents=True, exist_ok=True)
    cfg.store_path.symlink_to(victim)
    change = PackageChange(
        "aegis-tool", "all", Action.INSTALL, None, "2.0", "aegis-tool", "2.0", "r"
    )
    assert record_first_seen(cfg, [change], {}, datetime.now(UTC)) == ()
    assert victim.read_bytes() == before
