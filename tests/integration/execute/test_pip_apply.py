"""pip through aegisd: a real venv, a real index on loopback, re-derived, applied, audited."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from aegis.config import load_config
from aegis.ecosystems import for_tool
from aegis.model import Action, Intent, Operation, Plan, Tool

from .conftest import Keys, base_env, sign_plan

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.integration.ecosystems.pip.pip_fixtures import (
    PipWorld,
    make_venv,
    policy_with_index,
    serve,
)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PipWorld]:
    base = tmp_path_factory.mktemp("pipapply")
    yield from serve(base / "index", make_venv(base / "venv"))


def _plan(world: PipWorld, home: Path, *targets: str) -> Plan:
    intent = Intent(
        Tool.PIP,
        Operation.INSTALL,
        targets,
        "tester",
        "2026-01-01T00:00:00Z",
        location=f"venv:{world.venv}",
        registry=world.url,
    )
    cfg = load_config(base_env(home))
    return for_tool(Tool.PIP).plan(cfg, intent, datetime.now(UTC))


def _sign(home: Path, plan: Plan, key_set: Keys, evil: str | None = None) -> bytes:
    """Evaluate aegisd's policy, approve as bob when it asks (no reviewer here), sign."""
    from datetime import timedelta

    from aegis.execute.apply import binding_from_result
    from aegis.model import plan_hash
    from aegis.policy.engine import evaluate
    from aegis.policy.result import result_hash
    from aegis.policy.run import load_policy
    from aegis.sign.approvals import build_approval

    cfg = load_config(base_env(home))
    argv = for_tool(Tool.PIP).derive_argv(plan, cfg)
    assert argv
    if evil is not None:  # a trusted signer slipping an option in
        cut = argv.index("--")
        argv = (*argv[:cut], evil, *argv[cut:])
    now = datetime.now(UTC)
    result = evaluate(plan, None, load_policy(cfg), now)
    assert result.decision.value != "deny", [f.rule_id for f in result.fired]
    approval = build_approval(
        plan_id=plan.plan_id,
        plan_hash=plan_hash(plan),
        policy_hash=result_hash(result),
        approver_id="bob",
        role="approver",
        reason="test change",
        now=now,
        expires_in=timedelta(hours=1),
        key=key_set.approver,
    )
    return sign_plan(
        cfg,
        plan,
        key_set.signer,
        argv=argv,
        policy=binding_from_result(result),
        approvals=(approval,) if result.controls.approval.count else (),
    )


def _home(tmp_path: Path, world: PipWorld) -> Path:
    home = tmp_path / "home"
    etc = home / "etc/aegis"
    etc.mkdir(parents=True, exist_ok=True)
    (etc / "policy.toml").write_text(policy_with_index(world.url))
    return home


def test_apply_rederives_installs_exactly_and_audits(
    world: PipWorld, tmp_path: Path, key_set: Keys, make_daemon: Any
) -> None:
    home = _home(tmp_path, world)
    plan = _plan(world, home, "demo-app")
    data = _sign(home, plan, key_set)
    d = make_daemon(home=home)
    answer = d.submit(data)
    assert answer.ok, answer.message
    assert answer.result is not None
    assert answer.result["drift"] == []
    site = next(world.venv.glob("lib/python3*/site-packages"))
    assert (site / "demo_app-2.0.dist-info").is_dir()
    assert (site / "demo_lib-1.0.dist-info").is_dir()
    kinds = [e["kind"] for e in d.audit_events()]
    assert "apply-started" in kinds
    assert "apply-finished" in kinds
    # aegisd watches the venv it changed: pip run there behind its back is found, once.
    assert _pip_findings(d) == []
    world.index.add_wheel("venv-behind-lib", "1.0")
    _pip_behind(world, tmp_path, (f"{world.venv}/bin/python", "-m", "pip"), "venv-behind-lib")
    (found,) = _pip_findings(d)
    assert (found["package"], found["to"], found["place"]) == (
        "venv-behind-lib", "1.0", str(world.venv)
    )  # fmt: skip
    assert _pip_findings(d) == [found]
    # The same execution plan again: replay refused.
    again = d.submit(data)
    assert not again.ok
    assert again.refusal == "refused:replayed"


