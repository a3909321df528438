"""Cargo planning from a real local registry (and the same files as a sparse index on
loopback): targets, signals and decisions; hostile inputs and hostile crates; the CLI."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest

from aegis.config import Config, load_config
from aegis.devtools.cargo_registry import CargoRegistry
from aegis.ecosystems import for_tool
from aegis.ecosystems.cargo.crate import CrateError, read_members
from aegis.ecosystems.cargo.names import index_url, registry_dir_url, root_location
from aegis.errors import InputError
from aegis.model import Intent, Operation, Plan, Tool
from aegis.policy.config import PolicyConfigError, ReviewSettings, parse_policy_config
from aegis.policy.engine import evaluate

from .cargo_fixtures import CARGO, build_registry, needs_cargo, policy_with_registry

pytestmark = needs_cargo
REPO = Path(__file__).resolve().parents[4]


@pytest.fixture(scope="module")
def reg(tmp_path_factory: pytest.TempPathFactory) -> CargoRegistry:
    return build_registry(tmp_path_factory.mktemp("cargo") / "registry")


@pytest.fixture(scope="module")
def cfg(tmp_path_factory: pytest.TempPathFactory) -> Config:
    home = tmp_path_factory.mktemp("cargohome")
    return load_config({"AEGIS_HOME": str(home), "AEGIS_CARGO": CARGO or "/usr/bin/cargo",
                        "AEGIS_HOST_ID": "test-host"})  # fmt: skip


def _plan(cfg: Config, registry: str, target: str) -> Plan:
    intent = Intent(Tool.CARGO, Operation.INSTALL, (target,), "tester", "2026-01-01T00:00:00Z",
                    location=root_location(str(cfg.cargo_root)), registry=registry)  # fmt: skip
    return for_tool(Tool.CARGO).plan(cfg, intent, datetime.now(UTC))


def _decide(approved: str, plan: Plan) -> tuple[str, set[str]]:
    pcfg = parse_policy_config(policy_with_registry(approved))
    pcfg = replace(pcfg, review=ReviewSettings(public_keys=(), allow_skip=True, required=False))
    result = evaluate(plan, None, pcfg, datetime.now(UTC))
    return result.decision.value, {f.rule_id for f in result.fired}


@pytest.mark.parametrize(
    ("target", "decision", "rules", "version"),
    [
        ("hello-bin", "allow", {"cargo.install"}, "1.0.0"),
        ("hello-bin@0.9.0", "allow", {"cargo.install"}, "0.9.0"),
        ("yanked-bin", "allow", {"cargo.install"}, "0.9.0"),  # the newest not yanked
        ("yanked-bin@1.0.0", "deny", {"cargo.yanked"}, "1.0.0"),
        ("hostile-build", "deny", {"cargo.build-script-hostile", "cargo.build-command"}, "0.1.0"),
        ("gen-bin", "require-approval", {"cargo.build-command", "cargo.build-script"}, "0.1.0"),
        ("uses-macro", "require-approval", {"cargo.proc-macro"}, "1.0.0"),
        ("native-bin", "require-approval", {"cargo.native"}, "1.0.0"),
        ("unlocked-bin", "deny", {"cargo.unlocked"}, "1.0.0"),
        ("git-lock-bin", "deny", {"cargo.lock-source"}, "1.0.0"),
        ("tampered-bin", "deny", {"integrity.missing"}, "1.0.0"),
        ("link-bin", "deny", {"cargo.archive-refused"}, "1.0.0"),  # a symlinked build.rs
        ("escape-bin", "deny", {"cargo.archive-refused"}, "1.0.0"),  # ../ in the archive
        ("device-bin", "deny", {"cargo.archive-refused"}, "1.0.0"),  # a device node
        ("sudo", "require-approval", {"cargo.bin-shadows"}, "1.0.0"),
        ("ripgrap", "require-approval", {"name.lookalike"}, "1.0.0"),
        ("tiny-dep", "deny", {"analysis.failed"}, None),  # a library: nothing to install
        ("no-such-crate", "deny", {"analysis.failed"}, None),
        ("hello-bin@9.9.9", "deny", {"analysis.failed"}, None),
    ],
)
def test_targets_signals_and_decisions(
    reg: CargoRegistry, cfg: Config, target: str, decision: str, rules: set[str],
    version: str | None,
) -> None:  # fmt: skip
    url = registry_dir_url(str(reg.root))
    plan = _plan(cfg, url, target)
    got, fired = _decide(url, plan)
    assert got == decision, (fired, plan.signals, plan.failure)
    assert rules <= fired
    assert [c.candidate_version for c in plan.changes] == ([version] if version else [])


def test_a_plan_pins_every_crate_of_the_lockfile_and_derives_a_locked_offline_argv(
    reg: CargoRegistry, cfg: Config
) -> None:
    plan = _plan(cfg, registry_dir_url(str(reg.root)), "hello-bin")
    assert plan.ecosystem is not None
    arts = {(a.name, a.version): a.sha256 for a in plan.ecosystem.artifacts}
    assert arts == {("hello-bin", "1.0.0"): reg.cksums[("hello-bin", "1.0.0")],
                    ("tiny-dep", "1.0.0"): reg.cksums[("tiny-dep", "1.0.0")]}  # fmt: skip
    argv = plan.command_preview
    assert argv[:3] == ("/usr/bin/env", "-i", "-C")
    assert argv[argv.index("install") :] == (
        "install", "--locked", "--offline", "--root", str(cfg.cargo_root), "--version", "1.0.0",
        "--", "hello-bin",
    )  # fmt: skip
    assert not cfg.cargo_root.exists()  # planning installs nothing


def test_the_sparse_index_on_loopback_gives_the_same_plan_and_needs_its_own_approval(
    reg: CargoRegistry, cfg: Config
) -> None:
    local = _plan(cfg, registry_dir_url(str(reg.root)), "hello-bin")
    with reg.serve() as url:
        sparse = _plan(cfg, index_url(url), "hello-bin")
        assert sparse.ecosystem is not None
        assert local.ecosystem is not None
        assert [a.sha256 for a in sparse.ecosystem.artifacts] == [
            a.sha256 for a in local.ecosystem.artifacts
        ]
        assert _decide(url, sparse)[0] == "allow"
        decision, fired = _decide(registry_dir_url(str(reg.root)), sparse)
    assert decision == "deny"
    assert "registry.unapproved" in fired


@pytest.mark.parametrize(
    "target",
    [
        "--git=https://evil.example/x",
        "--config=source.crates-io.replace-with='evil'",
        "-Zunstable-options",
        "--path=/tmp/x",
        "https://evil.example/x.crate",
        "git+https://github.com/x/y",
        "../x",
        "/tmp/x",
        "x/y",
        "ripgrep@^14",
        "ripgrep@>=1.0",
        "ripgrep@latest",
        "rip\u0261rep",  # Latin small script g
        "rip\u0433rep",  # Cyrillic ghe
        "ripgrep; rm -rf /",
        "ripgrep 14.0.0",
        "ripgrep@1.0.0@2.0.0",
        "",
    ],
)
def test_hostile_targets_are_refused_before_anything_runs(target: str) -> None:
    with pytest.raises(InputError):
        for_tool(Tool.CARGO).check_targets([target])


@pytest.mark.parametrize(
    "url",
    [
        "file:///srv/crates/",
        "ssh://git@github.com/x/index",
        "https://user:pw@index.example/",
        "https://index.example/?q=1",
        "https://index.example/#x",
        "https://ind\u0435x.example/",  # Cyrillic e
        "--index=https://evil/",
        "git://github.com/rust-lang/crates.io-index",
    ],
)
def test_hostile_index_urls_are_refused(url: str) -> None:
    with pytest.raises(InputError):
        index_url(url)


def test_policy_takes_file_urls_for_cargo_only() -> None:
    assert parse_policy_config(policy_with_registry("file:///srv/crates/")).registries
    npm = policy_with_registry("file:///srv/crates/").replace('"cargo"', '"npm"')
    with pytest.raises(PolicyConfigError):
        parse_policy_config(npm)


def test_a_gzip_bomb_is_refused_without_inflating_it() -> None:
    import gzip

    bomb = gzip.compress(b"\0" * (129 * 1024 * 1024), compresslevel=9)
    with pytest.raises(CrateError, match="expands past"):
        read_members(bomb, "x-1.0.0", frozenset())


def _aegis(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {"AEGIS_HOME": str(home), "AEGIS_HOST_ID": "test-host", "PATH": "/usr/bin:/bin",
           "AEGIS_CARGO": CARGO or "/usr/bin/cargo"}  # fmt: skip
    return subprocess.run([sys.executable, "-m", "aegis", *args], env=env, capture_output=True,
                          text=True, cwd=REPO, timeout=120, check=False)  # fmt: skip


def test_cli_plans_and_refuses(reg: CargoRegistry, tmp_path: Path) -> None:
    ok = _aegis(tmp_path, "cargo", "install", "hello-bin", "--registry-dir", str(reg.root),
                "--plan")  # fmt: skip
    assert ok.returncode == 0, ok.stderr
    assert "hello-bin" in ok.stdout
    assert "request:" in ok.stdout
    no_plan = _aegis(tmp_path, "cargo", "install", "hello-bin", "--registry-dir", str(reg.root))
    assert no_plan.returncode == 3
    assert "without --plan" in no_plan.stderr
    for injected in (("--git", "https://evil/x"), ("--config", "x=1"), ("-Zx",)):
        bad = _aegis(tmp_path, "cargo", "install", *injected, "hello-bin",
                     "--registry-dir", str(reg.root), "--plan")  # fmt: skip
        assert bad.returncode == 3, (injected, bad.stderr)
    other = _aegis(tmp_path, "cargo", "build")
    assert other.returncode == 3
    assert "plans only cargo install" in other.stderr
    neither = _aegis(tmp_path, "cargo", "install", "hello-bin", "--plan")
    assert neither.returncode == 3
    assert "--registry-dir DIR" in neither.stderr
    not_registry = _aegis(tmp_path, "cargo", "install", "hello-bin", "--registry-dir",
                          str(tmp_path), "--plan")  # fmt: skip
    assert not_registry.returncode == 3


def test_aegisd_stages_exactly_the_signed_crates_and_refuses_other_bytes(
    reg: CargoRegistry, cfg: Config
) -> None:
    from aegis.ecosystems.cargo import CARGO as ECO
    from aegis.ecosystems.cargo import work_dir
    from aegis.errors import EnvironmentFailure

    with reg.serve() as url:
        plan = _plan(cfg, index_url(url), "hello-bin")
        ECO.before_run(cfg, plan)
        staged = work_dir(cfg) / "registry"
        assert sorted(p.name for p in staged.glob("*.crate")) == [
            "hello-bin-1.0.0.crate",
            "tiny-dep-1.0.0.crate",
        ]
        assert "local-registry" in (work_dir(cfg) / "home/config.toml").read_text()
        assert plan.ecosystem is not None
        forged = replace(plan.ecosystem, artifacts=tuple(
            replace(a, sha256="0" * 64) if a.name == "tiny-dep" else a
            for a in plan.ecosystem.artifacts))  # fmt: skip
        with pytest.raises(EnvironmentFailure, match=r"tiny-dep 1.0.0: the index cksum moved"):
            ECO.before_run(cfg, replace(plan, ecosystem=forged))


def test_an_upgrade_is_rolled_back_by_planning_the_previous_version(
    reg: CargoRegistry, tmp_path: Path
) -> None:
    from aegis.ecosystems.cargo.rollback import rollback_intent

    cfg = load_config({"AEGIS_HOME": str(tmp_path), "AEGIS_CARGO": CARGO or "/usr/bin/cargo",
                       "AEGIS_HOST_ID": "test-host"})  # fmt: skip
    cfg.cargo_root.mkdir(parents=True)
    tracking = cfg.cargo_root / ".crates2.json"

    def installed(version: str) -> None:  # cargo's own tracking file, as cargo writes it
        key = f"hello-bin {version} (registry+https://github.com/rust-lang/crates.io-index)"
        tracking.write_text(json.dumps({"installs": {key: {"bins": ["hello-bin"]}}}))

    installed("0.9.0")
    url = registry_dir_url(str(reg.root))
    up = _plan(cfg, url, "hello-bin")
    assert [(c.action.value, c.current_version) for c in up.changes] == [("upgrade", "0.9.0")]
    installed("1.0.0")  # as after the upgrade's apply
    intent = rollback_intent(up, "r-0000000000000001", "tester", "2026-01-01T00:00:00Z")
    assert (intent.operation, intent.targets) == (Operation.ROLLBACK, ("hello-bin@0.9.0",))
    back = for_tool(Tool.CARGO).plan(cfg, intent, datetime.now(UTC))
    assert [(c.action.value, c.candidate_version) for c in back.changes] == [("downgrade", "0.9.0")]
    assert back.command_preview[-3:] == ("0.9.0", "--", "hello-bin")
    decision, fired = _decide(url, back)
    assert decision == "require-approval"
    assert "cargo.downgrade" in fired
