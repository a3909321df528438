"""The delta's apt-cache reads, started from apt's download set before the simulation ends."""

from __future__ import annotations

from concurrent.futures import Future, ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

from aegis.devtools import testrepo
from aegis.ecosystems.apt import parse as aptparse
from aegis.ecosystems.apt.apt_runner import (
    APT_CONFIG_BIN,
    APT_GET,
    AptRunner,
    download_set_args,
    simulation_args,
)
from aegis.ecosystems.apt.delta import collect_delta, early_reads
from aegis.ecosystems.apt.evidence.repositories import (
    ApprovalLookup,
    collect_repository,
    repository_id,
)
from aegis.ecosystems.apt.evidence.sources import resolve_apt_paths
from aegis.ecosystems.apt.run import RunResult
from aegis.ecosystems.apt.state import configured_entries
from aegis.model import Operation

from .conftest import cfg_for


def test_early_reads_give_the_delta_what_reading_after_the_simulation_gives(
    apt_root: testrepo.AptRoot, aegis_home: Path, tmp_path: Path
) -> None:
    # A held-back package is in the simulation but not in the download set: it is read
    # after the simulation, the others come from the early reads.
    testrepo.run_apt(
        apt_root, "install", "-y", "aegis-base=1.0", "aegis-held=1.0", "aegis-benign=1.0"
    )
    apt = AptRunner(cfg_for(apt_root, aegis_home))
    sim = aptparse.parse_apt_simulation(
        apt.run(APT_GET, *simulation_args(Operation.UPGRADE, ())).check().stdout
    )
    uris = apt.run(APT_GET, *(download_set_args(Operation.UPGRADE, (), None, tmp_path) or []))
    paths = resolve_apt_paths(
        aptparse.parse_apt_config_dump(apt.run(APT_CONFIG_BIN, "dump", cache=False).stdout)
    )
    entries = configured_entries(paths)
    now = datetime.now(UTC)
    repos = {
        repository_id(e.uri, e.suite, e.component): collect_repository(
            e, paths, now, ApprovalLookup(()), timeout_s=apt.timeout
        )
        for e in entries
    }
    f_uris: Future[RunResult] = Future()
    f_uris.set_result(uris.check())
    kw = {
        "paths": paths,
        "entries": entries,
        "repos_all": repos,
        "local_records": {},
        "downloads": aptparse.parse_print_uris(uris.stdout),
    }
    with ThreadPoolExecutor(max_workers=4) as pool:
        early = early_reads(pool, apt, f_uris)
        assert early is not None
        assert early.names == {"aegis-base", "aegis-benign"}
        assert early.wanted == {"aegis-base=1.2", "aegis-benign=1.1"}
        with_early = collect_delta(pool, apt, sim, **kw, early=early)  # type: ignore[arg-type]
        without = collect_delta(pool, apt, sim, **kw)  # type: ignore[arg-type]
    assert with_early == without
    assert [c.name for c in with_early.changes] == ["aegis-base", "aegis-benign", "aegis-held"]
    assert len(with_early.provenance) == 2


def test_a_failed_early_read_is_not_used(apt_root: testrepo.AptRoot, aegis_home: Path) -> None:
    apt = AptRunner(cfg_for(apt_root, aegis_home))
    f_uris: Future[RunResult] = Future()
    f_uris.set_result(RunResult(("apt-get",), 100, "", "E: lock"))
    with ThreadPoolExecutor(max_workers=2) as pool:
        assert early_reads(pool, apt, f_uris) is None