def test_a_moved_resolution_is_refused_and_says_what_moved(
    world: PipWorld, tmp_path: Path, key_set: Keys, make_daemon: Any
) -> None:
    home = _home(tmp_path, world)
    world.index.add_wheel("moving-lib", "1.0")
    plan = _plan(world, home, "moving-lib")
    data = _sign(home, plan, key_set)
    world.index.add_wheel("moving-lib", "1.1")  # the index moved after signing
    d = make_daemon(home=home)
    answer = d.submit(data)
    assert not answer.ok
    assert answer.refusal == "refused:rederivation"
    assert "moving-lib" in answer.message
    site = next(world.venv.glob("lib/python3*/site-packages"))
    assert not list(site.glob("moving_lib-*"))


def test_the_same_version_with_other_bytes_is_refused_naming_the_integrity(
    world: PipWorld, tmp_path: Path, key_set: Keys, make_daemon: Any
) -> None:
    home = _home(tmp_path, world)
    world.index.add_wheel("swap-lib", "1.0")
    plan = _plan(world, home, "swap-lib")
    (target,) = plan.changes
    assert target.integrity.startswith("sha256:")
    data = _sign(home, plan, key_set)
    # The index serves other bytes under the same version after signing.
    world.index.links.pop("swap-lib")
    world.index.add_wheel("swap-lib", "1.0", pth={"swap_lib.pth": "import os\n"})
    answer = make_daemon(home=home).submit(data)
    assert not answer.ok
    assert answer.refusal == "refused:rederivation"
    assert f"swap-lib: 1.0 integrity {target.integrity} -> sha256:" in answer.message
    site = next(world.venv.glob("lib/python3*/site-packages"))
    assert not list(site.glob("swap_lib*"))


def test_a_version_1_plan_signed_by_the_trusted_signer_is_refused(
    world: PipWorld, tmp_path: Path, key_set: Keys, make_daemon: Any
) -> None:
    """Version 1 binds no target integrity: aegisd reads it for apt only."""
    from dataclasses import replace

    from aegis.model import plan_hash
    from aegis.sign.execution_plan import (
        EXECUTION_PLAN_SCHEMA_V1,
        derive_targets,
        execution_plan_body,
        execution_plan_bytes,
        parse_execution_plan,
    )
    from aegis.sign.keys import sign_canonical

    home = _home(tmp_path, world)
    world.index.add_wheel("schema-lib", "1.0")
    ep = parse_execution_plan(_sign(home, _plan(world, home, "schema-lib"), key_set))
    old = replace(ep.plan, changes=tuple(replace(c, integrity="") for c in ep.plan.changes))
    ep = replace(
        ep,
        schema_version=EXECUTION_PLAN_SCHEMA_V1,
        plan=old,
        plan_hash=plan_hash(old),
        targets=derive_targets(old),
    )
    ep = replace(ep, signature_hex=sign_canonical(execution_plan_body(ep), key_set.signer))
    d = make_daemon(home=home)
    answer = d.submit(execution_plan_bytes(ep))
    assert not answer.ok
    assert answer.refusal == "refused:malformed"
    assert "apt only" in answer.message
    site = next(world.venv.glob("lib/python3*/site-packages"))
    assert not list(site.glob("schema_lib*"))


def test_a_tampered_argv_is_refused(
    world: PipWorld, tmp_path: Path, key_set: Keys, make_daemon: Any
) -> None:
    home = _home(tmp_path, world)
    world.index.add_wheel("tamper-lib", "1.0")
    plan = _plan(world, home, "tamper-lib")
    data = _sign(home, plan, key_set, evil="--extra-index-url=http://evil.example/")
    answer = make_daemon(home=home).submit(data)
    assert not answer.ok
    assert answer.refusal == "refused:argv"


