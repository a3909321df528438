"""One booted host per release, shared by every booted-host check of that release.

Each release has its own test module (test_bookworm.py, test_trixie.py) whose RELEASE
names it; with ``--dist loadfile`` (scripts/test) the two hosts boot on two workers at
once, and without xdist one after the other. (xdist's loadgroup does not group under
pytest 9: it rewrites ``item._nodeid``, which pytest 9 no longer reads.)
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator

import pytest

from tests.conftest import IN_CI, require_root
from tests.system import booted
from tests.system.scenario import Scenario


def _requirements() -> None:
    require_root("booting a host with systemd-nspawn needs root")
    missing = booted.missing_tools()
    if missing:
        reason = f"booted-host tests need {', '.join(missing)} (apt-get install systemd-container)"
        if IN_CI:
            pytest.fail(f"CI=true must not skip: {reason}")
        pytest.skip(reason)
    if os.environ.get("AEGIS_SKIP_BOOTED") == "1" and not IN_CI:
        pytest.skip("AEGIS_SKIP_BOOTED=1")


@pytest.fixture(scope="module")
def scenario(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Scenario]:
    """The operator guide, run once on a freshly booted host of this release."""
    _requirements()
    release = str(request.module.RELEASE)
    workdir = tmp_path_factory.mktemp(f"booted-{release}")
    with booted.booted(release, workdir) as host:
        run = Scenario(host, workdir)
        try:
            run.run_all()
        finally:
            # Every step's command, exit code and output, for whoever reads a failure.
            (workdir / "steps.json").write_text(
                json.dumps(
                    {k: {**vars(v), "seconds": run.timings.get(k)} for k, v in run.r.items()},
                    indent=1,
                )
            )
        yield run
