"""An agent (group aegis) plans an image pull; it cannot pull, and an outsider cannot plan."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from .conftest import MEMBER, Host

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.integration.ecosystems.image.image_fixtures import (
    ImageWorld,
    needs_image_tools,
    policy_with_registry,
    serve,
)

pytestmark = [pytest.mark.root, needs_image_tools]


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ImageWorld]:
    yield from serve(tmp_path_factory.mktemp("imagemember"))


def test_an_agent_plans_a_pinned_pull_and_is_refused_a_direct_one(
    host: Host, world: ImageWorld
) -> None:
    host.etc.joinpath("policy.toml").write_text(policy_with_registry(world.url))
    host.etc.joinpath("policy.toml").chmod(0o644)
    tag = world.ref("app", pinned=False)
    proc = host.member("podman", "pull", tag, "--storage", "/srv/images", "--pin", "--plan",
                       "--json")  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    plan = json.loads(proc.stdout)["plan"]
    assert plan["intent"]["targets"] == [world.ref("app")]
    assert plan["intent"]["requested_by"] != "root"
    assert plan["command_preview"][-1] == f"{world.host}/team/app@{world.digests['app']}"
    direct = host.member("podman", "pull", tag)
    assert direct.returncode == 3, direct.stderr
    # Outside group aegis: no request can be recorded.
    outsider = host.run_as(MEMBER, "podman", "pull", tag, "--pin", "--plan")
    assert outsider.returncode != 0
