"""Root's own first sightings of candidate versions, for the release-age quarantine.

The analyzer records when a version was first seen in the store (table ``first_seen``,
:mod:`aegis.ecosystems.apt.first_seen`), which every member of group ``aegis`` can write: an
agent could backdate a row and skip ``package.release-age``. So aegisd keeps its own
record in its root-only directory (``first-seen.db``, 0600 in the 0700
``cfg.aegisd_dir``) and evaluates policy with :func:`trusted_first_seen`: for each
version, the later of the store's first sighting and root's, and the Date of the
signed Release root saw when it first recorded the version (never the store's date).

Root records a sighting whenever it derives a plan: aegisd at every apply, and a
root-run analysis (``aegis unattended run``, an operator's own ``aegis plan``) through
:func:`record_as_root`. A version only agents have seen is therefore new to aegisd on
its first apply: policy holds it for approval (or refuses a plan signed as ``allow``)
until it has been known to root for the minimum age.

Example:
    >>> derived = trusted_first_seen(cfg, derived, now)  # doctest: +SKIP
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterable, Mapping
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from aegis.errors import TrustError
from aegis.execute.own_dir import check_private_dir
from aegis.model import Action, FirstSeen, PackageChange, Plan, Repository, Tool
from aegis.policy.rules import parse_time

if TYPE_CHECKING:
    from aegis.config import Config

FILE_NAME = "first-seen.db"
_WITH_FILE = (Action.INSTALL, Action.UPGRADE, Action.DOWNGRADE, Action.REINSTALL)
_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS first_seen (package TEXT NOT NULL, version TEXT NOT NULL, "
    "source TEXT NOT NULL, first_seen_at TEXT NOT NULL, release_date TEXT, "
    "PRIMARY KEY (package, version, source))"
)

Key = tuple[str, str, str]


def path_of(cfg: Config) -> Path:
    """Where root's record lives (inside aegisd's own directory)."""
    return cfg.aegisd_dir / FILE_NAME


def _stamp(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _wanted(changes: Iterable[PackageChange]) -> list[Key]:
    return sorted(
        {
            (c.name, c.candidate_version, c.repository)
            for c in changes
            if c.action in _WITH_FILE and c.candidate_version and c.repository
        }
    )


def record(
    path: Path,
    wanted: Iterable[Key],
    repositories: Mapping[str, Repository],
    now: datetime,
) -> dict[Key, tuple[str, str | None]]:
    """Record (once) each key at ``now``; return every key's (first_seen_at, release_date).

    Raises:
        OSError, sqlite3.Error: the record cannot be opened or written.
    """
    keys = list(wanted)
    if not keys:
        return {}
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
    os.close(fd)
    db = sqlite3.connect(path, timeout=30, isolation_level=None)
    try:
        db.execute("PRAGMA journal_mode=DELETE")
        db.execute(_SCHEMA)
        db.execute("BEGIN IMMEDIATE")
        try:
            stamp = _stamp(now)
            db.executemany(
                "INSERT OR IGNORE INTO first_seen VALUES (?, ?, ?, ?, ?)",
                [(*k, stamp, _release_date(repositories.get(k[2]))) for k in keys],
            )
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        out: dict[Key, tuple[str, str | None]] = {}
        for k in keys:
            row = db.execute(
                "SELECT first_seen_at, release_date FROM first_seen "
                "WHERE package = ? AND version = ? AND source = ?",
                k,
            ).fetchone()
            if row is not None:
                out[k] = (str(row[0]), None if row[1] is None else str(row[1]))
        return out
    finally:
        db.close()


def _release_date(repo: Repository | None) -> str | None:
    return None if repo is None else repo.date


def _later(a: str, b: str) -> str:

    ta, tb = parse_time(a), parse_time(b)
    if ta is None:
        return b  # the store's value is unreadable: root's alone counts
    if tb is None:
        return a
    return a if ta >= tb else b


def trusted_first_seen(cfg: Config, plan: Plan, now: datetime) -> Plan:
    """``plan`` with first sightings root can vouch for (see the module docstring).

    When root's record cannot be used the plan carries none: policy then treats every
    version as never seen (held for approval when a minimum age is set), never as old.
    """
    wanted = _wanted(plan.changes)
    if not wanted or plan.intent.tool is not Tool.APT:  # apt's rule; pip/npm carry upload times
        return plan
    try:
        check_private_dir(cfg.aegisd_dir)
        own = record(path_of(cfg), wanted, {r.id: r for r in plan.repositories}, now)
    except (OSError, sqlite3.Error, TrustError):
        return replace(plan, first_seen=())
    store = {(f.package, f.version, f.repository): f for f in plan.first_seen}
    out = []
    for key in wanted:
        mine = own.get(key)
        if mine is None:
            continue
        theirs = store.get(key)
        first = mine[0] if theirs is None else _later(mine[0], theirs.first_seen)
        out.append(FirstSeen(*key, first_seen=first, release_date=mine[1]))
    return replace(plan, first_seen=tuple(out))


def record_as_root(
    cfg: Config, wanted: Iterable[Key], repositories: Mapping[str, Repository], now: datetime
) -> None:
    """Record root's sightings when this analysis runs as root and aegisd's directory is sound.

    Never creates aegisd's directory (aegisd does, :mod:`aegis.execute.own_dir`); a
    failure only means aegisd will see the version later, which is stricter.
    """
    if os.geteuid() != 0:
        return

    try:
        check_private_dir(cfg.aegisd_dir)
        record(path_of(cfg), wanted, repositories, now)
    except (OSError, sqlite3.Error, TrustError):
        return