def test_rollback_removes_what_the_change_added_and_restores_replaced_versions(
    world: PipWorld, tmp_path: Path, key_set: Keys, make_daemon: Any
) -> None:
    from aegis.ecosystems.pip.rollback import rollback_intent

    home = _home(tmp_path, world)
    world.index.add_wheel("roll-dep", "1.0")
    world.index.add_wheel("roll-top", "1.0", requires=("roll-dep",))
    d = make_daemon(home=home)
    cfg = load_config(base_env(home))
    site = next(world.venv.glob("lib/python3*/site-packages"))

    first = _plan(world, home, "roll-top==1.0")
    assert d.submit(_sign(home, first, key_set)).ok
    intent = rollback_intent(first, "r-0000000000000001", "tester", "2026-01-01T00:00:00Z")
    assert intent.operation is Operation.REMOVE
    removal = for_tool(Tool.PIP).plan(cfg, intent, datetime.now(UTC))
    assert removal.command_preview[-3:] == ("--", "roll-dep", "roll-top")
    answer = d.submit(_sign(home, removal, key_set))
    assert answer.ok, answer.message
    assert answer.result is not None
    assert answer.result["drift"] == []
    assert not list(site.glob("roll_*"))

    # Replaced versions come back as an ordinary hash-pinned plan of the old pins.
    assert d.submit(_sign(home, _plan(world, home, "roll-dep==1.0"), key_set)).ok
    world.index.add_wheel("roll-dep", "1.1")
    upgrade = _plan(world, home, "roll-dep==1.1")
    assert d.submit(_sign(home, upgrade, key_set)).ok
    back = rollback_intent(upgrade, "r-0000000000000002", "tester", "2026-01-01T00:00:00Z")
    assert back.targets == ("roll-dep==1.0",)
    restore = for_tool(Tool.PIP).plan(cfg, back, datetime.now(UTC))
    assert [c.action for c in restore.changes] == [Action.DOWNGRADE]
    assert d.submit(_sign(home, restore, key_set)).ok
    assert (site / "roll_dep-1.0.dist-info").is_dir()


def test_a_users_venv_is_changed_as_that_user_never_as_root(
    tmp_path: Path, key_set: Keys, make_daemon: Any, world: PipWorld
) -> None:
    import os
    import shutil
    import tempfile

    home = _home(tmp_path, world)
    # Outside pytest's 0700 tmp tree: the owner must reach its own venv.
    base = Path(tempfile.mkdtemp(prefix="aegis-uservenv-", dir="/tmp"))
    base.chmod(0o755)
    venv = base / "venv"
    shutil.copytree(world.venv, venv, symlinks=True)
    nobody = 65534
    for root, dirs, files in os.walk(venv):
        for n in (*dirs, *files):
            os.lchown(os.path.join(root, n), nobody, nobody)
    os.lchown(venv, nobody, nobody)
    world.index.add_wheel("user-lib", "1.0")
    intent = Intent(Tool.PIP, Operation.INSTALL, ("user-lib",), "tester", "2026-01-01T00:00:00Z",
                    location=f"venv:{venv}", registry=world.url)  # fmt: skip
    cfg = load_config(base_env(home))
    plan = for_tool(Tool.PIP).plan(cfg, intent, datetime.now(UTC))
    assert plan.command_preview[:3] == (
        "/usr/bin/setpriv",
        f"--reuid={nobody}",
        f"--regid={nobody}",
    )
    answer = make_daemon(home=home).submit(_sign(home, plan, key_set))
    assert answer.ok, (answer.result or {}).get("stderr_tail")
    site = next(venv.glob("lib/python3*/site-packages"))
    assert (site / "user_lib-1.0.dist-info").stat().st_uid == nobody
    shutil.rmtree(base)


def _target_plan(world: PipWorld, home: Path, target: Path, *targets: str) -> Plan:
    intent = Intent(Tool.PIP, Operation.INSTALL, targets, "tester", "2026-01-01T00:00:00Z",
                    location=f"target:{target}", registry=world.url)  # fmt: skip
    return for_tool(Tool.PIP).plan(load_config(base_env(home)), intent, datetime.now(UTC))


