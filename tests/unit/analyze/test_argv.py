"""derive_argv: the one argv derivation (docs/design.md "Trust")."""

from __future__ import annotations

from dataclasses import replace

from aegis.execute.argv import derive_argv
from aegis.model import (
    PLAN_SCHEMA,
    Action,
    AnalysisFailure,
    ConfigEvidence,
    Host,
    Intent,
    Operation,
    PackageChange,
    Plan,
    SnapshotDeb,
    Tool,
)


def plan(op: Operation, *changes: PackageChange) -> Plan:
    return Plan(
        schema_version=PLAN_SCHEMA,
        plan_id="p-1",
        created_at="2026-01-01T00:00:00Z",
        intent=Intent(Tool.APT, op, (), "me", "2026-01-01T00:00:00Z"),
        host=Host("0" * 32, "h"),
        changes=changes,
        configure_order=(),
        command_preview=(),
        repositories=(),
        config=ConfigEvidence("", "", ()),
        provenance=(),
        findings=(),
        vulnerabilities=(),
        vulndb_date=None,
        rollback=(),
        signals=(),
        package_state_hash="",
        content_inspected=False,
    )


def ch(
    name: str, action: Action, cur: str | None, new: str | None, arch: str = "all"
) -> PackageChange:
    return PackageChange(name, arch, action, cur, new, name, new or cur, None)


def test_install_lists_every_package_trivial_only() -> None:
    p = plan(
        Operation.INSTALL,
        ch("tool", Action.INSTALL, None, "2.0"),
        ch("base", Action.UPGRADE, "1.0", "1.2"),
        ch("nginx", Action.INSTALL, None, "1:1.22", "amd64"),
    )
    assert derive_argv(p) == (
        "/usr/bin/apt-get",
        "install",
        "--trivial-only",
        "--",
        "base=1.2",
        "nginx:amd64=1:1.22",
        "tool=2.0",
    )


def test_held_back_is_not_applied() -> None:
    p = plan(
        Operation.UPGRADE, ch("a", Action.UPGRADE, "1", "2"), ch("h", Action.HELD_BACK, "1", "2")
    )
    assert derive_argv(p) == ("/usr/bin/apt-get", "install", "--trivial-only", "--", "a=2")


def test_removal_and_purge() -> None:
    rm = plan(
        Operation.REMOVE,
        ch("tool", Action.REMOVE, "2.0", None),
        ch("base", Action.REMOVE, "1.2", None),
    )
    assert derive_argv(rm) == ("/usr/bin/apt-get", "-y", "remove", "--", "base", "tool")
    pg = plan(Operation.PURGE, ch("base", Action.PURGE, "1.2", None))
    assert derive_argv(pg) == ("/usr/bin/apt-get", "-y", "purge", "--", "base")


def test_downgrade_with_removal_is_one_command() -> None:
    p = plan(
        Operation.ROLLBACK,
        ch("tool", Action.REMOVE, "2.0", None),
        ch("base", Action.DOWNGRADE, "1.2", "1.0"),
    )
    assert derive_argv(p) == (
        "/usr/bin/apt-get",
        "-y",
        "--allow-downgrades",
        "install",
        "--",
        "base=1.0",
        "tool-",
    )


def test_update_recover_failure_and_empty() -> None:
    assert derive_argv(plan(Operation.UPDATE)) == ("/usr/bin/apt-get", "update")
    assert derive_argv(plan(Operation.RECOVER)) == ("/usr/bin/dpkg", "--configure", "-a")
    assert derive_argv(plan(Operation.INSTALL)) == ()
    failed = replace(
        plan(Operation.INSTALL, ch("a", Action.INSTALL, None, "1")),
        failure=AnalysisFailure("lock", "x"),
    )
    assert derive_argv(failed) == ()


KEPT = "/var/lib/aegis/aegisd/rollback-cache/snap-7/base_1.0_all.deb"


def _rollback(
    *, verified: bool = True, snapshot: str = "snap-7", op: Operation = Operation.ROLLBACK
) -> Plan:
    p = plan(
        op,
        ch("base", Action.DOWNGRADE, "1.2", "1.0"),
        ch("tool", Action.DOWNGRADE, "2.0", "1.0"),
    )
    sd = SnapshotDeb("base", "1.0", "all", snapshot, KEPT, "5" * 64, 10, "dpkg-repack", verified)
    return replace(
        p,
        intent=replace(p.intent, rollback_of="snap-7", targets=("base=1.0", "tool=1.0")),
        snapshot_debs=(sd,),
    )


def test_rollback_names_the_kept_deb_by_path_the_rest_by_version() -> None:
    assert derive_argv(_rollback()) == (
        "/usr/bin/apt-get",
        "-y",
        "--allow-downgrades",
        "install",
        "--",
        KEPT,
        "tool=1.0",
    )


def test_a_kept_deb_that_may_not_be_used_runs_nothing() -> None:
    assert derive_argv(_rollback(verified=False)) == ()
    assert derive_argv(_rollback(snapshot="snap-other")) == ()
    assert derive_argv(_rollback(op=Operation.INSTALL)) == ()
