"""The state store: transactions, optimistic versions, strict hash-checked reads."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from contextlib import closing
from pathlib import Path

import pytest

from aegis import api
from aegis.config import Config
from aegis.errors import EnvironmentFailure, InputError, StateError, TrustError
from aegis.workflow.graph import load_workflow
from aegis.workflow.records import CorruptStoreError, RequestRecord
from aegis.workflow.store import LostRaceError, Move, NewArtifact, RequestNotFoundError, Store

from .conftest import PATHS, step

Make = Callable[..., RequestRecord]


def _db(cfg: Config) -> closing[sqlite3.Connection]:
    """A connection closed on leaving the ``with`` (sqlite3's own ``with`` only commits)."""
    return closing(sqlite3.connect(cfg.store_path, isolation_level=None))


def _snapshot(cfg: Config, request_id: str) -> tuple[object, ...]:
    with _db(cfg) as conn:
        row = conn.execute("SELECT * FROM requests WHERE id = ?", [request_id]).fetchone()
        hist = conn.execute(
            "SELECT count(*) FROM history WHERE request_id = ?", [request_id]
        ).fetchone()
        arts = conn.execute("SELECT count(*) FROM artifacts").fetchone()
    return (row, hist, arts)


def test_pragmas_wal_and_synchronous_full(cfg: Config, make_request: Make) -> None:
    make_request()
    with api.open_store(cfg) as store:
        assert store.conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert store.conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
        assert store.conn.execute("PRAGMA user_version").fetchone()[0] == 2


def test_submit_plan_writes_file_and_binds_hash(cfg: Config, make_request: Make) -> None:
    rec = make_request("analyzed")
    assert rec.plan_id
    assert rec.plan_hash
    path = cfg.plans_dir / f"{rec.plan_id}.json"
    from aegis.canonical import sha256_hex

    assert sha256_hex(path.read_bytes()) == rec.plan_hash
    assert api.load_artifact(cfg, rec.plan_hash) == path.read_bytes()
    assert api.find_request_by_plan(cfg, rec.plan_hash) == rec
    assert api.find_request_by_plan(cfg, rec.plan_id) == rec
    detail = api.get_request_detail(cfg, rec.id)
    assert [h.trigger for h in detail.history] == ["create", "analyze"]
    assert detail.artifacts[0].path == str(path)


def test_duplicate_plan_refused(cfg: Config) -> None:
    from aegis.devtools.sample_plans import sample_plan

    api.submit_plan(cfg, sample_plan("p-dup"), "a")
    with pytest.raises(StateError, match="already exists"):
        api.submit_plan(cfg, sample_plan("p-dup"), "a")


@pytest.mark.parametrize("state", list(PATHS), ids=str)
def test_every_illegal_trigger_leaves_the_row_unchanged(
    cfg: Config, make_request: Make, state: str
) -> None:
    """Exhaustive over (state, trigger) against the real store."""
    wf = load_workflow()
    rec = make_request(state)
    before = _snapshot(cfg, rec.id)
    for trigger in wf.triggers:
        if wf.lookup(state, trigger) is not None:
            continue
        with pytest.raises(StateError) as err:
            step(cfg, rec.id, trigger)
        assert err.value.exit_code == 6
        assert _snapshot(cfg, rec.id) == before, trigger


def test_guard_refusal_writes_nothing(cfg: Config, make_request: Make) -> None:
    rec = make_request("reviewed")
    before = _snapshot(cfg, rec.id)
    with pytest.raises(StateError, match="policy_not_deny"):
        api.advance(
            cfg, rec.id, "decide", "x", artifact_kind="policy", artifact=b'{"decision":"deny"}'
        )
    assert _snapshot(cfg, rec.id) == before
    # The request still moves on afterwards: no half-fired machine was kept.
    assert step(cfg, rec.id, "deny").state == "denied"


def test_probed_change_is_not_audited_before_its_verification(
    cfg: Config, make_request: Make
) -> None:
    """The graph itself refuses applied -> audited when the signed plan names probes."""
    rec = make_request("applied")
    probed = make_request("analyzed")
    for trigger in ("review", "decide", "sign:probes", "start", "finish"):
        probed = step(cfg, probed.id, trigger)
    assert probed.state == "applied"
    before = _snapshot(cfg, probed.id)
    with pytest.raises(StateError, match="plan_unverified") as err:
        api.advance(cfg, probed.id, "audit", "x", evidence={"reason": "audit events verify"})
    assert err.value.exit_code == 6
    assert _snapshot(cfg, probed.id) == before
    # Nor may it claim a verdict aegisd did not give, and a plain change is not verified.
    verifying = step(cfg, probed.id, "verify")
    with pytest.raises(StateError, match="verification_passed"):
        api.advance(cfg, verifying.id, "verified", "x", evidence={"reason": "trust me"})
    assert step(cfg, verifying.id, "verified").state == "audited"
    with pytest.raises(StateError, match="plan_verifies"):
        step(cfg, rec.id, "verify")
    assert step(cfg, rec.id, "audit").state == "audited"


def test_lost_race_writes_nothing(cfg: Config, make_request: Make) -> None:
    rec = make_request("analyzed")
    wf = load_workflow()
    step(cfg, rec.id, "review")  # another writer wins
    with api.open_store(cfg) as store:
        before = _snapshot(cfg, rec.id)
        move = Move(
            "review",
            "analyzed",
            "reviewed",
            "late",
            rec.updated_at,
            wf.digest,
            artifacts=(NewArtifact("review", b"late"),),
        )
        with pytest.raises(LostRaceError) as err:
            store.commit(rec, [move])
        assert err.value.exit_code == 6
    assert _snapshot(cfg, rec.id) == before


def test_unknown_request_id(cfg: Config, make_request: Make) -> None:
    make_request()
    with pytest.raises(RequestNotFoundError) as err:
        api.get_request(cfg, "r-doesnotexist")
    assert err.value.exit_code == 3
    with pytest.raises(InputError):
        api.get_request(cfg, "../../etc/passwd")


CORRUPTIONS = [
    ("state-edited", "UPDATE requests SET state = 'signed' WHERE id = :id"),
    ("state-garbage", "UPDATE requests SET state = 'bogus' WHERE id = :id"),
    ("version-type", "UPDATE requests SET version = 'x' WHERE id = :id"),
    ("time-garbage", "UPDATE requests SET updated_at = 'yesterday' WHERE id = :id"),
    ("summary-edited", "UPDATE requests SET summary = 'nginx' WHERE id = :id"),
]


@pytest.mark.parametrize(("case", "sql"), CORRUPTIONS, ids=[c[0] for c in CORRUPTIONS])
def test_corrupted_request_row_is_a_clear_trust_error(
    cfg: Config, make_request: Make, case: str, sql: str
) -> None:
    rec = make_request("reviewed")
    with _db(cfg) as conn:
        conn.execute(sql, {"id": rec.id})
    before = _snapshot(cfg, rec.id)
    with pytest.raises(CorruptStoreError) as err:
        api.get_request(cfg, rec.id)
    assert err.value.exit_code == 4
    assert "corrupted or was edited" in err.value.message
    with pytest.raises(TrustError):
        step(cfg, rec.id, "decide")
    assert _snapshot(cfg, rec.id) == before


def test_history_edits_are_caught(cfg: Config, make_request: Make) -> None:
    rec = make_request("reviewed")
    with _db(cfg) as conn:
        with pytest.raises(sqlite3.IntegrityError, match="append-only"):
            conn.execute("DELETE FROM history WHERE request_id = ?", [rec.id])
        conn.execute("DROP TRIGGER history_append_only_update")
        conn.execute(
            "UPDATE history SET actor = 'someone-else' WHERE request_id = ? AND seq = 2", [rec.id]
        )
    with pytest.raises(CorruptStoreError):
        api.get_request_detail(cfg, rec.id)
    with pytest.raises(CorruptStoreError):
        step(cfg, rec.id, "decide")


def test_deleted_history_row_breaks_the_chain(cfg: Config, make_request: Make) -> None:
    rec = make_request("policy")
    with _db(cfg) as conn:
        conn.execute("DROP TRIGGER history_append_only_delete")
        conn.execute("DELETE FROM history WHERE request_id = ? AND seq = 2", [rec.id])
    with pytest.raises(CorruptStoreError, match="broken"):
        api.get_request_detail(cfg, rec.id)


def test_artifact_bytes_are_hash_checked(cfg: Config, make_request: Make) -> None:
    rec = make_request("analyzed")
    assert rec.plan_hash
    with _db(cfg) as conn:
        conn.execute("UPDATE artifacts SET body = ? WHERE sha256 = ?", [b"{}", rec.plan_hash])
    with pytest.raises(CorruptStoreError) as err:
        api.load_artifact(cfg, rec.plan_hash)
    assert err.value.exit_code == 4
    with pytest.raises(RequestNotFoundError):
        api.load_artifact(cfg, "0" * 64)
    with pytest.raises(InputError):
        api.load_artifact(cfg, "not-a-hash")


def test_attach_artifact_keeps_state(cfg: Config, make_request: Make) -> None:
    rec = make_request("policy")
    new = api.attach_artifact(cfg, rec.id, "approval", b'{"approver":"bob"}', "bob")
    assert new.state == "policy"
    assert new.version == rec.version + 1
    assert [a.kind for a in api.request_artifacts(cfg, rec.id)][-1] == "approval"
    found = api.latest_artifact(cfg, rec.id, "approval")
    assert found is not None
    assert found[1] == b'{"approver":"bob"}'
    with pytest.raises(InputError):
        api.attach_artifact(cfg, rec.id, "selfie", b"x", "bob")


def test_newer_schema_is_refused(cfg: Config, make_request: Make) -> None:
    make_request()
    with _db(cfg) as conn:
        conn.execute("PRAGMA user_version = 99")
    with pytest.raises(EnvironmentFailure, match="newer"):
        api.list_requests(cfg)


def test_reopening_does_not_migrate_again(cfg: Config, make_request: Make) -> None:
    rec = make_request()
    states = frozenset(load_workflow().states)
    for _ in range(2):
        with Store.open(cfg.store_path, states=states) as store:
            assert store.get(rec.id) == rec


def test_host_install_dir_mode_and_umask(tmp_path: Path) -> None:
    import os
    import stat

    from aegis.workflow.files import prepare_dir

    old = os.umask(0o022)
    try:
        target = tmp_path / "var" / "lib" / "aegis"
        prepare_dir(target, host_install=True)
        assert stat.S_IMODE(target.stat().st_mode) == 0o2770
        assert os.umask(0o022) == 0o007
    finally:
        os.umask(old)


def test_store_under_a_file_is_an_environment_failure(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(EnvironmentFailure) as err:
        Store.open(blocker / "state.db", states=frozenset({"intent"}))
    assert err.value.exit_code == 7


def test_a_sqlite_utils_plugin_installed_beside_aegis_never_hooks_the_store(
    tmp_path: Path,
) -> None:
    """A distribution's ``sqlite_utils`` entry point would get every store connection."""
    import subprocess
    import sys

    site = tmp_path / "site"
    (site / "evil_plugin-1.0.dist-info").mkdir(parents=True)
    (site / "evil_plugin-1.0.dist-info/METADATA").write_text(
        "Metadata-Version: 2.1\nName: evil-plugin\nVersion: 1.0\n"
    )
    (site / "evil_plugin-1.0.dist-info/entry_points.txt").write_text(
        "[sqlite_utils]\nevil = evil_plugin\n"
    )
    marker = tmp_path / "hooked"
    (site / "evil_plugin.py").write_text(
        "import sqlite_utils\n\n@sqlite_utils.hookimpl\ndef prepare_connection(conn):\n"
        f"    open({str(marker)!r}, 'w').close()\n"
    )
    code = (
        "import sys\nfrom pathlib import Path\nfrom aegis.workflow.store import Store\n"
        "from aegis.workflow.graph import load_workflow\n"
        "states = frozenset(load_workflow().states)\n"
        "with Store.open(Path(sys.argv[1]), states=states): pass\n"
        "import sqlite_utils\nsqlite_utils.Database(memory=True)\n"  # the plugin is real
    )
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": f"{site}:{Path(__file__).parents[3]}"}
    subprocess.run([sys.executable, "-c", code, str(tmp_path / "state.db")], env=env,
                   check=True, timeout=60)  # fmt: skip
    assert marker.exists()  # a Database() with plugins ran it: the plugin is installed
    marker.unlink()
    code = code.replace("import sqlite_utils\nsqlite_utils.Database(memory=True)\n", "")
    subprocess.run([sys.executable, "-c", code, str(tmp_path / "state2.db")], env=env,
                   check=True, timeout=60)  # fmt: skip
    assert not marker.exists()


def test_no_aegis_code_loads_sqlite_utils_plugins() -> None:
    """Loading them imports every installed ``sqlite_utils`` entry point's module.

    The unattended pass (as root) and agents' plans once warmed that load up on a thread,
    which ran such a module's code even though the store never used its hooks.
    """
    root = Path(__file__).parents[3] / "aegis"
    callers = [
        str(p.relative_to(root))
        for p in root.rglob("*.py")
        if "ensure_plugins_loaded" in p.read_text()
        or "load_setuptools_entrypoints" in p.read_text()
    ]
    assert callers == []
