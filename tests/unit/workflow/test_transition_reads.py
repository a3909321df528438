"""What a transition reads back before its guards run, and what it leaves behind.

A transition reads the request's history from its head only as far as the kinds its
guards look at; every row it reads is parsed, hash-checked and chained to the request
row. These tests attack exactly the rows such a read must see.
"""

from __future__ import annotations

import gc
import itertools
import sqlite3
from collections.abc import Callable
from contextlib import closing
from dataclasses import replace

import pytest

from aegis import api
from aegis.canonical import canonical_bytes, loads_strict
from aegis.config import Config
from aegis.workflow.graph import load_workflow
from aegis.workflow.guards import ARTIFACT_KINDS, GUARDS, GuardInput
from aegis.workflow.machine import GuardRefusedError, fire
from aegis.workflow.records import (
    HISTORY_COLUMNS,
    ArtifactRef,
    CorruptStoreError,
    RequestRecord,
    history_hash,
    parse_history_values,
)
from aegis.workflow.store import LostRaceError

from .conftest import step

Make = Callable[..., RequestRecord]


def _db(cfg: Config) -> closing[sqlite3.Connection]:
    """A connection closed on leaving the ``with`` (sqlite3's own ``with`` only commits)."""
    return closing(sqlite3.connect(cfg.store_path, isolation_level=None))


def _forge_row(cfg: Config, request_id: str, seq: int, **changes: object) -> None:
    """Rewrite one history row with ``changes`` and a row hash that matches them."""
    cols = ", ".join(HISTORY_COLUMNS)
    with _db(cfg) as conn:
        values = conn.execute(
            f"SELECT {cols} FROM history WHERE request_id = ? AND seq = ?",  # noqa: S608
            [request_id, seq],
        ).fetchone()
        forged = replace(parse_history_values(values, frozenset(load_workflow().states)), **changes)
        evidence = loads_strict(values[7])
        evidence["artifacts"] = [
            {"kind": a.kind, "sha256": a.sha256, "path": a.path} for a in forged.artifacts
        ]
        conn.execute("DROP TRIGGER IF EXISTS history_append_only_update")
        conn.execute(
            "UPDATE history SET evidence = ?, actor = ?, row_hash = ? "
            "WHERE request_id = ? AND seq = ?",
            [
                canonical_bytes(evidence).decode("utf-8"),
                forged.actor,
                history_hash(forged),
                request_id,
                seq,
            ],
        )


def test_every_guard_reads_only_the_kinds_it_declares() -> None:
    """The store may stop reading once the declared kinds are found: a guard must not
    depend on any other recorded kind (exhaustive over every subset of kinds)."""
    kinds = sorted(ARTIFACT_KINDS)
    subsets = [
        frozenset(c) for n in range(len(kinds) + 1) for c in itertools.combinations(kinds, n)
    ]
    for guard in GUARDS.values():
        for recorded in subsets:
            full = GuardInput("t", "s", recorded, "policy", b'{"decision":"allow"}', {})
            seen = GuardInput("t", "s", recorded & guard.kinds, "policy", full.artifact, {})
            assert guard.check(full) == guard.check(seen), (guard.name, sorted(recorded))


def test_a_forged_row_behind_the_head_is_caught(cfg: Config, make_request: Make) -> None:
    """Row 1 (the plan) rewritten with a self-consistent hash no longer matches the
    prev_hash its successor commits to: 'decide' reads back to it and refuses."""
    rec = make_request("reviewed")
    _forge_row(cfg, rec.id, 1, actor="mallory")
    with pytest.raises(CorruptStoreError, match="broken at #1") as err:
        step(cfg, rec.id, "decide")
    assert err.value.exit_code == 4
    assert api.get_request(cfg, rec.id).version == rec.version


def test_a_forged_head_row_is_caught(cfg: Config, make_request: Make) -> None:
    """The head row given a policy result it never had (with a recomputed row hash) no
    longer is the row the request row names: nothing reads the smuggled artifact."""
    rec = make_request("reviewed")
    smuggled = ArtifactRef(kind="policy", sha256="0" * 64, path=None)
    _forge_row(cfg, rec.id, 2, artifacts=(smuggled,))
    with pytest.raises(CorruptStoreError, match="does not match its history"):
        step(cfg, rec.id, "decide")


def test_a_missing_row_breaks_the_read(cfg: Config, make_request: Make) -> None:
    rec = make_request("reviewed")
    with _db(cfg) as conn:
        conn.execute("DROP TRIGGER history_append_only_delete")
        conn.execute("DELETE FROM history WHERE request_id = ? AND seq = 1", [rec.id])
    with pytest.raises(CorruptStoreError, match="broken at #1"):
        step(cfg, rec.id, "decide")


def test_a_missing_kind_reads_the_whole_chain(cfg: Config) -> None:
    rec = api.create_request(cfg, "apt install", "nginx", "tester")
    rec = api.advance(cfg, rec.id, "analyze", "t", artifact_kind="plan", artifact=b"{}")
    with api.open_store(cfg) as store:
        assert store.recorded_kinds(rec, frozenset({"policy"})) == frozenset({"plan"})


def test_recorded_kinds_stops_at_the_wanted_kinds(cfg: Config, make_request: Make) -> None:
    rec = make_request("policy")
    with api.open_store(cfg) as store:
        everything = store.recorded_kinds(rec, frozenset({"execution-plan"}))  # absent: all
        assert everything == frozenset({"plan", "review", "policy"})
        assert store.recorded_kinds(rec, frozenset()) == frozenset({"policy"})  # head only
        assert store.recorded_kinds(rec, frozenset({"review"})) == {"policy", "review"}


def test_a_newer_history_is_a_lost_race(cfg: Config, make_request: Make) -> None:
    rec = make_request("analyzed")
    step(cfg, rec.id, "review")  # another writer wins after rec was read
    with api.open_store(cfg) as store, pytest.raises(LostRaceError) as err:
        store.recorded_kinds(rec, frozenset({"plan"}))
    assert err.value.exit_code == 6


def test_an_attempt_leaves_nothing_in_memory() -> None:
    """The attempt's machine and model are taken apart when it ends, taken or refused:
    nothing waits for the garbage collector."""
    wf = load_workflow()
    ok = GuardInput("review", "analyzed", frozenset({"plan"}), "review", b"r", {})
    refused = GuardInput("review", "analyzed", frozenset(), "review", b"r", {})
    fire(wf, "analyzed", "review", ok)
    gc.collect()
    gc.disable()
    try:
        for _ in range(20):
            assert fire(wf, "analyzed", "review", ok).dest == "reviewed"
            with pytest.raises(GuardRefusedError):
                fire(wf, "analyzed", "review", refused)
        assert gc.collect() == 0
    finally:
        gc.enable()
