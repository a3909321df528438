"""pip planning against a real index on loopback with real pip: signals, rules, refusals."""

from __future__ import annotations

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

from .pip_fixtures import PipWorld, make_venv, policy_with_index, serve

REPO = Path(__file__).resolve().parents[4]


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PipWorld]:
    base = tmp_path_factory.mktemp("pip")
    yield from serve(base / "index", make_venv(base / "venv"))


def _plan(world: PipWorld, *targets: str, index: str | None = None) -> Plan:
    intent = Intent(
        Tool.PIP,
        Operation.INSTALL,
        targets,
        "tester",
        "2026-01-01T00:00:00Z",
        location=f"venv:{world.venv}",
        registry=index or world.url,
    )
    return for_tool(Tool.PIP).plan(load_config({}), intent, datetime.now(UTC))


def _decide(world: PipWorld, plan: Plan) -> tuple[str, set[str]]:
    # No reviewer in these tests: the rules alone decide (the review gate only tightens).
    cfg = parse_policy_config(policy_with_index(world.url))
    cfg = replace(cfg, review=ReviewSettings(public_keys=(), allow_skip=True, required=False))
    result = evaluate(plan, None, cfg, datetime.now(UTC))
    return result.decision.value, {f.rule_id for f in result.fired}


@pytest.mark.parametrize(
    ("target", "decision", "rules"),
    [
        ("demo-app", "allow", {"pip.install"}),
        ("friendly-tool", "require-approval", {"pip.pth"}),
        ("shadow-pkg", "require-approval", {"pip.command-shadows"}),
        ("fast-lib", "require-approval", {"pip.native"}),
        ("gone-lib==1.0", "require-approval", {"pip.yanked"}),
        # No published hash: pinned to the bytes pip and the planner both saw.
        ("nohash-lib", "allow", {"pip.install"}),
        # Bytes not matching the index's hash: pip itself refuses, so analysis fails.
        ("tampered-lib", "deny", {"analysis.failed"}),
        ("reqeusts", "require-approval", {"name.lookalike"}),
        # Planning never runs a build backend: an sdist-only project fails analysis.
        ("source-only", "deny", {"analysis.failed"}),
        ("no-such-package", "deny", {"analysis.failed"}),
    ],
)
def test_targets_signals_and_decisions(
    world: PipWorld, target: str, decision: str, rules: set[str]
) -> None:
    plan = _plan(world, target)
    got, fired = _decide(world, plan)
    assert got == decision, fired
    assert rules <= fired


def test_a_plan_names_every_artifact_by_url_and_hash(world: PipWorld) -> None:
    plan = _plan(world, "demo-app")
    assert [(c.name, c.candidate_version) for c in plan.changes] == [
        ("demo-app", "2.0"),
        ("demo-lib", "1.0"),
    ]
    assert plan.ecosystem is not None
    assert plan.ecosystem.registry == world.url
    assert all(len(a.sha256) == 64 and a.kind == "wheel" for a in plan.ecosystem.artifacts)
    argv = plan.command_preview
    for option in ("--require-hashes", "--no-deps", "--no-index"):
        assert option in argv
    assert argv[0] == f"{world.venv}/bin/python"
    assert all("#sha256=" in a for a in argv[argv.index("--") + 1 :])


def test_an_unapproved_index_is_denied(world: PipWorld) -> None:
    other = world.url.replace("127.0.0.1", "localhost")
    plan = _plan(world, "demo-lib", index=other)
    decision, fired = _decide(world, plan)
    assert decision == "deny"
    assert "registry.unapproved" in fired


def test_two_analyses_of_the_same_state_are_equal(world: PipWorld) -> None:
    from aegis.model import reproducible_view

    assert reproducible_view(_plan(world, "demo-app")) == reproducible_view(
        _plan(world, "demo-app")
    )


@pytest.mark.parametrize(
    "target",
    [
        "--index-url=http://evil/simple",
        "-rrequirements.txt",
        "demo-lib @ https://evil.example/x.whl",
        "git+https://github.com/x/y",
        "./local-dir",
        "/tmp/x.whl",
        "demo-lib; python_version<'3'",
        "dem\u043e-lib",  # Cyrillic o
        "demo-lib==1.0 --extra-index-url http://evil",
        "demo-lib$(id)",
        "",
    ],
)
def test_hostile_targets_are_refused_before_anything_runs(target: str) -> None:
    with pytest.raises(InputError):
        for_tool(Tool.PIP).check_targets([target])


