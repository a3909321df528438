"""``aegis apt ... --plan`` end to end: request row, plan file, refusals."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from aegis import api
from aegis.cli.aegis import cli as aegis_cli
from aegis.config import load_config
from aegis.devtools import testrepo


@pytest.fixture
def env(apt_root: testrepo.AptRoot, aegis_home: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("AEGIS_APT_CONFIG", str(apt_root.apt_config))
    return aegis_home


def run(*args: str) -> Result:
    return CliRunner().invoke(aegis_cli, list(args))


def test_install_plan_json_creates_request(env: Path) -> None:
    res = run("apt", "install", "aegis-tool", "--plan", "--json", "--no-contents")
    assert res.exit_code == 0, res.output
    doc = json.loads(res.output)
    path = Path(doc["plan_path"])
    assert path.is_file()
    assert json.loads(path.read_text())["plan_id"] == doc["plan"]["plan_id"]
    rec = api.get_request(load_config(), doc["request_id"])
    assert rec.state == "analyzed"
    assert rec.plan_hash == doc["plan_hash"]
    assert doc["plan"]["command_preview"][-2:] == ["aegis-base=1.2", "aegis-tool=2.0"]


def test_human_diff_with_signals(env: Path, apt_root: testrepo.AptRoot) -> None:
    testrepo.run_apt(apt_root, "install", "-y", "aegis-tool")
    res = run("apt", "install", "aegis-base=1.0", "linux-image-aegis", "--plan", "--no-contents")
    assert res.exit_code == 0, res.output
    assert "v aegis-base 1.2 -> 1.0 (all)   [downgrade]" in res.output
    assert "- aegis-tool 2.0 (all)   [removal]" in res.output
    assert "+ linux-image-aegis 6.1.0-1 (all)   [kernel]" in res.output
    assert "plan: " in res.output
    assert ".json" in res.output


@pytest.mark.parametrize(
    "args",
    [
        ("apt", "install", "aegis-tool"),  # no --plan: Aegis never mutates directly
        ("apt", "install", "\u0430egis-tool", "--plan"),
        ("apt", "install", "--plan", "--", "-oAPT::Get::AllowUnauthenticated=1"),
        ("apt", "install", "nginx;id", "--plan"),
        ("apt", "upgrade"),
    ],
)
def test_refusals_exit_3_without_request(env: Path, args: tuple[str, ...]) -> None:
    res = run(*args)
    assert res.exit_code == 3, res.output
    assert api.list_requests(load_config()) == []


def test_update_and_upgrade_plans(env: Path) -> None:
    up = run("apt", "update", "--plan", "--json")
    assert up.exit_code == 0, up.output
    assert json.loads(up.output)["plan"]["command_preview"] == ["/usr/bin/apt-get", "update"]
    ug = run("apt", "upgrade", "--plan")
    assert ug.exit_code == 0
    assert "nothing to change" in ug.output
