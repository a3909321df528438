"""derive_argv: the one argv derivation (docs/design.md "Trust")."""

from __future__ import annotations

from dataclasses import replace

from aegis.canonical import sha256_hex
from aegis.ecosystems.apt.argv import derive_argv
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
    Provenance,
    SnapshotDeb,
    Tool,
)

DEBS = "/var/lib/aegis/aegisd/debs"
FILES_ONLY = (
    "-o",
    "Dir::Etc::SourceList=/dev/null",
    "-o",
    f"Dir::Etc::SourceParts={DEBS}/",
    "-o",
    "Dir::Cache::pkgcache=",
    "-o",
    "Dir::Cache::srcpkgcache=",
)


def sha(name: str) -> str:
    return sha256_hex(name.encode())


def prov(c: PackageChange) -> Provenance:
    v = c.candidate_version or ""
    return Provenance(
        c.name, v, c.arch, f"file:/r/{c.name}.deb", f"{c.name}.deb", 9, sha(c.name), None, (), False
    )


def deb(name: str, version: str, arch: str = "all") -> str:
    return f"{DEBS}/{name}_{version.replace(':', '%3a')}_{arch}_{sha(name)}.deb"


def plan(op: Operation, *changes: PackageChange) -> Plan:
    """A plan of ``changes``; every package installed has provenance (a verified file)."""
    installs = (Action.INSTALL, Action.UPGRADE, Action.DOWNGRADE, Action.REINSTALL)
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
        provenance=tuple(prov(c) for c in changes if c.action in installs),
        findings=(),
        vulnerabilities=(),
        vulndb_date=None,
        rollback=(),
        signals=(),
        package_state_hash="",
        content_inspected=False,
        deb_dir=DEBS,
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
        *FILES_ONLY,
        "install",
        "--trivial-only",
        "--",
        deb("base", "1.2"),
        deb("nginx", "1:1.22", "amd64"),
        deb("tool", "2.0"),
    )


def test_a_package_without_an_exact_file_runs_nothing() -> None:
    """Naming a package only by its version would be a guess: two builds, one version."""
    p = plan(Operation.INSTALL, ch("tool", Action.INSTALL, None, "2.0"))
    assert derive_argv(replace(p, provenance=())) == ()
    assert derive_argv(replace(p, deb_dir="")) == ()
    other_build = replace(p.provenance[0], version="2.1")
    assert derive_argv(replace(p, provenance=(other_build,))) == ()


def test_the_sha256_names_the_file() -> None:
    p = plan(Operation.INSTALL, ch("tool", Action.INSTALL, None, "2.0"))
    rebuilt = replace(p, provenance=(replace(p.provenance[0], sha256="e" * 64),))
    assert derive_argv(rebuilt)[-1] == f"{DEBS}/tool_2.0_all_{'e' * 64}.deb"
    assert derive_argv(rebuilt) != derive_argv(p)


def test_held_back_is_not_applied() -> None:
    p = plan(
        Operation.UPGRADE, ch("a", Action.UPGRADE, "1", "2"), ch("h", Action.HELD_BACK, "1", "2")
    )
    assert derive_argv(p) == (
        "/usr/bin/apt-get",
        *FILES_ONLY,
        "install",
        "--trivial-only",
        "--",
        deb("a", "2"),
    )


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
        *FILES_ONLY,
        "-y",
        "--allow-downgrades",
        "install",
        "--",
        deb("base", "1.0"),
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
        provenance=tuple(x for x in p.provenance if x.package == "tool"),
    )


def test_rollback_names_the_kept_deb_by_path_the_rest_by_fetched_file() -> None:
    assert derive_argv(_rollback()) == (
        "/usr/bin/apt-get",
        *FILES_ONLY,
        "-y",
        "--allow-downgrades",
        "install",
        "--",
        deb("tool", "1.0"),
        KEPT,
    )


def test_a_kept_deb_that_may_not_be_used_runs_nothing() -> None:
    assert derive_argv(_rollback(verified=False)) == ()
    assert derive_argv(_rollback(snapshot="snap-other")) == ()
    assert derive_argv(_rollback(op=Operation.INSTALL)) == ()
