"""npm through aegisd: a real project, real npm, a registry on loopback; re-derived, exact."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from aegis.config import load_config
from aegis.ecosystems import for_tool
from aegis.model import Intent, Operation, Plan, Tool
from tests.conftest import require_root

from .conftest import Keys, base_env, sign_plan

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.integration.ecosystems.npm.npm_fixtures import (
    NpmWorld,
    needs_npm,
    new_project,
    policy_with_registry,
    serve,
)

pytestmark = needs_npm


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NpmWorld]:
    yield from serve(tmp_path_factory.mktemp("npmapply") / "registry")


def _home(tmp_path: Path, world: NpmWorld) -> Path:
    home = tmp_path / "home"
    (home / "etc/aegis").mkdir(parents=True, exist_ok=True)
    (home / "etc/aegis/policy.toml").write_text(policy_with_registry(world.url))
    return home


def _plan(world: NpmWorld, home: Path, project: Path, *targets: str, location: str = "") -> Plan:
    intent = Intent(Tool.NPM, Operation.INSTALL, targets, "tester", "2026-01-01T00:00:00Z",
                    location=location or f"project:{project}", registry=world.url)  # fmt: skip
    return for_tool(Tool.NPM).plan(load_config(base_env(home)), intent, datetime.now(UTC))


def _sign(home: Path, plan: Plan, key_set: Keys) -> bytes:
    cfg = load_config(base_env(home))
    return _sign_with_argv(home, plan, key_set, for_tool(Tool.NPM).derive_argv(plan, cfg))


def _sign_with_argv(home: Path, plan: Plan, key_set: Keys, argv: tuple[str, ...]) -> bytes:
    from aegis.execute.apply import binding_from_result
    from aegis.model import plan_hash
    from aegis.policy.engine import evaluate
    from aegis.policy.result import result_hash
    from aegis.policy.run import load_policy
    from aegis.sign.approvals import build_approval

    cfg = load_config(base_env(home))
    now = datetime.now(UTC)
    result = evaluate(plan, None, load_policy(cfg), now)
    assert result.decision.value != "deny", [f.rule_id for f in result.fired]
    approval = build_approval(plan_id=plan.plan_id, plan_hash=plan_hash(plan),
                              policy_hash=result_hash(result), approver_id="bob",
                              role="approver", reason="test", now=now,
                              expires_in=timedelta(hours=1), key=key_set.approver)  # fmt: skip
    return sign_plan(cfg, plan, key_set.signer,
                     argv=argv, policy=binding_from_result(result),
                     approvals=(approval,) if result.controls.approval.count else ())  # fmt: skip


def test_apply_writes_the_signed_lockfile_and_installs_exactly_it(
    world: NpmWorld, tmp_path: Path, key_set: Keys, make_daemon: Any
) -> None:
    home = _home(tmp_path, world)
    project = new_project(tmp_path / "app")
    plan = _plan(world, home, project, "top-b", "gyp-thing")
    d = make_daemon(home=home)
    answer = d.submit(_sign(home, plan, key_set))
    assert answer.ok, (answer.message, answer.result)
    assert answer.result is not None
    assert answer.result["drift"] == []
    deps = json.loads((project / "package.json").read_text())["dependencies"]
    assert deps == {"gyp-thing": "^1.0.0", "top-b": "^2.0.0"}
    for name in ("top-b", "dep-a", "gyp-thing"):
        assert (project / "node_modules" / name / "package.json").is_file()
    assert (project / "node_modules/.bin/top-b").exists()
    # --ignore-scripts: the approved-with-scripts package's install hook never ran.
    assert not (project / "node_modules/gyp-thing/build").exists()
    kinds = [e["kind"] for e in d.audit_events()]
    assert "apply-finished" in kinds


def test_a_projects_npmrc_cannot_send_roots_npm_log_elsewhere(
    world: NpmWorld, tmp_path: Path, key_set: Keys, make_daemon: Any
) -> None:
    """npm runs as root and reads the project's .npmrc, its owner's file: a logs-dir there
    would have root create that directory and write npm's debug log into it."""
    home = _home(tmp_path, world)
    project = new_project(tmp_path / "app")
    planted = tmp_path / "planted" / "logs"
    (project / ".npmrc").write_text(f"logs-dir={planted}\n")
    plan = _plan(world, home, project, "top-b")
    d = make_daemon(home=home)
    answer = d.submit(_sign(home, plan, key_set))
    assert answer.ok, (answer.message, answer.result)
    assert (project / "node_modules/top-b/package.json").is_file()
    assert not (tmp_path / "planted").exists()
    logs = load_config(base_env(home)).aegisd_dir / "npm-cache/_logs"
    assert any(logs.glob("*-debug-*.log"))


