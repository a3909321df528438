"""First sightings of candidate versions, for the release-age quarantine (issue 12 item 18).

apt metadata carries no publish date. The first time an analysis sees a (package,
version, source) that a plan would install, it records the time and the Date of the
source's signed Release in the store (table ``first_seen``, migration 0002); later
analyses read the same row back, so a plan re-derived later carries the same values.
Policy (``package.release-age``) judges the version's age at decision time as the time
since the earlier of the two: a version listed in a Release dated D was published by D.

The store is writable by group ``aegis``, so a member can backdate a row: aegisd does not
trust it alone. It keeps root's own sightings (:mod:`aegis.execute.sightings`) and
evaluates policy with the later of the two (docs/operator-guide.md "Release-age
quarantine").

Example::

    seen = record_first_seen(cfg, plan.changes, {r.id: r for r in repos}, now)
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import stat
from collections.abc import Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime

from aegis.config import Config
from aegis.errors import AegisError
from aegis.execute.sightings import record_as_root
from aegis.model import Action, FirstSeen, PackageChange, Repository

_WITH_FILE = (Action.INSTALL, Action.UPGRADE, Action.DOWNGRADE, Action.REINSTALL)


def _time(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def record_first_seen(
    cfg: Config,
    changes: Iterable[PackageChange],
    repositories: Mapping[str, Repository],
    now: datetime,
) -> tuple[FirstSeen, ...]:
    """Record (once) and return when each candidate version of ``changes`` was first seen.

    Args:
        cfg: where the store is.
        changes: the plan's delta; only versions a package file is installed from count.
        repositories: repository evidence by id (its ``date`` is the signed Release Date).
        now: the analysis time, recorded on a first sighting.

    Returns:
        One entry per (package, version, repository), sorted. Empty when the store cannot
        be used: policy then treats every version as unseen (approval when a minimum age
        is configured), never as old.
    """
    wanted: list[tuple[str, str, str]] = sorted(
        {
            (c.name, c.candidate_version, c.repository)
            for c in changes
            if c.action in _WITH_FILE and c.candidate_version and c.repository
        }
    )
    if not wanted:
        return ()

    # Root's own record is what aegisd trusts (the store below is group-writable). The
    # two are separate databases, each written with a synced commit: side by side.
    with ThreadPoolExecutor(max_workers=1) as pool:
        f_root = pool.submit(record_as_root, cfg, wanted, repositories, now)
        try:
            return _record_in_store(cfg, wanted, repositories, now)
        finally:
            f_root.result()


def _record_in_store(
    cfg: Config,
    wanted: list[tuple[str, str, str]],
    repositories: Mapping[str, Repository],
    now: datetime,
) -> tuple[FirstSeen, ...]:
    """The store's part of :func:`record_first_seen` (empty when it cannot be used)."""
    if not _plain_or_absent(cfg):
        return ()

    # The store (and sqlite-utils under it) loads when a sighting is recorded, not with
    # the planner: a fresh process reaches its first apt call sooner.
    from aegis.workflow import access  # noqa: PLC0415 - see above

    stamp = _time(now)
    try:
        with access.open_store(cfg) as store:
            conn = store.conn
            conn.execute("BEGIN IMMEDIATE")
            try:
                conn.executemany(
                    "INSERT OR IGNORE INTO first_seen "
                    "(package, version, source, first_seen_at, release_date) "
                    "VALUES (?, ?, ?, ?, ?)",
                    [
                        (name, version, repo, stamp, _release_date(repositories.get(repo)))
                        for name, version, repo in wanted
                    ],
                )
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            rows = _rows(conn, wanted)
    except (AegisError, sqlite3.Error):
        return ()
    out = []
    for key in wanted:
        found = rows.get(key)
        if found is None:
            continue
        out.append(
            FirstSeen(
                package=key[0],
                version=key[1],
                repository=key[2],
                first_seen=str(found[0]),
                release_date=None if found[1] is None else str(found[1]),
            )
        )
    return tuple(out)


def _rows(
    conn: sqlite3.Connection, wanted: list[tuple[str, str, str]]
) -> dict[tuple[str, str, str], tuple[object, object]]:
    """(first_seen_at, release_date) of each wanted key that has a row.

    One query for every package name (handed over as one JSON array), not one per key:
    a large upgrade asked hundreds of times, each a trip through the interpreter lock
    while the contents are scanned beside it.
    """
    keys = set(wanted)
    names = json.dumps(sorted({name for name, _, _ in wanted}))
    out: dict[tuple[str, str, str], tuple[object, object]] = {}
    for package, version, source, seen, date in conn.execute(
        "SELECT package, version, source, first_seen_at, release_date FROM first_seen "
        "WHERE package IN (SELECT value FROM json_each(?))",
        (names,),
    ):
        if (package, version, source) in keys:
            out[(package, version, source)] = (seen, date)
    return out


def prepare_store(cfg: Config) -> None:
    """Create and migrate the store now when it does not exist yet (a first use).

    For an analysis whose download set names files while apt still simulates: such a
    plan records first sightings, and creating the store (a few synced commits) is then
    off its critical path. A store that exists is left to :func:`record_first_seen`
    (opening it is cheap); a failure here is only a later attempt there.
    """
    if os.path.lexists(cfg.store_path):
        return
    from aegis.workflow import access  # noqa: PLC0415 - see _record_in_store

    with contextlib.suppress(AegisError, sqlite3.Error), access.open_store(cfg):
        pass


def _plain_or_absent(cfg: Config) -> bool:
    """Whether the store may be opened here: absent (a first use), or one plain file.

    The store directory is group-writable and aegisd re-derives plans as root: a
    ``state.db`` a member replaced with a link to some root-owned database must not be
    opened (SQLite would convert and migrate it). Such a plan carries no first sighting,
    and aegisd's comparison with the signed plan then refuses it.
    """
    try:
        st = os.lstat(cfg.store_path)
    except FileNotFoundError:
        return True
    except OSError:
        return False
    return stat.S_ISREG(st.st_mode) and st.st_nlink == 1


def _release_date(repo: Repository | None) -> str | None:
    return None if repo is None else repo.date
