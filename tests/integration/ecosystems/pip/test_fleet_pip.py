"""``aegis fleet plan`` beyond apt: a pip intent planned through the seam on several hosts.

Two local hosts (each its own AEGIS_HOME) plan the same pip install against one real
index on loopback and one venv path: same delta, same decision, one cohort. Intents no
host could plan are refused at once with exit 3, before any host is asked.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from .pip_fixtures import PipWorld, make_venv, policy_with_index, serve

REPO = Path(__file__).resolve().parents[4]


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PipWorld]:
    base = tmp_path_factory.mktemp("fleet-pip")
    yield from serve(base / "index", make_venv(base / "venv"))


def _home(base: Path, world: PipWorld) -> Path:
    etc = base / "etc/aegis"
    etc.mkdir(parents=True)
    (etc / "policy.toml").write_text(policy_with_index(world.url))
    return base


def _aegis(home: Path, *argv: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AEGIS_")}
    env.update({"AEGIS_HOME": str(home), "AEGIS_AUDIT_SYSLOG": "0", "PYTHONPATH": str(REPO)})
    return subprocess.run(
        [sys.executable, "-m", "aegis", "fleet", "plan", "--no-review", "--json", *argv],
        env=env,
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=300,
        check=False,
    )


def test_a_pip_intent_is_planned_on_every_host_into_one_cohort(
    world: PipWorld, tmp_path: Path
) -> None:
    homes = [_home(tmp_path / f"h{i}", world) for i in (1, 2)]
    hosts = tmp_path / "hosts.toml"
    hosts.write_text(
        "".join(
            f'[[hosts]]\nname = "h{i}"\nhome = "{h}"\n[hosts.env]\nAEGIS_HOST_ID = "h{i}"\n\n'
            for i, h in enumerate(homes, 1)
        )
    )
    place = ("--where", str(world.venv), "--registry", world.url)
    fleet = _aegis(
        tmp_path / "ctl", "--hosts", str(hosts), *place, "--", "pip", "install", "friendly-tool"
    )
    assert fleet.returncode == 0, fleet.stdout + fleet.stderr
    report = json.loads(fleet.stdout)
    assert [(r["host"], r["ok"], r["decision"]) for r in report["hosts"]] == [
        ("h1", True, "require-approval"),
        ("h2", True, "require-approval"),
    ]
    [cohort] = report["cohorts"]
    assert sorted(cohort["hosts"]) == ["h1", "h2"]
    doc = cohort["document"]
    assert (doc["intent"]["tool"], doc["intent"]["targets"]) == ("pip", ["friendly-tool"])
    assert {c["name"] for c in doc["changes"]} >= {"friendly-tool", "evil-helper"}
    # One host on its own (what the Ansible module runs) lands in the same cohort.
    one = _aegis(homes[0], *place, "--", "pip", "install", "friendly-tool")
    assert one.returncode == 0, one.stdout + one.stderr
    assert json.loads(one.stdout)["cohort_hash"] == cohort["cohort_hash"]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (("--", "brew", "install", "x"), "unknown ecosystem"),
        (("--", "apt"), "needs an intent"),
        (("--where", "/srv", "--", "apt", "install", "nginx"), "no place (where) is taken"),
        (("--registry", "http://127.0.0.1:1/", "--", "apt", "install", "nginx"), "no registry"),
        (("--", "pip", "remove", "x"), "does not plan pip 'remove'"),
        (("--", "pip", "install", "demo-app"), "venv"),
    ],
    ids=["unknown-ecosystem", "no-verb", "apt-where", "apt-registry", "pip-verb", "pip-no-venv"],
)
def test_intents_no_host_could_plan_exit_3(
    tmp_path: Path, world: PipWorld, argv: tuple[str, ...], message: str
) -> None:
    proc = _aegis(_home(tmp_path / "h", world), *argv)
    assert proc.returncode == 3, proc.stdout + proc.stderr
    assert message in proc.stderr
    assert "Traceback" not in proc.stderr


def test_a_bad_intent_is_refused_before_any_host_is_asked(tmp_path: Path) -> None:
    hosts = tmp_path / "hosts.toml"
    hosts.write_text(f'[[hosts]]\nname = "h1"\nhome = "{tmp_path / "nowhere"}"\n')
    proc = _aegis(tmp_path / "ctl", "--hosts", str(hosts), "--", "pip", "remove", "x")
    assert proc.returncode == 3, proc.stdout + proc.stderr
    assert not (tmp_path / "nowhere").exists()