def test_a_moved_resolution_is_refused_and_the_project_is_untouched(
    world: NpmWorld, tmp_path: Path, key_set: Keys, make_daemon: Any
) -> None:
    home = _home(tmp_path, world)
    project = new_project(tmp_path / "app")
    world.registry.add("moving-pkg", "1.0.0")
    plan = _plan(world, home, project, "moving-pkg")
    data = _sign(home, plan, key_set)
    world.registry.add("moving-pkg", "1.1.0")
    answer = make_daemon(home=home).submit(data)
    assert not answer.ok
    assert answer.refusal == "refused:rederivation"
    assert "moving-pkg" in answer.message
    assert not (project / "package-lock.json").exists()
    assert not (project / "node_modules").exists()
    # npm ci started beside the re-resolution (aegis/execute/npm_gate.py) was stopped at its
    # gate, its output removed.
    runs = load_config(base_env(home)).aegisd_dir / "runs"
    assert not runs.exists() or list(runs.iterdir()) == []


def test_a_signed_argv_aegisd_would_not_derive_never_starts_npm_before_the_checks(
    world: NpmWorld, tmp_path: Path, key_set: Keys, make_daemon: Any
) -> None:
    """npm starts beside the re-resolution only with aegisd's own argv (npm_gate.py).

    A signed argv naming another cache is refused at the argv check; npm never started
    early with it (its start-up would have made that cache directory, as root).
    """
    home = _home(tmp_path, world)
    project = new_project(tmp_path / "app")
    plan = _plan(world, home, project, "top-b")
    elsewhere = tmp_path / "planted-cache"
    cfg = load_config(base_env(home))
    argv = list(for_tool(Tool.NPM).derive_argv(plan, cfg))
    argv[argv.index("--cache") + 1] = str(elsewhere)
    data = _sign_with_argv(home, plan, key_set, tuple(argv))
    answer = make_daemon(home=home).submit(data)
    assert not answer.ok
    assert answer.refusal == "refused:argv"
    assert not elsewhere.exists()
    assert not (project / "node_modules").exists()


def test_rollback_restores_the_previous_project_files_through_the_chain(
    world: NpmWorld, tmp_path: Path, key_set: Keys, make_daemon: Any
) -> None:
    from aegis.ecosystems.npm.rollback import rollback_intent

    home = _home(tmp_path, world)
    project = new_project(tmp_path / "app")
    d = make_daemon(home=home)
    cfg = load_config(base_env(home))
    first = _plan(world, home, project, "dep-a")
    assert d.submit(_sign(home, first, key_set)).ok
    lock_after_first = (project / "package-lock.json").read_text()
    second = _plan(world, home, project, "top-b")
    assert d.submit(_sign(home, second, key_set)).ok
    assert (project / "node_modules/top-b").is_dir()

    intent = rollback_intent(second, "r-0000000000000003", "tester", "2026-01-01T00:00:00Z")
    back = for_tool(Tool.NPM).plan(cfg, intent, datetime.now(UTC))
    assert [(c.name, c.action.value) for c in back.changes] == [("top-b", "remove")]
    answer = d.submit(_sign(home, back, key_set))
    assert answer.ok, (answer.result or {}).get("stderr_tail")
    assert not (project / "node_modules/top-b").exists()
    assert (project / "node_modules/dep-a").is_dir()
    assert json.loads((project / "package-lock.json").read_text()) == json.loads(lock_after_first)


def test_an_npm_apply_runs_while_an_unrelated_apt_holds_dpkgs_locks(
    world: NpmWorld, tmp_path: Path, key_set: Keys, make_daemon: Any
) -> None:
    """dpkg's locks guard dpkg's state only: an npm run neither takes them nor waits on them."""
    from .test_dpkg_lock import _Holder

    home = _home(tmp_path, world)
    admin = tmp_path / "root/var/lib/dpkg"
    admin.mkdir(parents=True)
    (home / "etc/aegis/aegis.toml").write_text(f'dpkg_root = "{tmp_path / "root"}"\n')
    project = new_project(tmp_path / "app")
    plan = _plan(world, home, project, "top-b")
    holders = [_Holder(admin / "lock-frontend"), _Holder(admin / "lock")]
    try:
        answer = make_daemon(home=home).submit(_sign(home, plan, key_set))
    finally:
        for holder in holders:
            holder.release()
    assert answer.ok, (answer.refusal, answer.message)
    assert (project / "node_modules/top-b/package.json").is_file()


