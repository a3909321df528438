"""Image planning with real skopeo against a real registry on loopback: signals and decisions."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest

from aegis.config import load_config
from aegis.ecosystems import for_tool
from aegis.model import Intent, Operation, Plan, Tool
from aegis.policy.config import ReviewSettings, parse_policy_config
from aegis.policy.engine import evaluate
from tests.conftest import require_root

from .image_fixtures import ImageWorld, needs_image_tools, policy_with_registry, serve

pytestmark = needs_image_tools
REPO = Path(__file__).resolve().parents[4]


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ImageWorld]:
    yield from serve(tmp_path_factory.mktemp("images"))


def _plan(world: ImageWorld, target: str, registry: str | None = None) -> Plan:
    intent = Intent(Tool.IMAGE, Operation.INSTALL, (target,), "tester", "2026-01-01T00:00:00Z",
                    location="podman:/srv/store", registry=registry or world.url)  # fmt: skip
    return for_tool(Tool.IMAGE).plan(load_config({}), intent, datetime.now(UTC))


def _decide(plan: Plan, policy: str) -> tuple[str, set[str]]:
    cfg = parse_policy_config(policy)
    cfg = replace(cfg, review=ReviewSettings(public_keys=(), allow_skip=True, required=False))
    result = evaluate(plan, None, cfg, datetime.now(UTC))
    return result.decision.value, {f.rule_id for f in result.fired}


STRICT = 'unsigned = "require-approval"\nroot = "deny"\n'


@pytest.mark.parametrize(
    ("repo", "pinned", "extra", "decision", "rules"),
    [
        ("app", True, "", "allow", {"image.pull"}),
        ("app", False, "", "deny", {"image.tag-mutable"}),
        ("multi", True, "", "allow", {"image.pull"}),
        ("rootimg", True, "", "allow", {"image.unsigned", "image.runs-as-root"}),
        ("rootimg", True, STRICT, "deny", {"image.unsigned", "image.runs-as-root"}),
        ("app", True, STRICT, "allow", {"image.pull"}),
        ("missing", False, "", "deny", {"analysis.failed", "image.tag-mutable"}),
    ],
)
def test_targets_signals_and_decisions(
    world: ImageWorld, repo: str, pinned: bool, extra: str, decision: str, rules: set[str]
) -> None:
    target = world.ref(repo, pinned) if repo in world.digests else f"{world.host}/team/{repo}:v1"
    plan = _plan(world, target)
    got, fired = _decide(plan, policy_with_registry(world.url, extra))
    assert got == decision, fired
    assert rules <= fired, fired


def test_an_unapproved_registry_is_denied(world: ImageWorld) -> None:
    plan = _plan(world, world.ref("app"))
    other = policy_with_registry("http://127.0.0.1:1/")
    decision, fired = _decide(plan, other)
    assert decision == "deny"
    assert "registry.unapproved" in fired
    # An entry can approve one path of a registry: another organisation is not approved.
    only = policy_with_registry(f"{world.url}other/")
    assert "registry.unapproved" in _decide(plan, only)[1]


def test_the_evidence_is_the_registry_s_own_bytes(world: ImageWorld) -> None:
    plan = _plan(world, world.ref("multi"))
    assert plan.ecosystem is not None
    assert plan.ecosystem.image is not None
    image = plan.ecosystem.image
    assert image.digest == world.digests["multi"]
    assert image.media_type == "application/vnd.oci.image.index.v1+json"
    assert image.platform == "linux/amd64"
    assert image.platform_digest != image.digest
    assert image.config_digest.startswith("sha256:")
    assert len(image.layers) == 1
    assert image.labels == {"org.example.app": "t"}
    assert image.entrypoint == ("/hello",)
    assert image.signature == "unverified-no-key"  # signed, but this policy trusts no key
    assert image.signature_verified is False
    assert plan.command_preview[-1] == f"{world.host}/team/multi@{image.digest}"
    assert "--tls-verify=false" in plan.command_preview


def test_a_moved_tag_and_a_wrong_digest_are_seen(world: ImageWorld) -> None:
    world.publish("moving")
    pinned = world.ref("moving")
    world.publish("moving", payload=b"v2\n")
    plan = _plan(world, pinned)
    assert "image.tag-moved" in {s.name for s in plan.signals}
    assert plan.command_preview  # still the pinned digest, never the tag's new one
    bogus = _plan(world, f"{world.host}/team/app@sha256:{'0' * 64}")
    assert bogus.failure is not None
    assert bogus.command_preview == ()


def test_plain_http_is_only_for_a_registry_the_plan_names_http(world: ImageWorld) -> None:
    # The reference's registry over TLS: the loopback registry speaks only HTTP.
    plan = _plan(world, world.ref("app"), registry=f"https://{world.host}/")
    assert plan.failure is not None


def _cli(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AEGIS_")}
    env.update(AEGIS_HOME=str(home), AEGIS_HOST_ID="test-host", PYTHONPATH=str(REPO))
    return subprocess.run([sys.executable, "-m", "aegis", *args], env=env, capture_output=True,
                          text=True, timeout=120, check=False)  # fmt: skip


def test_the_commands_plan_refuse_and_pin(world: ImageWorld, tmp_path: Path) -> None:
    home = tmp_path / "home"
    (home / "etc/aegis").mkdir(parents=True)
    (home / "etc/aegis/policy.toml").write_text(policy_with_registry(world.url))
    tag = world.ref("app", pinned=False)
    for argv in (["podman", "pull", tag], ["docker", "pull", tag], ["podman", "run", tag],
                 ["container", "pull", tag, "--runtime", "podman"], ["container", "pull", tag],
                 ["container", "pull", tag, "--plan"],
                 ["podman", "pull", "--tls-verify=false", tag, "--plan"]):  # fmt: skip
        proc = _cli(home, *argv)
        assert proc.returncode == 3, (argv, proc.stderr)
        assert "Traceback" not in proc.stderr
    proc = _cli(home, "container", "pull", tag, "--runtime", "podman", "--storage",
                str(tmp_path / "store"), "--pin", "--plan", "--json")  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    plan = json.loads(proc.stdout)["plan"]
    assert plan["intent"]["targets"] == [world.ref("app")]
    assert plan["intent"]["registry"] == world.url
    assert plan["intent"]["location"] == f"podman:{tmp_path / 'store'}"
    proc = _cli(home, "docker", "pull", tag, "--plan", "--json")
    assert proc.returncode == 0, proc.stderr
    docker_plan = json.loads(proc.stdout)["plan"]
    assert docker_plan["command_preview"] == []
    assert docker_plan["intent"]["location"] == "docker:/var/run/docker.sock"
    # The MCP tool plans through the same entry point: 'docker' names the daemon's store.
    from aegis.api_agent import plan_change

    cfg = load_config({"AEGIS_HOME": str(home), "AEGIS_HOST_ID": "test-host"})
    out = plan_change(cfg, "image", "install", (world.ref("app"),), where="docker")
    assert out.extra["plan"].intent.location == "docker:/var/run/docker.sock"


def test_a_registry_serving_other_bytes_for_a_digest_is_caught(world: ImageWorld) -> None:
    """The attack: the registry's storage rewritten so a config says User "0" under the old
    digest. skopeo hands the bytes over; the planner's own SHA-256 refuses them."""
    world.publish("tampered", payload=b"tampered\n")  # its own config blob, shared by none
    plan = _plan(world, world.ref("tampered"))
    assert plan.ecosystem is not None
    assert plan.ecosystem.image is not None
    config = plan.ecosystem.image.config_digest.split(":", 1)[1]
    blob = next((world.work / "registry").rglob(f"blobs/sha256/{config[:2]}/{config}/data"))
    doc = json.loads(blob.read_bytes())
    doc["config"]["User"] = "0"
    blob.write_bytes(json.dumps(doc).encode())
    again = _plan(world, world.ref("tampered"))
    assert again.failure is not None
    assert "does not match" in again.failure.message
    assert again.command_preview == ()


