"""npm planning with real npm against a static registry on loopback: signals, rules, refusals."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest

from aegis.config import load_config
from aegis.ecosystems import for_tool
from aegis.errors import InputError
from aegis.model import Intent, Operation, Plan, Tool
from aegis.policy.config import ReviewSettings, parse_policy_config
from aegis.policy.engine import evaluate

from .npm_fixtures import NpmWorld, needs_npm, new_project, policy_with_registry, serve

pytestmark = needs_npm
REPO = Path(__file__).resolve().parents[4]


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NpmWorld]:
    yield from serve(tmp_path_factory.mktemp("npm") / "registry")


def _plan(world: NpmWorld, project: Path, *targets: str, registry: str | None = None) -> Plan:
    intent = Intent(Tool.NPM, Operation.INSTALL, targets, "tester", "2026-01-01T00:00:00Z",
                    location=f"project:{project}", registry=registry or world.url)  # fmt: skip
    return for_tool(Tool.NPM).plan(load_config({}), intent, datetime.now(UTC))


def _decide(world: NpmWorld, plan: Plan) -> tuple[str, set[str]]:
    cfg = parse_policy_config(policy_with_registry(world.url))
    cfg = replace(cfg, review=ReviewSettings(public_keys=(), allow_skip=True, required=False))
    result = evaluate(plan, None, cfg, datetime.now(UTC))
    return result.decision.value, {f.rule_id for f in result.fired}


@pytest.mark.parametrize(
    ("target", "decision", "rules"),
    [
        ("top-b", "allow", {"npm.install"}),
        ("friendly-wrap", "deny", {"npm.script-hostile", "npm.install-script"}),
        ("gyp-thing", "require-approval", {"npm.install-script"}),
        ("shadow-bin", "require-approval", {"npm.bin-shadows"}),
        ("lodahs", "require-approval", {"name.lookalike"}),
        ("no-such-package", "deny", {"analysis.failed"}),
        ("top-b@9.9.9", "deny", {"analysis.failed"}),
    ],
)
def test_targets_signals_and_decisions(
    world: NpmWorld, tmp_path: Path, target: str, decision: str, rules: set[str]
) -> None:
    plan = _plan(world, new_project(tmp_path / "p"), target)
    got, fired = _decide(world, plan)
    assert got == decision, fired
    assert rules <= fired


def test_a_plan_is_the_lockfile_change_and_touches_nothing(world: NpmWorld, tmp_path: Path) -> None:
    project = new_project(tmp_path / "p")
    before = (project / "package.json").read_text()
    plan = _plan(world, project, "top-b")
    assert (project / "package.json").read_text() == before
    assert not (project / "package-lock.json").exists()
    assert not (project / "node_modules").exists()
    assert [(c.name, c.candidate_version) for c in plan.changes] == [
        ("dep-a", "1.0.0"),
        ("top-b", "2.0.0"),
    ]
    assert plan.ecosystem is not None
    files = {f.name: f for f in plan.ecosystem.files}
    assert json.loads(files["package.json"].after)["dependencies"] == {"top-b": "^2.0.0"}
    assert files["package-lock.json"].before is None
    assert all(a.integrity.startswith("sha512-") for a in plan.ecosystem.artifacts)
    assert plan.command_preview[:3] == ("/usr/bin/npm", "ci", "--ignore-scripts")


def test_an_unapproved_registry_is_denied(world: NpmWorld, tmp_path: Path) -> None:
    other = world.url.replace("127.0.0.1", "localhost")
    plan = _plan(world, new_project(tmp_path / "p"), "dep-a", registry=other)
    decision, fired = _decide(world, plan)
    assert decision == "deny"
    assert "registry.unapproved" in fired


@pytest.mark.parametrize(
    "target",
    [
        "--registry=http://evil/",
        "git+https://github.com/x/y.git",
        "github:x/y",
        "x/y",
        "https://evil.example/x.tgz",
        "file:../x",
        "./x",
        "/tmp/x.tgz",
        "lodash@npm:evil",
        "lodash@latest#x",
        "Lodash",
        "lod\u0430sh",  # Cyrillic a
        "lodash; rm -rf /",
        "lodash@1.0.0 --registry http://evil",
        "",
    ],
)
def test_hostile_targets_are_refused_before_anything_runs(target: str) -> None:
    with pytest.raises(InputError):
        for_tool(Tool.NPM).check_targets([target])


def _aegis(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {"AEGIS_HOME": str(home), "AEGIS_HOST_ID": "test-host", "PATH": "/usr/bin:/bin"}
    return subprocess.run([sys.executable, "-m", "aegis", *args], env=env, capture_output=True,
                          text=True, cwd=REPO, timeout=120, check=False)  # fmt: skip


def test_cli_plans_and_refuses(world: NpmWorld, tmp_path: Path) -> None:
    project = new_project(tmp_path / "p")
    ok = _aegis(tmp_path, "npm", "install", "top-b", "--project", str(project),
                "--registry", world.url, "--plan")  # fmt: skip
    assert ok.returncode == 0, ok.stderr
    assert "+ dep-a 1.0.0" in ok.stdout
    assert not (project / "package-lock.json").exists()
    no_plan = _aegis(tmp_path, "npm", "install", "top-b", "--project", str(project))
    assert no_plan.returncode == 3
    assert "without --plan" in no_plan.stderr
    injected = _aegis(tmp_path, "npm", "install", "--userconfig=/tmp/evil", "top-b",
                      "--project", str(project), "--plan")  # fmt: skip
    assert injected.returncode == 3  # an npm option is a bad target, not an option
    other = _aegis(tmp_path, "npm", "ci")
    assert other.returncode == 3
    assert "plans only npm install" in other.stderr
    missing = _aegis(tmp_path, "npm", "install", "top-b", "--plan")
    assert missing.returncode == 3
    assert "--project DIR is required" in missing.stderr
    glob = _aegis(tmp_path, "npm", "install", "top-b", "--global", "--registry", world.url,
                  "--plan", "--json")  # fmt: skip
    assert glob.returncode == 0, glob.stderr
    prefix = tmp_path / "var/lib/aegis/managed/npm"
    assert json.loads(glob.stdout)["plan"]["intent"]["location"] == f"global:{prefix}"
    assert not prefix.exists()  # the apply creates it, root's alone
    both = _aegis(tmp_path, "npm", "install", "top-b", "--global", "--project", str(project),
                  "--plan")  # fmt: skip
    assert both.returncode == 3
    assert "two places" in both.stderr
    # "--project global" is the directory ./global, never the managed prefix.
    word = _aegis(tmp_path, "npm", "install", "top-b", "--project", "global", "--plan")
    assert word.returncode == 3
    assert "global has no package.json" in word.stderr


@pytest.mark.parametrize(
    "where",
    ["global:/etc", "GLOBAL", " global", "global/..", "/var/lib/aegis/managed/npm", "glob\u0430l"],
)
def test_only_the_word_global_names_the_managed_prefix(tmp_path: Path, where: str) -> None:
    cfg = load_config({"AEGIS_HOME": str(tmp_path)})
    eco = for_tool(Tool.NPM)
    assert eco.place(cfg, ["dep-a"], "global", None)[0] == (
        f"global:{tmp_path}/var/lib/aegis/managed/npm"
    )
    with pytest.raises(InputError):  # each is a project path without package.json
        eco.place(cfg, ["dep-a"], where, None)


def test_a_project_inside_the_managed_prefix_is_refused(tmp_path: Path) -> None:
    """The prefix's ownership checks are the --global path's: never planned as a project."""
    cfg = load_config({"AEGIS_HOME": str(tmp_path)})
    eco = for_tool(Tool.NPM)
    prefix = new_project(tmp_path / "var/lib/aegis/managed/npm")
    for inside in (prefix, new_project(prefix / "node_modules/x")):
        with pytest.raises(InputError, match="is the managed prefix"):
            eco.place(cfg, ["dep-a"], str(inside), None)


@pytest.mark.parametrize(
    ("target", "decision", "why"),
    [
        ("top-b", "allow", ""),  # published in 2020, and so is its dependency
        # minutes pass under load between publishing and planning
        ("fresh-pkg", "require-approval", r"published 1h( \d+m)? ago, minimum 3d"),
        ("undated-pkg", "require-approval", "no publish time: age unknown"),
        ("odd-time", "deny", ""),  # not a time: npm itself refuses the packument
        ("future-time", "require-approval", "published 0m ago"),  # a date to come is not old
    ],
)
def test_min_release_age_holds_versions_the_registry_published_recently(
    world: NpmWorld, tmp_path: Path, target: str, decision: str, why: str
) -> None:
    from .npm_fixtures import with_release_age

    plan = _plan(world, new_project(tmp_path / "p"), target)
    assert plan.ecosystem is not None
    published = {a.name: a.published for a in plan.ecosystem.artifacts}
    if target == "top-b":
        assert published == {"top-b": "2020-01-01T00:00:00Z", "dep-a": "2020-01-01T00:00:00Z"}
    cfg = parse_policy_config(with_release_age(policy_with_registry(world.url)))
    cfg = replace(cfg, review=ReviewSettings(public_keys=(), allow_skip=True, required=False))
    result = evaluate(plan, None, cfg, datetime.now(UTC))
    fired = {f.rule_id: f.reason for f in result.fired}
    assert result.decision.value == decision, fired
    if why:
        assert re.search(why, fired["package.release-age"]), fired
    elif decision == "deny":
        assert "analysis.failed" in fired
    else:
        assert "package.release-age" not in fired
    # With the default policy (no minimum) the same plan passes this rule.
    assert "package.release-age" not in _decide(world, plan)[1]
