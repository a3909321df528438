"""Go planning with the real go tool against a ``file://`` GOPROXY: signals, rules, refusals."""

from __future__ import annotations

import subprocess
import sys
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

from .go_fixtures import GoProxy, build_proxy, needs_go, new_module, policy_with_proxy

pytestmark = needs_go
REPO = Path(__file__).resolve().parents[4]


@pytest.fixture(scope="module")
def proxy(tmp_path_factory: pytest.TempPathFactory) -> GoProxy:
    return build_proxy(tmp_path_factory.mktemp("goproxy") / "proxy")


def _plan(proxy: GoProxy, module: Path, *targets: str, url: str | None = None) -> Plan:
    intent = Intent(Tool.GO, Operation.INSTALL, targets, "tester", "2026-01-01T00:00:00Z",
                    location=f"gomod:{module}", registry=url or proxy.url)  # fmt: skip
    return for_tool(Tool.GO).plan(load_config({}), intent, datetime.now(UTC))


def _decide(proxy: GoProxy, plan: Plan, *, sumdb_decided: bool = True) -> tuple[str, set[str]]:
    cfg = parse_policy_config(policy_with_proxy(proxy.url, sumdb_decided=sumdb_decided))
    cfg = replace(cfg, review=ReviewSettings(public_keys=(), allow_skip=True, required=False))
    result = evaluate(plan, None, cfg, datetime.now(UTC))
    return result.decision.value, {f.rule_id for f in result.fired}


PSEUDO = "example.com/pseudo@v0.0.0-20240101000000-0123456789ab"


@pytest.mark.parametrize(
    ("extra", "target", "decision", "rules", "signal"),
    [
        ("", "example.com/hello@v1.0.0", "allow", {"go.install"}, None),
        ("", "example.com/hello@latest", "allow", {"go.install"}, "go.mutable-query"),
        ("", "example.com/oops@v1.0.1", "require-approval", {"go.retracted"}, "go.retracted"),
        ("", PSEUDO, "require-approval", {"go.pseudo-version"}, "go.pseudo-version"),
        ("require example.com/greet v1.1.0\n", "example.com/greet@v1.0.0", "require-approval",
         {"go.downgrade"}, None),
        ("replace example.com/greet => example.com/greet v1.0.0\n", "example.com/hello@v1.0.0",
         "require-approval", {"go.replace"}, "go.replace"),
        ("replace example.com/greet => ../greet\n", "example.com/oops@v1.0.2", "deny",
         {"go.replace-path"}, "go.replace-path"),
        ("", "example.com/nope@v1.0.0", "deny", {"analysis.failed"}, None),
        ("", "example.com/hello@v9.9.9", "deny", {"analysis.failed"}, None),
    ],
)  # fmt: skip
def test_targets_signals_and_decisions(
    proxy: GoProxy, tmp_path: Path, extra: str, target: str, decision: str, rules: set[str],
    signal: str | None,
) -> None:  # fmt: skip
    plan = _plan(proxy, new_module(tmp_path / "m", extra), target)
    got, fired = _decide(proxy, plan)
    assert got == decision, (fired, plan.failure)
    assert rules <= fired
    if signal is not None:
        assert signal in {s.name for s in plan.signals}


def test_a_plan_resolves_latest_to_exact_sums_and_touches_nothing(
    proxy: GoProxy, tmp_path: Path
) -> None:
    module = new_module(tmp_path / "m")
    before = (module / "go.mod").read_text()
    plan = _plan(proxy, module, "example.com/hello@latest")
    assert (module / "go.mod").read_text() == before
    assert not (module / "go.sum").exists()
    assert [(c.name, c.candidate_version) for c in plan.changes] == [
        ("example.com/greet", "v1.1.0"),
        ("example.com/hello", "v1.1.0"),
    ]
    assert plan.ecosystem is not None
    files = {f.name: f.after for f in plan.ecosystem.files}
    for a in plan.ecosystem.artifacts:  # the zip sum go computed is the one go.sum pins
        assert a.integrity.startswith("h1:")
        assert f"{a.name} {a.version} {a.integrity}" in files["go.sum"]
    argv = plan.command_preview
    # Exact, never @latest: every module the change pins, checked against the signed go.sum.
    assert argv[-5:] == ("mod", "download", "--", "example.com/greet@v1.1.0",
                         "example.com/hello@v1.1.0")  # fmt: skip
    assert "GOFLAGS=-mod=readonly" in argv
    assert "GOSUMDB=off" in argv


def test_the_checksum_database_off_is_a_policy_decision(proxy: GoProxy, tmp_path: Path) -> None:
    plan = _plan(proxy, new_module(tmp_path / "m"), "example.com/greet@v1.0.0")
    decision, fired = _decide(proxy, plan, sumdb_decided=False)
    assert decision == "require-approval"
    assert "go.sumdb-off" in fired


def test_an_unapproved_proxy_is_denied(proxy: GoProxy, tmp_path: Path) -> None:
    other = GoProxy(tmp_path / "other")
    other.add("example.com/greet", "v1.0.0", {"greet.go": "package greet\n"})
    plan = _plan(proxy, new_module(tmp_path / "m"), "example.com/greet@v1.0.0", url=other.url)
    decision, fired = _decide(proxy, plan)
    assert decision == "deny"
    assert "registry.unapproved" in fired


