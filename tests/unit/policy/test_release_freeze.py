"""repo.frozen / repo.expired on Debian's real Release files at realistic dates.

The Release headers in tests/assets/release/debian are Debian's own (bookworm,
bookworm-updates, bookworm-security, trixie, trixie-updates, trixie-security). The
clock is frozen with freezegun; the analyzer's judgement (assess_release with the
window the policy gives the source) and the policy's own re-judgement must agree.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from freezegun import freeze_time

from aegis.devtools.policy_plans import DIST_FPR, clean_plan, repository
from aegis.ecosystems.apt.evidence.release import assess_release
from aegis.model import Repository
from aegis.policy.config import (
    DEFAULT_FREEZE_AFTER_S,
    PolicyConfig,
    PolicyConfigError,
    freeze_after_s,
    match_source,
    parse_policy_config,
)
from aegis.policy.engine import check_config, evaluate

ASSETS = Path(__file__).parents[2] / "assets" / "release" / "debian"
URIS = {
    "bookworm": "http://deb.debian.org/debian",
    "bookworm-updates": "http://deb.debian.org/debian",
    "bookworm-security": "http://deb.debian.org/debian-security",
    "trixie": "http://deb.debian.org/debian",
    "trixie-updates": "http://deb.debian.org/debian",
    "trixie-security": "http://deb.debian.org/debian-security",
}
TODAY = "2026-12-07 03:00:00"
"""When these files were fetched: bookworm's Date (11 Jul 2026) is 149 days old."""


def policy(windows: dict[str, int] | None = None, default: int | None = None) -> PolicyConfig:
    """Approve Debian's six suites; ``windows`` sets freeze_after_s per suite."""
    text = 'format = "aegis.policy-config/1"\nruleset = "aegis.rules/1"\n'
    text += "[review]\nrequired = false\n"
    if default is not None:
        text += f"[thresholds]\nfreeze_after_s = {default}\n"
    for suite, uri in URIS.items():
        text += (
            f'[[sources]]\nname = "{suite}"\nuri = "{uri}"\nsuite = "{suite}"\n'
            f'component = "main"\nsigner_fingerprint = "{DIST_FPR}"\ndistribution = true\n'
        )
        if windows and suite in windows:
            text += f"freeze_after_s = {windows[suite]}\n"
    config = parse_policy_config(text)
    check_config(config)
    return config


def debian_repo(suite: str, config: PolicyConfig) -> Repository:
    """The repository record the analyzer makes of Debian's real Release at the clock's now."""
    now = datetime.now(UTC)
    source = match_source(config, URIS[suite], suite, "main", DIST_FPR)
    window = freeze_after_s(source, config.thresholds.freeze_after_s)
    text = (ASSETS / f"{suite}_Release").read_text()
    date, until, expired, frozen, origin = assess_release(text, now, timedelta(seconds=window))
    assert origin == "Debian"
    return repository(
        "dist",
        uri=URIS[suite],
        suite=suite,
        date=date,
        valid_until=until,
        expired=expired,
        frozen=frozen,
    )


def fired(
    suite: str, config: PolicyConfig, *, analyzer_config: PolicyConfig | None = None
) -> set[str]:
    """Rule ids of the repo.* rules that fire for a one-package plan from ``suite`` now."""
    now = datetime.now(UTC).replace(microsecond=0)
    repo = debian_repo(suite, analyzer_config or config)
    plan = clean_plan(repositories=(repo,), created_at=now.strftime("%Y-%m-%dT%H:%M:%SZ"))
    result = evaluate(plan, None, config, now)
    return {f.rule_id for f in result.fired if f.rule_id in ("repo.frozen", "repo.expired")}


@freeze_time(TODAY)
@pytest.mark.parametrize("suite", sorted(URIS))
def test_every_debian_suite_passes_on_the_day_it_was_fetched(suite: str) -> None:
    assert fired(suite, policy()) == set()


@freeze_time(TODAY)
def test_the_old_90_day_window_denied_bookworm() -> None:
    """The regression: bookworm (no Valid-Until, Date of the last point release)."""
    strict = policy(default=90 * 86_400)
    assert debian_repo("bookworm", strict).frozen
    assert fired("bookworm", strict) == {"repo.frozen"}
    assert DEFAULT_FREEZE_AFTER_S == 180 * 86_400
    assert not debian_repo("bookworm", policy()).frozen


@freeze_time("2027-02-01 12:00:00")
def test_past_the_window_bookworm_is_frozen_unless_its_source_says_final() -> None:
    """205 days after 12.15: frozen by default; freeze_after_s = 0 for a final suite."""
    assert fired("bookworm", policy()) == {"repo.frozen"}
    final = policy({"bookworm": 0, "bookworm-security": 0})
    assert fired("bookworm", final) == set()
    # The security suite's Valid-Until still binds, whatever its freeze window says.
    assert fired("bookworm-security", final) == {"repo.expired"}


@freeze_time(TODAY)
def test_a_stricter_source_window_fires_and_names_its_limit() -> None:
    """trixie's Date is 16 days old: a 7-day window for that source alone freezes it."""
    config = policy({"trixie": 7 * 86_400})
    assert fired("trixie", config) == {"repo.frozen"}
    assert fired("bookworm-updates", config) == set()
    now = datetime.now(UTC)
    plan = clean_plan(
        repositories=(debian_repo("trixie", config),),
        created_at=now.strftime("%Y-%m-%dT%H:%M:%SZ"),
    )
    (hit,) = [f for f in evaluate(plan, None, config, now).fired if f.rule_id == "repo.frozen"]
    assert "limit 7 days" in hit.reason
    assert "freeze_after_s" in hit.reason


@freeze_time(TODAY)
def test_policy_rejudges_a_plan_that_claims_fresh_metadata() -> None:
    """A plan made under a lax window (or forged) is judged with this policy's window."""
    strict = policy({"trixie": 7 * 86_400})
    lax = policy()
    assert fired("trixie", strict, analyzer_config=lax) == {"repo.frozen"}


@freeze_time("2029-01-01 00:00:00")
@pytest.mark.parametrize("suite", ["trixie-updates", "trixie-security", "bookworm-security"])
def test_valid_until_binds_instead_of_the_window(suite: str) -> None:
    """Suites with Valid-Until are never 'frozen', years later: they are expired."""
    config = policy()
    repo = debian_repo(suite, config)
    assert repo.valid_until is not None
    assert not repo.frozen
    assert fired(suite, config) == {"repo.expired"}


def test_window_settings_are_checked() -> None:
    base = 'format = "aegis.policy-config/1"\nruleset = "aegis.rules/1"\n'
    with pytest.raises(PolicyConfigError, match="freeze_after_s"):
        parse_policy_config(base + "[thresholds]\nfreeze_after_s = 0\n")
    with pytest.raises(PolicyConfigError, match="freeze_after_s"):
        parse_policy_config(
            base + '[[sources]]\nname = "d"\nuri = "http://d"\nsuite = "s"\ncomponent = "c"\n'
            f'signer_fingerprint = "{DIST_FPR}"\ndistribution = true\nfreeze_after_s = -1\n'
        )
