"""Install plans carry evidence for every configured source (issue 12 item 7).

When apt refused a repository's update, a package only that repository offers is
unknown to apt and the plan fails with ``target.unknown``. The plan must still say
which source apt has no usable lists for and, when Aegis can read the repository
itself (``file:``), why: the lists are missing after a refused update (a bad
signature), or they are older than the repository because apt refused the newer
Release (a changed Origin).
"""

from __future__ import annotations

from pathlib import Path

from aegis.devtools import testrepo
from aegis.devtools.testrepo_packages import PackageSpec
from aegis.policy.result import Effect

from .apt_parity import approve, apt_refused, apt_update, cli_plan, config, decide, fired

EXTRA = (PackageSpec("aegis-extra", "1.0"),)


def test_a_source_whose_update_was_refused_is_named_with_why(tmp_path: Path) -> None:
    good = testrepo.build_repo(tmp_path / "good")
    bad = testrepo.negative_repo(
        tmp_path / "bad", "badsig", suite="aegis-extra", packages=EXTRA, name="extra"
    )
    root = testrepo.make_root(tmp_path / "root", [good, bad])
    assert apt_refused(apt_update(root))
    cfg = config(tmp_path / "home", root)
    approve(cfg, good, bad)
    plan = cli_plan(cfg, root, "install", "aegis-extra")
    assert plan.failure is not None
    assert plan.failure.kind == "unknown-package"
    by_uri = {r.uri: r for r in plan.other_sources}
    assert set(by_uri) == {good.uri, bad.uri}  # every configured source, used or not
    assert "no-lists" in by_uri[bad.uri].problems
    assert "signature-bad" in by_uri[bad.uri].problems
    assert not {"no-lists", "lists-stale"} & set(by_uri[good.uri].problems)
    result = decide(cfg, plan)
    assert result.decision is Effect.DENY
    reason = fired(result)["target.unknown"]
    assert "apt has no lists for it" in reason
    assert "signature-bad" in reason
    assert good.uri not in reason


def test_a_source_whose_newer_release_apt_refused_is_named_with_why(tmp_path: Path) -> None:
    repo = testrepo.build_repo(tmp_path / "repo", name="moving")
    root = testrepo.make_root(tmp_path / "root", [repo])
    testrepo.apt_update(root)
    # The repository moves on: a new package, and an Origin apt will not accept silently.
    moved = testrepo.build_repo(
        tmp_path / "repo", packages=(*testrepo.DEFAULT_PACKAGES, *EXTRA), origin="Debian"
    )
    assert moved.uri == repo.uri
    assert "changed its 'Origin'" in apt_update(root)
    cfg = config(tmp_path / "home", root)
    approve(cfg, repo)
    plan = cli_plan(cfg, root, "install", "aegis-extra")
    (src,) = plan.other_sources
    assert "lists-stale" in src.problems
    assert "release-info-changed:Origin Aegis Test -> Debian" in src.problems
    reason = fired(decide(cfg, plan))["target.unknown"]
    assert "lists are older than the repository" in reason
    assert "release-info-changed:Origin" in reason
    # A package apt still knows installs from the old lists; that source is used, and
    # the evidence of the plan is the lists' copy apt will install from.
    used = cli_plan(cfg, root, "install", "aegis-tool")
    assert [r.uri for r in used.repositories] == [repo.uri]
    assert not used.other_sources
    assert used.repositories[0].origin_text == "Aegis Test"
