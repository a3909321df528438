"""Images through aegisd: a real registry, real skopeo and podman (vfs, a temp graph root)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from aegis.config import load_config
from aegis.ecosystems import for_tool
from aegis.ecosystems.image import runroot_for
from aegis.model import Intent, Operation, Plan, Tool
from tests.conftest import require_root

from .conftest import Keys, base_env, sign_plan

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.integration.ecosystems.image.image_fixtures import (
    ImageWorld,
    drop_store,
    needs_image_tools,
    new_store,
    policy_with_registry,
    serve,
)

pytestmark = needs_image_tools
REPO = Path(__file__).resolve().parents[3]


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ImageWorld]:
    yield from serve(tmp_path_factory.mktemp("imageapply"))


@pytest.fixture
def image_store(tmp_path: Path) -> Iterator[Path]:
    path = new_store(tmp_path / "store")
    yield path
    drop_store(path)


def _home(tmp_path: Path, world: ImageWorld) -> Path:
    home = tmp_path / "home"
    (home / "etc/aegis").mkdir(parents=True, exist_ok=True)
    # Signatures count: each plan's cosign signature verified with the world's trusted key.
    (home / "etc/aegis/policy.toml").write_text(policy_with_registry(world.url, world.signing()))
    return home


def _plan(
    world: ImageWorld, home: Path, store: Path, target: str, location: str = "", **env: str
) -> Plan:
    intent = Intent(Tool.IMAGE, Operation.INSTALL, (target,), "tester", "2026-01-01T00:00:00Z",
                    location=location or f"podman:{store}", registry=world.url)  # fmt: skip
    return for_tool(Tool.IMAGE).plan(load_config(base_env(home, **env)), intent, datetime.now(UTC))


def _sign(home: Path, plan: Plan, key_set: Keys, **env: str) -> bytes:
    from aegis.execute.apply import binding_from_result
    from aegis.model import plan_hash
    from aegis.policy.engine import evaluate
    from aegis.policy.result import result_hash
    from aegis.policy.run import load_policy
    from aegis.sign.approvals import build_approval

    cfg = load_config(base_env(home, **env))
    now = datetime.now(UTC)
    result = evaluate(plan, None, load_policy(cfg), now)
    assert result.decision.value != "deny", [f.rule_id for f in result.fired]
    approval = build_approval(plan_id=plan.plan_id, plan_hash=plan_hash(plan),
                              policy_hash=result_hash(result), approver_id="bob",
                              role="approver", reason="test", now=now,
                              expires_in=timedelta(hours=1), key=key_set.approver)  # fmt: skip
    return sign_plan(cfg, plan, key_set.signer,
                     argv=for_tool(Tool.IMAGE).derive_argv(plan, cfg),
                     policy=binding_from_result(result),
                     approvals=(approval,) if result.controls.approval.count else ())  # fmt: skip


def _stored(store: Path) -> dict[str, str]:
    out = subprocess.run(
        ["podman", "--root", str(store), "--runroot", runroot_for(str(store)), "images", "--format",
         "json"], check=True, capture_output=True, timeout=60,
    ).stdout  # fmt: skip
    return {d: "sha256:" + i["Id"] for i in json.loads(out) for d in i.get("RepoDigests") or []}


def test_apply_pulls_by_digest_checks_the_store_and_records_the_previous_image(
    world: ImageWorld, tmp_path: Path, key_set: Keys, make_daemon: Any, image_store: Path
) -> None:
    require_root("podman's rootful store and aegisd's apply need root")
    home = _home(tmp_path, world)
    d = make_daemon(home=home)
    first_digest = world.publish("svc")
    first = _plan(world, home, image_store, world.ref("svc"))
    assert d.submit(_sign(home, first, key_set)).ok
    world.publish("svc", payload=b"second\n", signed=True)
    second = _plan(world, home, image_store, world.ref("svc"))
    assert second.ecosystem is not None
    assert second.ecosystem.image is not None
    assert second.ecosystem.image.signature == "verified"
    answer = d.submit(_sign(home, second, key_set))
    assert answer.ok, (answer.message, answer.result)
    assert answer.result is not None
    assert answer.result["argv"][-1] == f"{world.host}/team/svc@{world.digests['svc']}"
    assert answer.result["drift"] == []
    assert answer.result["previous_images"] == [f"{world.host}/team/svc@{first_digest}"]
    stored = _stored(image_store)
    assert stored[f"{world.host}/team/svc@{world.digests['svc']}"] == (
        second.ecosystem.image.config_digest
    )
    finished = [e for e in d.audit_events() if e["kind"] == "apply-finished"]
    assert len(finished) == 2


def test_a_moved_tag_is_refused_at_rederivation_and_nothing_is_pulled(
    world: ImageWorld, tmp_path: Path, key_set: Keys, make_daemon: Any, image_store: Path
) -> None:
    home = _home(tmp_path, world)
    world.publish("shifty")
    data = _sign(home, _plan(world, home, image_store, world.ref("shifty")), key_set)
    world.publish("shifty", payload=b"moved\n")
    answer = make_daemon(home=home).submit(data)
    assert not answer.ok
    assert answer.refusal == "refused:rederivation"
    assert _stored(image_store) == {}


def test_a_caller_outside_the_apply_group_is_refused_and_nothing_is_pulled(
    world: ImageWorld, tmp_path: Path, key_set: Keys, make_daemon: Any, image_store: Path
) -> None:
    require_root("dropping to another uid needs root")
    home = _home(tmp_path, world)
    d = make_daemon(home=home, config='socket_mode = "0666"\n')  # the socket lets it knock
    plan_file = Path(tempfile.mkdtemp(prefix="aegis-ep-")) / "ep.json"
    plan_file.parent.chmod(0o755)
    plan_file.write_bytes(_sign(home, _plan(world, home, image_store, world.ref("app")), key_set))
    plan_file.chmod(0o644)
    public = Path(tempfile.mkdtemp(prefix="aegis-client-"))
    public.chmod(0o755)
    shutil.copytree(REPO / "aegis", public / "aegis", ignore=shutil.ignore_patterns("__pycache__"))
    script = (
        "import sys; sys.path.insert(0, sys.argv[3])\n"
        "from aegis.execute.protocol import call, Request\n"
        "a = call(sys.argv[1], Request(op='apply', execution_plan=open(sys.argv[2]).read()))\n"
        "print(a.refusal)\n"
    )
    try:
        proc = subprocess.run(
            ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
             os.path.realpath(sys.executable), "-I", "-c", script, str(d.socket),
             str(plan_file), str(public)],
            capture_output=True, text=True, timeout=60, cwd="/", check=False,
        )  # fmt: skip
    finally:
        shutil.rmtree(public)
        shutil.rmtree(plan_file.parent)
    assert proc.stdout.strip() == "refused:peer", proc.stderr
    assert _stored(image_store) == {}


def test_a_signature_swapped_after_signing_is_refused_and_nothing_is_pulled(
    world: ImageWorld, tmp_path: Path, key_set: Keys, make_daemon: Any, image_store: Path
) -> None:
    """aegisd verifies the signature again: the .sig tag re-pushed by another key (or
    deleted) after the plan was signed makes its derivation differ."""
    require_root("trusted keys are root-owned files")
    from aegis.devtools import image_registry as ir

    home = _home(tmp_path, world)
    digest = world.publish("swapped", payload=b"swapped\n", signed=True)
    data = _sign(home, _plan(world, home, image_store, world.ref("swapped")), key_set)
    intruder = ir.new_key(tmp_path / "intruder.pub")
    ir.cosign_sign(world.work, f"{world.host}/team/swapped", digest, intruder)
    answer = make_daemon(home=home).submit(data)
    assert not answer.ok
    assert answer.refusal == "refused:rederivation", answer.message
    assert _stored(image_store) == {}


DOCKERD = "/usr/sbin/dockerd"


@pytest.fixture(scope="module")
def dockerd() -> Iterator[str]:
    """A private docker daemon: its own data and exec roots, socket and pid file, no network
    setup (no bridge, no iptables), vfs storage. Yields its socket path."""
    require_root("dockerd runs as root")
    if not os.access(DOCKERD, os.X_OK):
        if os.environ.get("CI") == "true":
            pytest.fail("docker.io is not installed (scripts/test installs it)")
        pytest.skip("docker.io is not installed (scripts/test installs it)")
    # Short paths: containerd's socket lives under the exec root (108-byte socket paths).
    root = Path(tempfile.mkdtemp(prefix="aegis-dockerd-", dir="/tmp"))
    sock = root / "docker.sock"
    log = (root / "dockerd.log").open("wb")
    proc = subprocess.Popen(
        [DOCKERD, "--data-root", str(root / "data"), "--exec-root", str(root / "x"),
         "-H", f"unix://{sock}", "--pidfile", str(root / "docker.pid"), "--iptables=false",
         "--ip6tables=false", "--bridge=none", "--storage-driver=vfs"],
        stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        for _ in range(300):
            ping = subprocess.run(["/usr/bin/docker", "-H", f"unix://{sock}", "version"],
                                  capture_output=True, timeout=30, check=False)  # fmt: skip
            if ping.returncode == 0:
                break
            assert proc.poll() is None, (root / "dockerd.log").read_text()[-2000:]
            time.sleep(0.1)
        yield str(sock)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()
        shutil.rmtree(root, ignore_errors=True)


def test_a_docker_pull_through_aegisd_against_a_real_daemon(
    world: ImageWorld, tmp_path: Path, key_set: Keys, make_daemon: Any, dockerd: str
) -> None:
    home = _home(tmp_path, world)
    env = {"AEGIS_DOCKER_SOCKET": dockerd}
    digest = world.publish("dock", payload=b"docker\n", signed=True)
    plan = _plan(world, home, tmp_path, world.ref("dock"), f"docker:{dockerd}", **env)
    assert plan.ecosystem is not None
    assert plan.ecosystem.image is not None
    ref = f"{world.host}/team/dock@{digest}"
    assert plan.command_preview == ("/usr/bin/docker", "-H", f"unix://{dockerd}", "pull",
                                    "--quiet", ref)  # fmt: skip
    # A plan naming another daemon than aegisd's configured one derives no argv at all.
    elsewhere = load_config(base_env(home, AEGIS_DOCKER_SOCKET="/run/other.sock"))
    assert for_tool(Tool.IMAGE).derive_argv(plan, elsewhere) == ()
    answer = make_daemon(home=home, env_extra=env).submit(_sign(home, plan, key_set, **env))
    assert answer.ok, (answer.message, answer.result)
    assert answer.result is not None
    assert answer.result["drift"] == []
    listed = subprocess.run(
        ["/usr/bin/docker", "-H", f"unix://{dockerd}", "images", "--digests", "--no-trunc",
         "--format", "{{.Digest}} {{.ID}}"], capture_output=True, text=True, check=True,
        timeout=60,
    ).stdout.split()  # fmt: skip
    assert listed == [digest, plan.ecosystem.image.config_digest]