def test_target_installs_with_the_system_pip_and_rolls_back_a_replacement(
    world: PipWorld, tmp_path: Path, key_set: Keys, make_daemon: Any
) -> None:
    from aegis.ecosystems.pip.rollback import rollback_intent
    from aegis.errors import StateError

    home = _home(tmp_path, world)
    target = tmp_path / "lib"
    target.mkdir()
    d = make_daemon(home=home)
    cfg = load_config(base_env(home))
    first = _target_plan(world, home, target, "demo-app")
    assert first.command_preview[:3] == ("/usr/bin/python3", "-m", "pip")
    assert ("--target", str(target), "--upgrade") == first.command_preview[7:10]
    answer = d.submit(_sign(home, first, key_set))
    assert answer.ok, (answer.result or {}).get("stderr_tail")
    assert answer.result is not None
    assert answer.result["drift"] == []
    assert (target / "demo_app-2.0.dist-info").is_dir()
    assert (target / "demo_lib-1.0.dist-info").is_dir()
    with pytest.raises(StateError, match="--target"):  # pip cannot uninstall from a target
        rollback_intent(first, "r-0000000000000001", "tester", "2026-01-01T00:00:00Z")

    world.index.add_wheel("tgt-lib", "1.0")
    assert d.submit(_sign(home, _target_plan(world, home, target, "tgt-lib"), key_set)).ok
    world.index.add_wheel("tgt-lib", "1.1")
    upgrade = _target_plan(world, home, target, "tgt-lib==1.1")
    assert [c.action for c in upgrade.changes] == [Action.UPGRADE]
    assert d.submit(_sign(home, upgrade, key_set)).ok
    back = rollback_intent(upgrade, "r-0000000000000002", "tester", "2026-01-01T00:00:00Z")
    restore = for_tool(Tool.PIP).plan(cfg, back, datetime.now(UTC))
    assert [c.action for c in restore.changes] == [Action.DOWNGRADE]
    answer = d.submit(_sign(home, restore, key_set))
    assert answer.ok, (answer.result or {}).get("stderr_tail")
    assert answer.result is not None
    assert answer.result["drift"] == []
    assert [p.name for p in target.glob("tgt_lib-*.dist-info")] == ["tgt_lib-1.0.dist-info"]


@pytest.mark.parametrize("how", ["group-writable-parent", "swapped-for-a-link"])
def test_a_root_target_someone_else_could_swap_is_refused(
    world: PipWorld, tmp_path: Path, key_set: Keys, make_daemon: Any, how: str
) -> None:
    """Root runs pip into a root-owned target: no one else may be able to redirect it."""
    home = _home(tmp_path, world)
    parent = tmp_path / "srv"
    target = parent / "lib"
    target.mkdir(parents=True)
    world.index.add_wheel("swap-lib", "1.0")
    plan = _target_plan(world, home, target, "swap-lib")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    if how == "group-writable-parent":
        parent.chmod(0o775)  # group aegis (say) may rename lib/ and put a link there
    else:
        target.rmdir()
        target.symlink_to(elsewhere)
    answer = make_daemon(home=home).submit(_sign(home, plan, key_set))
    assert not answer.ok
    assert answer.refusal == "refused:environment", answer.message
    assert not list(elsewhere.iterdir())
    assert not list(parent.glob("lib/swap_lib*"))


def test_a_users_target_is_changed_as_that_user(
    world: PipWorld, tmp_path: Path, key_set: Keys, make_daemon: Any
) -> None:
    import os
    import shutil
    import tempfile

    from tests.conftest import require_root

    require_root("makes a directory owned by another user")
    home = _home(tmp_path, world)
    base = Path(tempfile.mkdtemp(prefix="aegis-usertarget-", dir="/tmp"))
    base.chmod(0o755)
    target = base / "lib"
    target.mkdir()
    os.chown(target, 65534, 65534)
    world.index.add_wheel("user-tgt-lib", "1.0")
    plan = _target_plan(world, home, target, "user-tgt-lib")
    assert plan.command_preview[:4] == (
        "/usr/bin/setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"
    )  # fmt: skip
    answer = make_daemon(home=home).submit(_sign(home, plan, key_set))
    assert answer.ok, (answer.result or {}).get("stderr_tail")
    assert (target / "user_tgt_lib-1.0.dist-info").stat().st_uid == 65534
    shutil.rmtree(base)


