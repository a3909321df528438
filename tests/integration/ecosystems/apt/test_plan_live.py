"""The analyzer against the real signed test repository in throwaway roots."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from aegis.devtools import testrepo
from aegis.model import Plan, reproducible_view
from tests.conftest import FILES_ONLY, planned_debs

from .conftest import Analyze, approve, cfg_for, write_policy


def rows(plan: Plan) -> list[tuple[str, str, str | None, str | None]]:
    return [(c.name, c.action.value, c.current_version, c.candidate_version) for c in plan.changes]


def names(plan: Plan, signal: str) -> list[str | None]:
    return [s.package for s in plan.signals if s.name == signal]


def test_install_delta_provenance_and_argv(analyze: Analyze, test_repo: testrepo.Repo) -> None:
    plan = analyze("install", "aegis-tool")
    assert rows(plan) == [
        ("aegis-base", "install", None, "1.2"),
        ("aegis-tool", "install", None, "2.0"),
    ]
    assert plan.configure_order == ("aegis-base", "aegis-tool")
    assert plan.command_preview[:3] == ("/usr/bin/apt-get", *FILES_ONLY)
    assert plan.command_preview[-5:] == ("install", "--trivial-only", "--", *planned_debs(plan))
    pool = test_repo.path / "pool/main"
    assert [p.sha256 for p in plan.provenance] == [
        hashlib.sha256((pool / f"{p.package}_{p.version}_all.deb").read_bytes()).hexdigest()
        for p in plan.provenance
    ]
    assert plan.failure is None
    (repo,) = plan.repositories
    assert (repo.signature, repo.signer_fingerprint, repo.signed_by_form) == (
        "good",
        test_repo.fingerprint,
        "keyring-path",
    )
    assert repo.keyring_trusted_dir
    assert repo.keyring_root_only
    assert not repo.expired
    assert {c.repository for c in plan.changes} == {repo.id}
    assert [p.package for p in plan.provenance] == ["aegis-base", "aegis-tool"]
    prov = plan.provenance[0]
    deb = test_repo.path / "pool/main/aegis-base_1.2_all.deb"

    assert prov.sha256 == hashlib.sha256(deb.read_bytes()).hexdigest()
    assert prov.size == deb.stat().st_size
    assert [c.split(":")[0] for c in prov.chain] == ["InRelease", "Packages", "deb"]
    assert plan.rollback == ()
    assert "repo.unapproved" in [s.name for s in plan.signals]  # no policy file: nothing approved


def test_upgrade_held_back_and_changed_script(apt_root: testrepo.AptRoot, analyze: Analyze) -> None:
    testrepo.run_apt(
        apt_root,
        "install",
        "-y",
        "aegis-base=1.0",
        "aegis-held=1.0",
        "aegis-benign=1.0",
        "libssl3=3.0.1",
    )
    plan = analyze("upgrade", contents=True)
    assert rows(plan) == [
        ("aegis-base", "upgrade", "1.0", "1.2"),
        ("aegis-benign", "upgrade", "1.0", "1.1"),
        ("libssl3", "upgrade", "3.0.1", "3.0.2"),
        ("aegis-held", "held-back", "1.0", "1.1"),
    ]
    assert names(plan, "held-back") == ["aegis-held"]
    assert names(plan, "security-sensitive") == ["libssl3"]
    libssl = next(c for c in plan.changes if c.name == "libssl3")
    assert (libssl.source_package, libssl.source_version) == ("openssl", "3.0.2")
    assert "aegis-benign" in names(plan, "content.script.changed")
    assert "aegis-held=1.1" not in " ".join(plan.command_preview)
    assert {(r.package, r.version, r.obtainable_from) for r in plan.rollback} == {
        ("aegis-base", "1.0", "repository"),
        ("aegis-benign", "1.0", "repository"),
        ("libssl3", "3.0.1", "repository"),
    }
    assert plan.content_inspected
    assert all(p.verified for p in plan.provenance)


def test_downgrade_and_removal(apt_root: testrepo.AptRoot, analyze: Analyze) -> None:
    testrepo.run_apt(apt_root, "install", "-y", "aegis-tool")
    plan = analyze("install", "aegis-base=1.0")
    assert rows(plan) == [
        ("aegis-tool", "remove", "2.0", None),
        ("aegis-base", "downgrade", "1.2", "1.0"),
    ]
    assert names(plan, "downgrade") == ["aegis-base"]
    assert names(plan, "removal") == ["aegis-tool"]
    assert plan.command_preview[:3] == ("/usr/bin/apt-get", *FILES_ONLY)
    assert plan.command_preview[-6:] == (
        "-y",
        "--allow-downgrades",
        "install",
        "--",
        *planned_debs(plan),
        "aegis-tool-",
    )
    rm = analyze("remove", "aegis-base")
    assert rows(rm) == [
        ("aegis-tool", "remove", "2.0", None),
        ("aegis-base", "remove", "1.2", None),
    ]
    assert rm.command_preview == (
        "/usr/bin/apt-get",
        "-y",
        "remove",
        "--",
        "aegis-base",
        "aegis-tool",
    )
    pg = analyze("purge", "aegis-tool")
    assert rows(pg) == [("aegis-tool", "purge", "2.0", None)]


def test_kernel_named(analyze: Analyze) -> None:
    plan = analyze("install", "linux-image-aegis")
    assert rows(plan) == [("linux-image-aegis", "install", None, "6.1.0-1")]
    assert names(plan, "kernel") == ["linux-image-aegis"]


def test_contents_findings(analyze: Analyze) -> None:
    plan = analyze(
        "install",
        "aegis-hostile",
        "aegis-obfuscated",
        "aegis-apthook",
        "aegis-setuid",
        "aegis-benign",
        contents=True,
    )
    by_pkg: dict[str, set[str]] = {}
    for f in plan.findings:
        by_pkg.setdefault(f.package, set()).add(f.rule)
    assert "aegis-benign" not in by_pkg
    assert {"aegis-hostile", "aegis-obfuscated", "aegis-apthook", "aegis-setuid"} <= set(by_pkg)
    # The no-script packages are caught by their data archive, each by the right rule.
    assert by_pkg["aegis-apthook"] == {"content.apt-hook"}
    assert by_pkg["aegis-setuid"] == {"content.setuid"}
    for pkg in ("aegis-hostile", "aegis-obfuscated"):
        assert {"script.download-exec", "script.decoded-exec", "script.sudoers"} <= by_pkg[pkg]
    assert any(s.name.startswith("content.") and s.package == "aegis-hostile" for s in plan.signals)


def test_same_state_same_plan(analyze: Analyze) -> None:
    a = analyze("install", "aegis-tool", "linux-image-aegis", contents=True)
    b = analyze("install", "aegis-tool", "linux-image-aegis", contents=True)
    assert a.plan_id != b.plan_id
    assert reproducible_view(a) == reproducible_view(b)


def test_unknown_package_recorded_not_raised(analyze: Analyze) -> None:
    plan = analyze("install", "aegis-bsae")
    assert plan.failure is not None
    assert plan.failure.kind == "unknown-package"
    assert plan.command_preview == ()
    (sig,) = [s for s in plan.signals if s.name == "target.unknown"]
    assert sig.package == "aegis-bsae"
    assert "aegis-base" in sig.detail


def test_broken_dependencies_recorded(tmp_path: Path, aegis_home: Path, analyze: Analyze) -> None:
    repo = testrepo.build_repo(
        tmp_path / "r",
        packages=[testrepo.PackageSpec("aegis-broken", "1.0", depends="aegis-missing")],
    )
    root = testrepo.make_root(tmp_path / "r2", [repo])
    testrepo.apt_update(root)
    plan = analyze("install", "aegis-broken", root=root)
    assert plan.failure is not None
    assert plan.failure.kind == "broken-dependencies"
    assert "analysis.failed" in [s.name for s in plan.signals]


@pytest.mark.parametrize(
    ("target", "signal"),
    [("./x.deb", "target.direct-path"), ("http://example.invalid/x.deb", "target.url")],
)
def test_direct_targets_plan_never_runs(analyze: Analyze, target: str, signal: str) -> None:
    plan = analyze("install", target)
    assert [s.detail for s in plan.signals if s.name == signal] == [target]
    assert plan.changes == ()
    assert plan.command_preview == ()
    assert plan.failure is not None
    assert plan.failure.kind == "bad-target"


def test_update_plan_lists_sources(analyze: Analyze, test_repo: testrepo.Repo) -> None:
    plan = analyze("update")
    assert plan.command_preview == ("/usr/bin/apt-get", "update")
    (repo,) = plan.repositories
    assert repo.uri == test_repo.uri
    assert repo.signature == "good"


def test_approved_source_and_lookalike_weakly_pinned(
    tmp_path: Path, aegis_home: Path, test_repo: testrepo.Repo, analyze: Analyze
) -> None:
    look = testrepo.debian_lookalike_repo(tmp_path / "look")
    root = testrepo.make_root(tmp_path / "r2", [test_repo, look])
    testrepo.apt_update(root)
    cfg = cfg_for(root, aegis_home)
    write_policy(cfg, [approve(cfg, test_repo)])
    plan = analyze("install", "libssl3", "aegis-tool", root=root, cfg=cfg)
    assert rows(plan) == [
        ("aegis-base", "install", None, "9.0"),
        ("aegis-tool", "install", None, "2.0"),
        ("libssl3", "install", None, "9.0"),
    ]
    assert sorted(n for n in names(plan, "weakly-pinned") if n) == ["aegis-base", "libssl3"]
    lk = next(r for r in plan.repositories if r.uri == look.uri)
    assert (lk.origin_text, lk.approved, lk.signature) == ("Debian", False, "good")
    ours = next(r for r in plan.repositories if r.uri == test_repo.uri)
    assert ours.approved
    assert ours.distribution
    assert "unapproved" not in ours.problems
    # Approved, but only for other names: still weakly pinned.
    write_policy(
        cfg,
        [
            approve(cfg, test_repo),
            approve(cfg, look, distribution=False, packages=["aegis-lookalike-*"], name="lk"),
        ],
    )
    plan2 = analyze("install", "libssl3", root=root, cfg=cfg)
    assert names(plan2, "weakly-pinned") == ["libssl3"]


def test_essential_removal_is_planned_and_flagged(
    tmp_path: Path, aegis_home: Path, analyze: Analyze
) -> None:
    repo = testrepo.build_repo(
        tmp_path / "ess", packages=[testrepo.PackageSpec("aegis-essential", "1.0", essential=True)]
    )
    root = testrepo.make_root(tmp_path / "r3", [repo])
    testrepo.apt_update(root)
    testrepo.run_apt(root, "install", "-y", "aegis-essential")
    plan = analyze("remove", "aegis-essential", root=root)
    assert rows(plan) == [("aegis-essential", "remove", "1.0", None)]
    assert plan.changes[0].essential
    assert names(plan, "essential") == ["aegis-essential"]


def test_the_installed_prerm_of_a_removal_is_scanned(
    apt_root: testrepo.AptRoot, aegis_home: Path, test_repo: testrepo.Repo, analyze: Analyze
) -> None:
    """Removing a package runs its *installed* prerm/postrm: a destructive one is found
    there (no .deb is fetched for a removal) and policy denies the plan."""
    from datetime import UTC, datetime

    from aegis.policy.engine import evaluate
    from aegis.policy.run import load_policy

    testrepo.run_apt(apt_root, "install", "-y", "aegis-tool")
    cfg = cfg_for(apt_root, aegis_home)
    write_policy(cfg, [approve(cfg, test_repo)])
    clean = analyze("remove", "aegis-tool")
    assert not [f for f in clean.findings if f.file.startswith("installed:")]
    now = datetime(2026, 1, 1, tzinfo=UTC)
    before = evaluate(clean, None, load_policy(cfg), now)
    assert "script.hostile" not in [r.rule_id for r in before.fired if r.effect.value == "deny"]

    info = apt_root.root / "var/lib/dpkg/info"
    (info / "aegis-tool.prerm").write_text("#!/bin/sh\nset -e\nrm -rf --no-preserve-root /\n")
    plan = analyze("remove", "aegis-tool")
    assert [(f.package, f.file, f.line, f.rule, f.severity) for f in plan.findings] == [
        ("aegis-tool", "installed:prerm", 3, "script.destructive", "hostile")
    ]
    result = evaluate(plan, None, load_policy(cfg), now)
    assert result.decision.value == "deny"
    assert "script.hostile" in [r.rule_id for r in result.fired if r.effect.value == "deny"]


def test_a_requested_name_that_imitates_an_installed_one(
    apt_root: testrepo.AptRoot, analyze: Analyze
) -> None:
    """Real apt, real status file: 'aegis-tool' is one letter from an installed
    'aegis-tol', so the request carries name.lookalike; its dependency does not."""
    assert names(analyze("install", "aegis-tool"), "name.lookalike") == []
    status = apt_root.root / "var/lib/dpkg/status"
    status.write_text(
        status.read_text()
        + "Package: aegis-tol\nStatus: install ok installed\nVersion: 1\nArchitecture: all\n"
        "Maintainer: x <x@example.invalid>\nDescription: x\n\n"
    )
    plan = analyze("install", "aegis-tool")
    assert [(s.package, s.detail) for s in plan.signals if s.name == "name.lookalike"] == [
        ("aegis-tool", "aegis-tool looks like aegis-tol (edit)")
    ]


def test_a_dpkg_hold_is_named_as_a_hold(apt_root: testrepo.AptRoot, analyze: Analyze) -> None:
    """A package on hold that apt keeps back is a hold, and installing it over the hold
    is refused with what to do, not apt's raw text."""
    testrepo.run_apt(apt_root, "install", "-y", "aegis-base=1.0")
    status = apt_root.root / "var/lib/dpkg/status"
    text = status.read_text()
    head, sep, tail = text.partition("Package: aegis-base\nStatus: install ok installed")
    assert sep
    status.write_text(head + "Package: aegis-base\nStatus: hold ok installed" + tail)
    plan = analyze("upgrade")
    [held] = [s for s in plan.signals if s.name == "held-back"]
    assert held.package == "aegis-base"
    assert "held by dpkg (apt-mark hold)" in held.detail
    pinned = analyze("install", "aegis-base=1.2")
    assert pinned.failure is not None
    assert pinned.failure.kind == "held"
    assert "apt-mark unhold" in pinned.failure.message