def test_unresolved_versions_are_denied_and_never_derive_an_argv(
    proxy: GoProxy, tmp_path: Path
) -> None:
    plan = _plan(proxy, new_module(tmp_path / "m"), "example.com/greet@v1.0.0")
    c = plan.changes[0]
    forged = replace(plan, changes=(replace(c, candidate_version="latest"),))
    assert for_tool(Tool.GO).derive_argv(forged, load_config({})) == ()
    decision, fired = _decide(proxy, forged)
    assert decision == "deny"
    assert "go.unresolved" in fired


@pytest.mark.parametrize(
    "target",
    [
        "-modfile=/tmp/evil.mod",
        "--insecure",
        "-x",
        "https://evil.example/mod",
        "git+ssh://evil/x",
        "file:///tmp/x",
        "../x",
        "./x",
        "/tmp/x",
        "example.com/../../etc",
        "example.com/./x",
        "example.com//x",
        "ex\u0430mple.com/x",  # Cyrillic a
        "example.com/x\u200b",  # zero-width space
        "EXAMPLE.COM/x",
        "localhost/x",  # no dot: not a module path
        "example.com/x@none",
        "example.com/x@<v1.2.0",
        "example.com/x@v1.0.0 -modfile=x",
        "example.com/x;rm -rf /",
        "example.com/x@",
        "",
    ],
)
def test_hostile_targets_are_refused_before_anything_runs(target: str) -> None:
    with pytest.raises(InputError):
        for_tool(Tool.GO).check_targets([target])


def test_the_shared_entry_point_holds_go_install_to_one_versioned_package(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The MCP plan tool and the CLI both plan through plan_change: go install without a
    # version, or with two packages, is refused there before go runs or a request exists.
    from aegis.api_agent import plan_change

    monkeypatch.setenv("AEGIS_HOME", str(tmp_path))
    cfg = load_config()
    for targets in (("example.com/hello",), ("example.com/a@v1.0.0", "example.com/b@v1.0.0")):
        with pytest.raises(InputError, match="go install"):
            plan_change(cfg, "go", "install", targets, registry="file:///nonexistent")
    assert not cfg.plans_dir.exists() or not any(cfg.plans_dir.iterdir())


def _aegis(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {"AEGIS_HOME": str(home), "AEGIS_HOST_ID": "test-host", "PATH": "/usr/bin:/bin",
           "GOFLAGS": "-insecure"}  # fmt: skip
    return subprocess.run([sys.executable, "-m", "aegis", *args], env=env, capture_output=True,
                          text=True, cwd=REPO, timeout=120, check=False)  # fmt: skip


def test_cli_plans_and_refuses(proxy: GoProxy, tmp_path: Path) -> None:
    module = new_module(tmp_path / "m")
    ok = _aegis(tmp_path, "go", "get", "example.com/hello@v1.0.0", "--module", str(module),
                "--proxy", proxy.url, "--plan")  # fmt: skip
    assert ok.returncode == 0, ok.stderr
    assert "example.com/hello" in ok.stdout
    assert "ignored (the plan pins its own): GOFLAGS=-insecure" in ok.stdout
    assert not (module / "go.sum").exists()
    inst = _aegis(tmp_path, "go", "install", "example.com/hello@latest", "--proxy", proxy.url,
                  "--plan", "--json")  # fmt: skip
    assert inst.returncode == 0, inst.stderr
    assert '"candidate_version": "v1.1.0"' in inst.stdout
    assert not (tmp_path / "var/lib/aegis/go/bin/hello").exists()
    linked = tmp_path / "linked"
    linked.mkdir()
    (linked / "go.mod").symlink_to(module / "go.mod")  # a go.mod that is a link elsewhere
    refusals = [
        ("go", "get", "example.com/hello", "--module", str(linked), "--plan"),
        ("go", "get", "example.com/hello", "--module", str(module), "--proxy",
         "file://../proxy", "--plan"),
        ("go", "get", "example.com/hello@v1.0.0", "--module", str(module), "--proxy", proxy.url),
        ("go", "get", "-modfile=/tmp/x.mod", "example.com/hello", "--module", str(module),
         "--plan"),
        ("go", "get", "example.com/hello", "--module", str(module), "--proxy",
         "https://proxy.golang.org,direct", "--plan"),
        ("go", "get", "example.com/hello", "--module", str(tmp_path), "--plan"),
        ("go", "get", "example.com/hello", "--plan"),
        ("go", "install", "example.com/hello", "--plan"),
        ("go", "mod", "tidy"),
        ("go", "run", "example.com/hello@v1.0.0"),
    ]  # fmt: skip
    for args in refusals:
        got = _aegis(tmp_path, *args)
        assert got.returncode == 3, (args, got.stdout, got.stderr)
        assert "Traceback" not in got.stderr


def test_hostile_module_files_are_refused(proxy: GoProxy, tmp_path: Path) -> None:
    module = new_module(tmp_path / "m")
    (module / "go.sum").symlink_to("/etc/shadow")  # read as root by aegisd: never followed
    with pytest.raises(InputError, match="cannot read the module files"):
        _plan(proxy, module, "example.com/greet@v1.0.0")
    (module / "go.sum").unlink()
    (module / "go.sum").write_bytes(b"\xff\xfe not text")
    with pytest.raises(InputError):
        _plan(proxy, module, "example.com/greet@v1.0.0")