def _planned_under(world: ImageWorld, target: str, policy: str, home: Path) -> Plan:
    """A plan made with ``policy`` in force (its trusted keys verify the signature)."""
    (home / "etc/aegis").mkdir(parents=True, exist_ok=True)
    (home / "etc/aegis/policy.toml").write_text(policy)
    intent = Intent(Tool.IMAGE, Operation.INSTALL, (target,), "tester", "2026-01-01T00:00:00Z",
                    location="podman:/srv/store", registry=world.url)  # fmt: skip
    cfg = load_config({"AEGIS_HOME": str(home), "AEGIS_HOST_ID": "test-host"})
    return for_tool(Tool.IMAGE).plan(cfg, intent, datetime.now(UTC))


@pytest.fixture(scope="module")
def attacks(world: ImageWorld) -> dict[str, str]:
    """Images whose signature tag holds each attack, built with real keys and skopeo copy."""
    from aegis.devtools import image_registry as ir

    untrusted = ir.new_key(world.work / "keys/untrusted.pub")
    out: dict[str, str] = {}
    for name in ("otherdigest", "untrusted", "otherrepo", "tampered-sig"):
        out[name] = world.publish(name, payload=name.encode())  # a digest of its own
    repo = f"{world.host}/team"
    # A genuine signature of another image's digest, copied under this image's .sig tag.
    other = ir.simple_signing(world.digests["app"], f"{repo}/otherdigest")
    ir.cosign_sign(world.work, f"{repo}/otherdigest", out["otherdigest"], world.key, payload=other)
    ir.cosign_sign(world.work, f"{repo}/untrusted", out["untrusted"], untrusted)
    # Signed by the trusted key, but for another repository (a copy of someone else's image).
    ir.cosign_sign(world.work, f"{repo}/otherrepo", out["otherrepo"], world.key,
                   payload=ir.simple_signing(out["otherrepo"], f"{repo}/app"))  # fmt: skip
    # The payload changed after signing (here: an added field), the signature kept.
    good = ir.simple_signing(out["tampered-sig"], f"{repo}/tampered-sig")
    ir.cosign_sign(world.work, f"{repo}/tampered-sig", out["tampered-sig"], world.key,
                   payload=good[:-1] + b',"x":1}', signed=good)  # fmt: skip
    return out