def test_global_installs_into_the_managed_prefix_links_bin_and_rolls_back(
    world: NpmWorld, tmp_path: Path, key_set: Keys, make_daemon: Any
) -> None:
    from aegis.ecosystems.npm import global_prefix
    from aegis.ecosystems.npm.rollback import rollback_intent

    home = _home(tmp_path, world)
    cfg = load_config(base_env(home))
    prefix = Path(global_prefix(cfg))
    plan = _plan(world, home, prefix, "top-b", location=f"global:{prefix}")
    assert not prefix.exists()  # planning is read-only: the apply creates the prefix
    assert plan.command_preview[-2:] == ("--prefix", str(prefix))
    d = make_daemon(home=home)
    answer = d.submit(_sign(home, plan, key_set))
    assert answer.ok, (answer.message, answer.result)
    assert answer.result is not None
    assert answer.result["drift"] == []
    for p in (prefix, prefix.parent):
        assert p.stat().st_mode & 0o777 == 0o755
        assert p.stat().st_uid == os.geteuid()
    assert os.readlink(prefix / "bin") == "node_modules/.bin"
    assert (prefix / "bin/top-b").exists()  # the documented PATH directory
    assert json.loads((prefix / "package.json").read_text())["dependencies"] == {"top-b": "^2.0.0"}
    assert _npm_findings(d) == []  # its own apply is never an out-of-band change

    # npm run straight into the managed prefix is found on the next pass, once.
    subprocess.run(
        ["npm", "install", "--prefix", str(prefix), "--registry", world.url, "--ignore-scripts",
         "--no-audit", "--no-fund", "--userconfig", os.devnull, "lodahs@1.0.0"],
        check=True, capture_output=True, timeout=120,
        env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path),
             "npm_config_cache": str(tmp_path / "c")},
    )  # fmt: skip
    (found,) = _npm_findings(d)
    assert (found["package"], found["action"], found["from"], found["to"]) == (
        "lodahs", "install", None, "1.0.0"
    )  # fmt: skip
    assert (found["tool"], found["place"]) == ("npm", str(prefix))
    assert _npm_findings(d) == [found]  # not again on the next pass

    # The prefix's first change rolls back to the empty prefix.
    intent = rollback_intent(plan, "r-0000000000000002", "tester", "2026-01-01T00:00:00Z")
    back = for_tool(Tool.NPM).plan(cfg, intent, datetime.now(UTC))
    # It restores the prefix: what came behind its back goes too.
    assert sorted((c.name, c.action.value) for c in back.changes) == [
        ("dep-a", "remove"), ("lodahs", "remove"), ("top-b", "remove")
    ]  # fmt: skip
    answer = d.submit(_sign(home, back, key_set))
    assert answer.ok, (answer.result or {}).get("stderr_tail")
    assert not (prefix / "node_modules/top-b").exists()
    assert "dependencies" not in json.loads((prefix / "package.json").read_text())
    assert _npm_findings(d) == [found]  # the rollback was aegisd's own


def _npm_findings(d: Any) -> list[dict[str, Any]]:
    """Have aegisd record out-of-band changes now; every npm finding in its audit log."""
    from aegis.execute.protocol import Request, call
    from aegis.oob.serve import beside

    answer = call(str(beside(d.socket)), Request(op="record-out-of-band"), timeout_s=60)
    assert answer.ok, answer.message
    events = [e for e in d.audit_events() if e["kind"] == "out-of-band-change"]
    return [e["details"] for e in events if e["details"]["tool"] == "npm"]


@pytest.mark.parametrize("how", ["agent-owns-managed", "prefix-is-a-link", "elsewhere"])
def test_a_managed_prefix_an_agent_could_swap_is_refused(
    world: NpmWorld, tmp_path: Path, key_set: Keys, make_daemon: Any, how: str
) -> None:
    """Group aegis may write /var/lib/aegis: a prefix it made or redirected is never used."""
    from aegis.ecosystems.npm import global_prefix

    require_root("creates directories owned by another user")
    home = _home(tmp_path, world)
    prefix = Path(global_prefix(load_config(base_env(home))))
    location = f"global:{prefix}"
    if how == "agent-owns-managed":
        prefix.mkdir(parents=True, mode=0o755)
        os.chown(prefix.parent, 65534, 65534)
    elif how == "prefix-is-a-link":
        (tmp_path / "agent-dir").mkdir()
        prefix.parent.mkdir(parents=True, mode=0o755)
        prefix.symlink_to(tmp_path / "agent-dir")
    else:  # a hand-made plan naming another directory as the prefix
        location = f"global:{tmp_path / 'agent-dir'}"
        (tmp_path / "agent-dir").mkdir()
    plan = _plan(world, home, prefix, "dep-a", location=location)
    if how == "elsewhere":
        assert plan.command_preview == ()  # no argv: nothing may run
        return
    answer = make_daemon(home=home).submit(_sign(home, plan, key_set))
    assert not answer.ok
    assert answer.refusal == "refused:environment", answer.message
    assert not (tmp_path / "agent-dir/node_modules").exists()
    assert not (prefix / "node_modules").exists()


def test_a_version_too_new_for_policy_applies_once_approved(
    world: NpmWorld, tmp_path: Path, key_set: Keys, make_daemon: Any
) -> None:
    """min_release_age: the registry's publish time is evidence aegisd re-derives too."""
    from tests.integration.ecosystems.npm.npm_fixtures import with_release_age

    home = _home(tmp_path, world)
    (home / "etc/aegis/policy.toml").write_text(with_release_age(policy_with_registry(world.url)))
    project = new_project(tmp_path / "app")
    plan = _plan(world, home, project, "fresh-pkg")
    assert plan.ecosystem is not None
    assert plan.ecosystem.artifacts[0].published.endswith("Z")
    answer = make_daemon(home=home).submit(_sign(home, plan, key_set))  # approved by bob
    assert answer.ok, (answer.message, answer.result)
    assert (project / "node_modules/fresh-pkg/package.json").is_file()