def test_a_managed_venv_is_created_by_the_apply_and_removed_by_its_rollback(
    world: PipWorld, tmp_path: Path, key_set: Keys, make_daemon: Any
) -> None:
    """``--managed NAME``: planned while absent, created root's alone, audited, rolled back."""
    import os

    from aegis.ecosystems.pip import managed_root
    from aegis.ecosystems.pip.rollback import rollback_intent

    home = _home(tmp_path, world)
    cfg = load_config(base_env(home))
    place, _ = for_tool(Tool.PIP).place(cfg, ("demo-app",), "managed:tools", world.url)
    venv = managed_root(cfg) / "tools"
    assert place == f"managed:{venv}"
    intent = Intent(Tool.PIP, Operation.INSTALL, ("demo-app",), "tester", "2026-01-01T00:00:00Z",
                    location=place, registry=world.url)  # fmt: skip
    plan = for_tool(Tool.PIP).plan(cfg, intent, datetime.now(UTC))
    assert plan.failure is None, plan.failure
    assert not venv.parent.parent.exists()  # planning is read-only: the apply creates it
    assert [s.name for s in plan.signals if s.name == "pip.creates-venv"] == ["pip.creates-venv"]
    assert plan.command_preview[:5] == (
        "/usr/bin/python3", "-m", "pip", "--python", f"{venv}/bin/python"
    )  # fmt: skip
    d = make_daemon(home=home)
    answer = d.submit(_sign(home, plan, key_set))
    assert answer.ok, (answer.message, (answer.result or {}).get("stderr_tail"))
    assert (answer.result or {}).get("drift") == []
    for p in (venv, venv.parent, venv.parent.parent):
        assert p.stat().st_mode & 0o777 == 0o755
        assert p.stat().st_uid == os.geteuid()
    assert "include-system-site-packages = false" in (venv / "pyvenv.cfg").read_text()
    site = next(venv.glob("lib/python3*/site-packages"))
    assert sorted(p.name for p in site.glob("*.dist-info")) == [
        "demo_app-2.0.dist-info", "demo_lib-1.0.dist-info"
    ]  # exactly the signed set: no pip or setuptools of its own  # fmt: skip
    assert "apply-finished" in [e["kind"] for e in d.audit_events()]
    assert _pip_findings(d) == []  # its own apply is never an out-of-band change

    # A pip run straight into the managed venv is found on the next pass, once.
    world.index.add_wheel("behind-lib", "1.0")
    _pip_behind(world, tmp_path, ("/usr/bin/python3", "-m", "pip", "--python",
                                  f"{venv}/bin/python"), "behind-lib")  # fmt: skip
    (found,) = _pip_findings(d)
    assert (found["package"], found["action"], found["from"], found["to"]) == (
        "behind-lib", "install", None, "1.0"
    )  # fmt: skip
    assert (found["tool"], found["place"]) == ("pip", str(venv))
    assert _pip_findings(d) == [found]  # not again on the next pass
    from aegis.oob.baseline import read_baseline
    from aegis.oob.monitor import OobReport, metrics_text

    counts = read_baseline(d.cfg).counts  # type: ignore[union-attr]
    assert 'aegis_out_of_band_changes_total{tool="pip"} 1' in metrics_text(
        OobReport("clean", "", counts=counts)
    )

    # A change to the existing managed venv rolls back with the system pip's uninstall.
    _change_and_undo(world, home, key_set, d, replace(intent, targets=("managed-lib",)))
    assert [f["package"] for f in _pip_findings(d)] == ["behind-lib"]  # none of those

    # Its first change rolls back to no venv at all (behind-lib goes with it).
    back = rollback_intent(plan, "r-0000000000000003", "tester", "2026-01-01T00:00:00Z")
    assert back.targets == ("demo-app", "demo-lib")
    back = replace(back, targets=(*back.targets, "behind-lib"))
    removal = for_tool(Tool.PIP).plan(cfg, back, datetime.now(UTC))
    assert removal.command_preview == ("/bin/rm", "-rf", "--one-file-system", "--", str(venv))
    answer = d.submit(_sign(home, removal, key_set))
    assert answer.ok, (answer.message, answer.result)
    assert answer.result is not None
    assert answer.result["drift"] == []
    assert not venv.exists()
    assert venv.parent.is_dir()
    assert _pip_findings(d) == [found]  # the removal was aegisd's own