@pytest.mark.parametrize(
    ("repo", "extra", "status", "decision", "rule"),
    [
        ("app", "", "verified", "allow", "image.pull"),
        ("otherdigest", "", "invalid", "deny", "image.signature-invalid"),
        ("untrusted", "", "invalid", "deny", "image.signature-invalid"),
        ("otherrepo", "", "invalid", "deny", "image.signature-invalid"),
        ("tampered-sig", "", "invalid", "deny", "image.signature-invalid"),
        ("rootimg", 'root = "allow"\n', "absent", "require-approval",
         "image.signature-unverified"),
        ("rootimg", 'unsigned = "deny"\n', "absent", "deny", "image.signature-unverified"),
    ],
)  # fmt: skip
def test_cosign_signatures_are_verified_with_the_trusted_key(
    world: ImageWorld, attacks: dict[str, str], tmp_path: Path, repo: str, extra: str,
    status: str, decision: str, rule: str,
) -> None:  # fmt: skip
    require_root("trusted keys are root-owned files")
    policy = policy_with_registry(world.url, world.signing(extra))
    plan = _planned_under(world, world.ref(repo), policy, tmp_path / "home")
    assert plan.failure is None, plan.failure
    assert plan.ecosystem is not None
    assert plan.ecosystem.image is not None
    image = plan.ecosystem.image
    assert image.signature == status, image.signature_detail
    assert image.signature_verified is (status == "verified")
    from aegis.ecosystems.image.cosign import load_key

    assert image.signature_key == (load_key(str(world.key_path)).key_id if status == "verified"
                                   else "")  # fmt: skip
    got, fired = _decide(plan, policy)
    assert got == decision, fired
    assert rule in fired, fired


def test_a_signature_without_a_trusted_key_or_a_key_not_root_s(
    world: ImageWorld, tmp_path: Path
) -> None:
    require_root("chown needs root")
    # Signed, but the policy entry trusts no key: unverified, approval when signatures count.
    policy = policy_with_registry(world.url, "require_signature = true\n")
    plan = _planned_under(world, world.ref("app"), policy, tmp_path / "a")
    assert plan.ecosystem is not None
    assert plan.ecosystem.image is not None
    assert plan.ecosystem.image.signature == "unverified-no-key"
    decision, fired = _decide(plan, policy)
    assert decision == "require-approval"
    assert "image.signature-unverified" in fired
    # A key file another user owns (or a symlink to the real one) verifies nothing: the plan
    # fails, and policy denies it.
    planted = tmp_path / "planted.pub"
    planted.write_bytes(world.key_path.read_bytes())
    os.chown(planted, 65534, 65534)
    link = tmp_path / "link.pub"
    link.symlink_to(world.key_path)
    for key in (planted, link):
        policy = policy_with_registry(world.url, f'trusted_keys = ["{key}"]\n')
        plan = _planned_under(world, world.ref("app"), policy, tmp_path / key.stem)
        assert plan.failure is not None
        assert "trusted image key" in plan.failure.message
        assert plan.command_preview == ()
        assert "analysis.failed" in _decide(plan, policy)[1]
