"""Policy on plans made by the real analyzer against the real signed test repositories
(real apt, dpkg and gpgv in throwaway roots): decision, rule ids and contract phrases."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from aegis.config import Config, load_config
from aegis.devtools import testrepo
from aegis.ecosystems.apt.plan import analyze_apt
from aegis.model import Intent, Operation, Plan, Tool
from aegis.policy.engine import evaluate
from aegis.policy.result import Effect, PolicyResult
from aegis.policy.run import load_policy

REPO_PHRASE = (
    "untrusted or weakly pinned package repository: require an explicit trusted Signed-By "
    "keyring and approved source."
)
SOURCE_PHRASE = (
    "target source or evidence is denied: do not work around direct URL, local path, "
    "replacement, unsigned repo, downgrade, or missing provenance blocks."
)
NOW = datetime.now(UTC).replace(microsecond=0)

# No vulnerability database is imported in these roots; the site decides to run without
# one (an overridable rule) so the decisions below are the delta's own.
_POLICY_TAIL = """
[review]
required = false

[rules."vuln.db-missing"]
enabled = false
"""


def _source(repo: testrepo.Repo, name: str, packages: list[str] | None) -> str:
    lines = [
        "[[sources]]",
        f'name = "{name}"',
        f'uri = "{repo.uri}"',
        f'suite = "{repo.suite}"',
        f'component = "{repo.component}"',
        f'signer_fingerprint = "{repo.fingerprint}"',
    ]
    if packages is None:
        lines.append("distribution = true")
    else:
        lines.append("packages = [" + ", ".join(f'"{p}"' for p in packages) + "]")
    return "\n".join(lines) + "\n"


def _cfg(root: testrepo.AptRoot, home: Path, sources: list[str]) -> Config:
    cfg = load_config(
        {
            "AEGIS_HOME": str(home),
            "AEGIS_APT_CONFIG": str(root.apt_config),
            "AEGIS_HOST_ID": "test-host",
        }
    )
    cfg.policy_path.parent.mkdir(parents=True, exist_ok=True)
    head = 'format = "aegis.policy-config/1"\nruleset = "aegis.rules/1"\nname = "live"\n\n'
    cfg.policy_path.write_text(head + "".join(sources) + _POLICY_TAIL, encoding="utf-8")
    return cfg


def _decide(cfg: Config, op: str, *targets: str, contents: bool = False) -> PolicyResult:
    now = datetime.now(UTC).replace(microsecond=0)  # not import time: see the clock skew
    intent = Intent(Tool.APT, Operation(op), targets, "tester", now.strftime("%Y-%m-%dT%H:%M:%SZ"))
    plan: Plan = analyze_apt(cfg, intent, now=now, inspect_contents=contents)
    return evaluate(plan, None, load_policy(cfg), now)


def _fired(result: PolicyResult) -> dict[str, Effect]:
    return {f.rule_id: f.effect for f in result.fired}


@pytest.fixture
def cfg(apt_root: testrepo.AptRoot, aegis_home: Path, test_repo: testrepo.Repo) -> Config:
    return _cfg(apt_root, aegis_home, [_source(test_repo, "test", None)])


def test_clean_install_from_the_approved_source_allows_with_snapshot(cfg: Config) -> None:
    result = _decide(cfg, "install", "aegis-tool")
    assert result.decision is Effect.ALLOW_WITH_SNAPSHOT, result.fired
    assert "apt.upgrade-clean" in _fired(result)
    assert result.controls.snapshot is True
    assert result.controls.approval.count == 0


def test_update_is_allowed(cfg: Config) -> None:
    result = _decide(cfg, "update")
    assert result.decision is Effect.ALLOW
    assert "apt.update" in _fired(result)
    assert result.controls.snapshot is False


def test_kernel_package_requires_approval(cfg: Config) -> None:
    result = _decide(cfg, "install", "linux-image-aegis")
    assert result.decision is Effect.REQUIRE_APPROVAL
    assert _fired(result)["kernel.change"] is Effect.REQUIRE_APPROVAL
    assert result.controls.approval.count == 1
    assert result.controls.snapshot is True


def test_downgrade_denies_with_the_contract_phrase_and_removal_needs_approval(
    cfg: Config, apt_root: testrepo.AptRoot
) -> None:
    testrepo.run_apt(apt_root, "install", "-y", "aegis-tool")
    result = _decide(cfg, "install", "aegis-base=1.0")
    assert result.decision is Effect.DENY
    fired = {f.rule_id: f for f in result.fired}
    assert fired["apt.downgrade"].contract == SOURCE_PHRASE
    assert fired["apt.removal"].effect is Effect.REQUIRE_APPROVAL
    removal = _decide(cfg, "remove", "aegis-base")
    assert removal.decision is Effect.REQUIRE_APPROVAL
    assert set(_fired(removal)) >= {"apt.removal"}


def test_hostile_and_obfuscated_scripts_deny(cfg: Config) -> None:
    result = _decide(cfg, "install", "aegis-hostile", "aegis-obfuscated", contents=True)
    assert result.decision is Effect.DENY
    fired = _fired(result)
    assert fired["script.download-exec"] is Effect.DENY
    assert fired.get("script.decoded-exec") is Effect.DENY


def test_apt_hook_and_setuid_from_a_vendor_source_need_approval(
    apt_root: testrepo.AptRoot, aegis_home: Path, test_repo: testrepo.Repo
) -> None:
    cfg = _cfg(apt_root, aegis_home, [_source(test_repo, "vendor", ["aegis-*"])])
    result = _decide(cfg, "install", "aegis-apthook", "aegis-setuid", contents=True)
    fired = _fired(result)
    assert fired["content.apt-hook"] in (Effect.REQUIRE_APPROVAL, Effect.DENY)
    assert fired["content.setuid"] is Effect.REQUIRE_APPROVAL
    assert result.decision in (Effect.REQUIRE_APPROVAL, Effect.DENY)


def test_sensitive_contents_from_the_distribution_source_do_not_block(cfg: Config) -> None:
    result = _decide(cfg, "install", "aegis-apthook", "aegis-setuid", contents=True)
    assert result.decision is Effect.ALLOW_WITH_SNAPSHOT, result.fired


def test_benign_package_with_contents_inspected_allows(cfg: Config) -> None:
    result = _decide(cfg, "install", "aegis-benign", contents=True)
    assert result.decision is Effect.ALLOW_WITH_SNAPSHOT, result.fired


def test_unknown_and_direct_targets_deny(cfg: Config) -> None:
    unknown = _decide(cfg, "install", "aegis-bsae")
    assert unknown.decision is Effect.DENY
    assert {"analysis.failed", "target.unknown"} <= set(_fired(unknown))
    for target, rule in (
        ("./x.deb", "target.direct-path"),
        ("http://x.invalid/x.deb", "target.url"),
    ):
        result = _decide(cfg, "install", target)
        assert result.decision is Effect.DENY
        fired = {f.rule_id: f for f in result.fired}
        assert fired[rule].contract == SOURCE_PHRASE


def test_unapproved_repository_denies(apt_root: testrepo.AptRoot, aegis_home: Path) -> None:
    cfg = _cfg(apt_root, aegis_home, [])
    result = _decide(cfg, "install", "aegis-tool")
    assert result.decision is Effect.DENY
    fired = {f.rule_id: f for f in result.fired}
    assert fired["repo.untrusted"].contract == REPO_PHRASE


def test_lookalike_origin_debian_repository_is_weakly_pinned(
    tmp_path: Path, aegis_home: Path, test_repo: testrepo.Repo
) -> None:
    look = testrepo.debian_lookalike_repo(tmp_path / "look")
    root = testrepo.make_root(tmp_path / "root2", [test_repo, look])
    testrepo.apt_update(root)
    # The look-alike is even approved, but only for names it does not win here.
    cfg = _cfg(
        root,
        aegis_home,
        [_source(test_repo, "test", None), _source(look, "lk", ["aegis-lookalike-*"])],
    )
    result = _decide(cfg, "install", "libssl3")
    assert result.decision is Effect.DENY
    fired = {f.rule_id: f for f in result.fired}
    assert fired["repo.weakly-pinned"].contract == REPO_PHRASE
    assert "libssl3" in fired["repo.weakly-pinned"].subjects


def test_upgrade_from_a_vendor_source_flags_changed_script_held_back_and_sensitive(
    apt_root: testrepo.AptRoot, aegis_home: Path, test_repo: testrepo.Repo
) -> None:
    cfg = _cfg(apt_root, aegis_home, [_source(test_repo, "vendor", ["aegis-*", "libssl3"])])
    testrepo.run_apt(
        apt_root,
        "install",
        "-y",
        "aegis-base=1.0",
        "aegis-held=1.0",
        "aegis-benign=1.0",
        "libssl3=3.0.1",
    )
    result = _decide(cfg, "upgrade", contents=True)
    assert result.decision is Effect.REQUIRE_APPROVAL
    fired = {f.rule_id: f for f in result.fired}
    assert "aegis-benign" in fired["script.changed"].subjects
    assert fired["apt.held-back"].subjects == ("aegis-held",)
    assert "libssl3" in fired["package.security-sensitive"].subjects