def test_normalised_duplicates_are_refused() -> None:
    with pytest.raises(InputError, match="twice"):
        for_tool(Tool.PIP).check_targets(["Demo_Lib", "demo.lib"])


@pytest.mark.parametrize(
    "url", ["ftp://x/simple", "https://user:pw@x/simple", "https://x/simple?a=1", "https://x/ s"]
)
def test_bad_index_urls_are_refused(url: str) -> None:
    from aegis.ecosystems.pip.names import check_index_url

    with pytest.raises(InputError):
        check_index_url(url)


def _aegis(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {"AEGIS_HOME": str(home), "AEGIS_HOST_ID": "test-host", "PATH": "/usr/bin:/bin"}
    return subprocess.run(
        [sys.executable, "-m", "aegis", *args],
        env=env,
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=120,
        check=False,
    )


def test_cli_plans_and_refuses(world: PipWorld, tmp_path: Path) -> None:
    ok = _aegis(tmp_path, "pip", "install", "demo-lib", "--venv", str(world.venv),
                "--index-url", world.url, "--plan")  # fmt: skip
    assert ok.returncode == 0, ok.stderr
    assert "+ demo-lib 1.0\n" in ok.stdout
    no_plan = _aegis(tmp_path, "pip", "install", "demo-lib", "--venv", str(world.venv))
    assert no_plan.returncode == 3
    assert "without --plan" in no_plan.stderr
    system = _aegis(tmp_path, "pip", "install", "demo-lib", "--venv", "/usr", "--plan")
    assert system.returncode == 3
    assert "system interpreter" in system.stderr
    injected = _aegis(tmp_path, "pip", "install", "--extra-index-url=http://x", "--venv",
                      str(world.venv), "--plan")  # fmt: skip
    assert injected.returncode in (2, 3)
    other = _aegis(tmp_path, "pip", "uninstall", "demo-lib")
    assert other.returncode == 3
    assert "plans only pip install" in other.stderr
    target = tmp_path / "lib"
    target.mkdir()
    into = _aegis(tmp_path, "pip", "install", "demo-app", "--target", str(target),
                  "--index-url", world.url, "--plan")  # fmt: skip
    assert into.returncode == 0, into.stderr
    assert f"into target:{target}" in into.stdout
    assert list(target.iterdir()) == []  # planning installs nothing
    both = _aegis(tmp_path, "pip", "install", "demo-lib", "--venv", str(world.venv),
                  "--target", str(target), "--plan")  # fmt: skip
    assert both.returncode == 3
    assert "two places" in both.stderr
    site = _aegis(tmp_path, "pip", "install", "demo-lib", "--target",
                  "/usr/lib/python3/dist-packages", "--plan")  # fmt: skip
    assert site.returncode == 3
    assert "system interpreter" in site.stderr


def test_a_target_plan_is_for_the_system_interpreter(world: PipWorld, tmp_path: Path) -> None:
    target = tmp_path / "lib"
    target.mkdir()
    intent = Intent(Tool.PIP, Operation.INSTALL, ("friendly-tool",), "tester",
                    "2026-01-01T00:00:00Z", location=f"target:{target}",
                    registry=world.url)  # fmt: skip
    plan = for_tool(Tool.PIP).plan(load_config({}), intent, datetime.now(UTC))
    assert [c.name for c in plan.changes] == ["evil-helper", "friendly-tool"]
    decision, fired = _decide(world, plan)  # the same rules as a venv: a .pth needs approval
    assert decision == "require-approval"
    assert "pip.pth" in fired
    assert plan.command_preview[:3] == ("/usr/bin/python3", "-m", "pip")


def _where(tmp_path: Path, how: str) -> str:
    if how == "venv":
        (tmp_path / "v").mkdir()
        (tmp_path / "v/pyvenv.cfg").write_text("home = /usr/bin\n")
        return f"target:{tmp_path / 'v'}"
    if how == "link-to-usr":
        (tmp_path / "l").symlink_to("/usr/lib/python3/dist-packages")
        return f"target:{tmp_path / 'l'}"
    if how == "missing":
        return f"target:{tmp_path / 'nope'}"
    return how


@pytest.mark.parametrize(
    "how",
    [
        "target:/usr/lib/python3/dist-packages",
        "target:/usr/local/lib/python3.11/dist-packages",
        "target:/",
        "target:/etc",
        "target:/var/lib/aegis/x",
        "target:/usr/../usr/lib",
        "target:relative/dir",
        "target:/tmp/\u0430",
        "venv",
        "link-to-usr",
        "missing",
    ],
)
def test_bad_targets_are_refused_before_anything_runs(tmp_path: Path, how: str) -> None:
    with pytest.raises(InputError):
        for_tool(Tool.PIP).place(load_config({}), ["demo-lib"], _where(tmp_path, how), None)


@pytest.mark.parametrize(
    ("target", "decision", "why"),
    [
        ("aged-lib", "allow", ""),  # the JSON page's upload-time: 2020
        # minutes pass under load between publishing and planning
        ("fresh-lib", "require-approval", r"published 1h( \d+m)? ago, minimum 3d"),
        ("demo-lib", "require-approval", "no publish time: age unknown"),  # an HTML-only page
    ],
)
def test_min_release_age_holds_recent_uploads(
    world: PipWorld, target: str, decision: str, why: str
) -> None:
    from tests.integration.ecosystems.npm.npm_fixtures import with_release_age

    plan = _plan(world, target)
    assert plan.ecosystem is not None
    (art,) = plan.ecosystem.artifacts
    assert bool(art.published) == (target != "demo-lib")
    cfg = parse_policy_config(with_release_age(policy_with_index(world.url)))
    cfg = replace(cfg, review=ReviewSettings(public_keys=(), allow_skip=True, required=False))
    result = evaluate(plan, None, cfg, datetime.now(UTC))
    assert result.decision.value == decision
    fired = {f.rule_id: f.reason for f in result.fired}
    if why:
        assert re.search(why, fired["package.release-age"]), fired
    else:
        assert "package.release-age" not in fired


@pytest.mark.parametrize(
    "name",
    [
        "..",
        ".",
        "../etc",
        "a/b",
        "/abs",
        "-rf",
        "--python=/tmp/x",
        "tools.old",  # no dots at all: never '..', never a hidden directory
        "t\u043eols",  # Cyrillic o
        "\uff54ools",  # fullwidth t
        "tools\x00",
        "tools\n",
        "a b",
        "~root",
        "$(id)",
        "",
        "a" * 65,
    ],
)
def test_hostile_managed_venv_names_are_refused_before_anything_runs(name: str) -> None:
    with pytest.raises(InputError, match="managed venv name"):
        for_tool(Tool.PIP).place(load_config({}), ["demo-lib"], f"managed:{name}", None)


def test_managed_venv_names_and_places(tmp_path: Path) -> None:
    from aegis.ecosystems.pip import managed_root

    cfg = load_config({"AEGIS_HOME": str(tmp_path)})
    root = managed_root(cfg)
    for name in ("tools", "App_2", "a" * 64, "0"):
        got, _ = for_tool(Tool.PIP).place(cfg, ["demo-lib"], f"managed:{name}", None)
        assert got == f"managed:{root}/{name}"
    # A managed venv is never planned as a plain venv (its checks and creation are aegisd's).
    venv = make_venv(root / "made")
    with pytest.raises(InputError, match="managed venv"):
        for_tool(Tool.PIP).place(cfg, ["demo-lib"], str(venv), None)


def test_cli_plans_into_a_managed_venv_without_creating_it(world: PipWorld, tmp_path: Path) -> None:
    import json

    ok = _aegis(tmp_path, "pip", "install", "demo-lib", "--managed", "tools",
                "--index-url", world.url, "--plan", "--json")  # fmt: skip
    assert ok.returncode == 0, ok.stderr
    plan = json.loads(ok.stdout)["plan"]
    assert plan["intent"]["location"].endswith("/managed/python/tools")
    venv = plan["intent"]["location"].removeprefix("managed:")
    assert "pip.creates-venv" in [s["name"] for s in plan["signals"]]
    assert plan["ecosystem"]["owner"] == "0:0"
    assert not Path(venv).parent.exists()
    bad = _aegis(tmp_path, "pip", "install", "demo-lib", "--managed", "../x", "--plan")
    assert bad.returncode == 3
    assert "managed venv name" in bad.stderr
    both = _aegis(tmp_path, "pip", "install", "demo-lib", "--managed", "tools", "--venv",
                  str(world.venv), "--plan")  # fmt: skip
    assert both.returncode == 3