def _change_and_undo(world: PipWorld, home: Path, key_set: Keys, d: Any, intent: Intent) -> None:
    """Apply ``intent`` to an existing managed venv, then its rollback (``pip uninstall``)."""
    from aegis.ecosystems.pip.rollback import rollback_intent

    cfg = load_config(base_env(home))
    venv = intent.location[len("managed:") :]  # type: ignore[index]
    world.index.add_wheel("managed-lib", "1.0")
    more = for_tool(Tool.PIP).plan(cfg, intent, datetime.now(UTC))
    assert "pip.creates-venv" not in [s.name for s in more.signals]
    assert d.submit(_sign(home, more, key_set)).ok
    undo = rollback_intent(more, "r-0000000000000004", "tester", "2026-01-01T00:00:00Z")
    undo_plan = for_tool(Tool.PIP).plan(cfg, undo, datetime.now(UTC))
    assert undo_plan.command_preview[3:5] == ("--python", f"{venv}/bin/python")
    assert undo_plan.command_preview[-4:] == ("uninstall", "-y", "--", "managed-lib")
    assert d.submit(_sign(home, undo_plan, key_set)).ok
    site = next(Path(venv).glob("lib/python3*/site-packages"))
    assert not list(site.glob("managed_lib-*"))
    assert (site / "demo_app-2.0.dist-info").is_dir()


def _pip_behind(world: PipWorld, tmp_path: Path, pip: tuple[str, ...], name: str) -> None:
    """Install ``name`` with ``pip`` directly, as someone bypassing Aegis would."""
    subprocess.run(
        [*pip, "--isolated", "install", "--no-deps", "--index-url", world.url, name],
        check=True, capture_output=True, timeout=120,
        env={"PATH": "/usr/bin:/bin", "PIP_CONFIG_FILE": "/dev/null", "HOME": str(tmp_path)},
    )  # fmt: skip


def _pip_findings(d: Any) -> list[dict[str, Any]]:
    """Have aegisd record out-of-band changes now; every pip finding in its audit log."""
    from aegis.execute.protocol import Request, call
    from aegis.oob.serve import beside

    answer = call(str(beside(d.socket)), Request(op="record-out-of-band"), timeout_s=60)
    assert answer.ok, answer.message
    events = [e for e in d.audit_events() if e["kind"] == "out-of-band-change"]
    return [e["details"] for e in events if e["details"]["tool"] == "pip"]


@pytest.mark.parametrize("how", ["agent-owns-managed", "venv-is-a-link", "elsewhere"])
def test_a_managed_venv_an_agent_could_swap_is_refused(
    world: PipWorld, tmp_path: Path, key_set: Keys, make_daemon: Any, how: str
) -> None:
    """Group aegis may write /var/lib/aegis: a managed root it made or redirected is never used."""
    import os

    from aegis.ecosystems.pip import managed_root
    from tests.conftest import require_root

    require_root("creates directories owned by another user")
    home = _home(tmp_path, world)
    cfg = load_config(base_env(home))
    venv = managed_root(cfg) / "swap"
    location = f"managed:{venv}"
    agent_dir = tmp_path / "agent-dir"
    agent_dir.mkdir()
    if how == "agent-owns-managed":
        venv.parent.mkdir(parents=True, mode=0o755)
        os.chown(venv.parent.parent, 65534, 65534)
    elif how == "venv-is-a-link":
        venv.parent.mkdir(parents=True, mode=0o755)
        venv.symlink_to(agent_dir)
    else:  # a hand-made plan naming another directory as a managed venv
        location = f"managed:{agent_dir}"
    intent = Intent(Tool.PIP, Operation.INSTALL, ("demo-lib",), "tester", "2026-01-01T00:00:00Z",
                    location=location, registry=world.url)  # fmt: skip
    plan = for_tool(Tool.PIP).plan(cfg, intent, datetime.now(UTC))
    if how == "elsewhere":
        assert plan.command_preview == ()  # no argv: nothing may run
        return
    answer = make_daemon(home=home).submit(_sign(home, plan, key_set))
    assert not answer.ok
    assert answer.refusal == "refused:environment", answer.message
    assert list(agent_dir.iterdir()) == []
