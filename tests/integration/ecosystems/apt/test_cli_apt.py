"""``aegis apt ... --plan`` end to end: request row, plan file, refusals."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from aegis import api
from aegis.cli.aegis import cli as aegis_cli
from aegis.config import load_config
from aegis.devtools import testrepo
from tests.conftest import planned_debs

REPO = Path(__file__).resolve().parents[4]


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
    preview = doc["plan"]["command_preview"]
    assert preview[-3:] == ["--", *planned_debs(doc["plan"])]
    assert [p["package"] for p in doc["plan"]["provenance"]] == ["aegis-base", "aegis-tool"]


def test_human_diff_with_signals(env: Path, apt_root: testrepo.AptRoot) -> None:
    testrepo.run_apt(apt_root, "install", "-y", "aegis-tool")
    res = run("apt", "install", "aegis-base=1.0", "linux-image-aegis", "--plan", "--no-contents")
    assert res.exit_code == 0, res.output
    assert "v aegis-base 1.2 -> 1.0 (all)   [downgrade]" in res.output
    assert "- aegis-tool 2.0 (all)   [removal]" in res.output
    assert "+ linux-image-aegis 6.1.0-1 (all)   [kernel]" in res.output
    assert "plan: " in res.output
    assert ".json" in res.output


REFUSALS = [
    (("apt", "install", "aegis-tool"), "without --plan"),  # Aegis never mutates directly
    (("apt", "upgrade"), "without --plan"),
    (("apt", "install", "\u0430egis-tool", "--plan"), "lookalike names are refused"),
    (("apt", "install", "\uff4e\uff47\uff49\uff4e\uff58", "--plan"), "lookalike"),
    (
        ("apt", "install", "--plan", "--", "-oAPT::Get::AllowUnauthenticated=1"),
        "starts with '-'",
    ),
    # Option injection before "--" is a bad name too (exit 3), not a click usage error.
    (("apt", "install", "-oAPT::Get::AllowUnauthenticated=1", "--plan"), "starts with '-'"),
    (("apt", "install", "--allow-unauthenticated", "aegis-tool", "--plan"), "starts with '-'"),
    (("apt", "remove", "-y", "aegis-tool", "--plan"), "starts with '-'"),
    (("apt", "install", "nginx;id", "--plan"), "is not a Debian package name"),
    (("apt", "install", "aegis-tool$(id)", "--plan"), "is not a Debian package name"),
    (("apt", "install", "aegis-tool", "aegis-tool|sh", "--plan"), "is not a Debian package"),
    (("apt", "install", "./x;rm.deb", "--plan"), "shell metacharacters"),
    (("apt", "full-upgrade"), "without --plan"),
    (("apt", "dist-upgrade"), "without --plan"),
    # apt verbs that change packages but have no planning command: the plan flow.
    (("apt", "autoremove", "--plan"), "Aegis never mutates directly"),
]


@pytest.mark.parametrize(("args", "message"), REFUSALS, ids=[" ".join(a) for a, _ in REFUSALS])
def test_refusals_exit_3_without_request(env: Path, args: tuple[str, ...], message: str) -> None:
    res = run(*args)
    assert res.exit_code == 3, res.output
    assert res.stderr.startswith("Error: "), res.stderr
    assert message in res.stderr
    assert "Traceback" not in res.stderr
    if "never mutates" in message or "--plan" in message:
        assert "aegis apt " in res.stderr  # explains the plan flow
    assert api.list_requests(load_config()) == []
    assert not list(load_config().plans_dir.glob("*.json"))


def test_update_and_upgrade_plans(env: Path) -> None:
    up = run("apt", "update", "--plan", "--json")
    assert up.exit_code == 0, up.output
    assert json.loads(up.output)["plan"]["command_preview"] == ["/usr/bin/apt-get", "update"]
    ug = run("apt", "upgrade", "--plan")
    assert ug.exit_code == 0
    assert "nothing to change" in ug.output


def test_upgrade_diff_shows_each_symbol_with_signals(env: Path, apt_root: testrepo.AptRoot) -> None:
    testrepo.run_apt(apt_root, "install", "-y", "aegis-held=1.0", "libssl3=3.0.1")
    res = run("apt", "upgrade", "--plan", "--no-contents")
    assert res.exit_code == 0, res.output
    lines = res.output.splitlines()
    assert "~ libssl3 3.0.1 -> 3.0.2 (all)   [security-sensitive]" in lines
    assert "= aegis-held 1.0 -> 1.1 (all)   [held-back]" in lines


def test_unknown_name_is_an_analyzed_plan_listing_the_closest_names(env: Path) -> None:
    res = run("apt", "install", "aegis-bsae", "--plan", "--no-contents")
    assert res.exit_code == 3, res.output  # recorded as evidence, but the analysis failed
    assert "analysis failed (unknown-package)" in res.stdout
    assert "! target.unknown aegis-bsae: closest known: aegis-base" in res.stdout
    assert res.stderr.startswith("Error: analysis failed (unknown-package)"), res.stderr
    (rec,) = api.list_requests(load_config())
    assert rec.state == "analyzed"
    assert f"request {rec.id}" in res.stderr
    doc = json.loads(run("show", rec.id, "--json").stdout)
    plan_path = Path(doc["artifacts"][0]["path"])
    assert f"plan: {plan_path}" in res.stdout
    plan = json.loads(plan_path.read_text())
    assert plan["failure"]["kind"] == "unknown-package"
    assert plan["command_preview"] == []


def _aegis_process(home: Path, apt_config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """The real CLI in its own process (``python -m aegis``)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AEGIS_")}
    env |= {
        "AEGIS_HOME": str(home),
        "AEGIS_APT_CONFIG": str(apt_config),
        "AEGIS_HOST_ID": "test-host",
        "PYTHONPATH": str(REPO),
    }
    return subprocess.run(
        [sys.executable, "-m", "aegis", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=REPO,
        timeout=180,
        check=False,
    )


@pytest.mark.parametrize("as_json", [False, True])
def test_failed_analysis_exits_3_through_the_real_cli(
    env: Path, apt_root: testrepo.AptRoot, as_json: bool
) -> None:
    extra = ("--json",) if as_json else ()
    proc = _aegis_process(
        env, apt_root.apt_config, "apt", "install", "nosuchpkg", "--plan", "--no-contents", *extra
    )
    assert proc.returncode == 3, (proc.stdout, proc.stderr)
    assert proc.stderr.startswith("Error: analysis failed (unknown-package)"), proc.stderr
    assert "Traceback" not in proc.stderr
    assert "hint: check the package names" in proc.stderr
    (rec,) = api.list_requests(load_config())
    (plan_file,) = load_config().plans_dir.glob("*.json")
    if as_json:
        doc = json.loads(proc.stdout)
        assert doc["request_id"] == rec.id
        assert doc["plan_path"] == str(plan_file)
        assert doc["plan"]["failure"]["kind"] == "unknown-package"
    else:
        assert f"plan: {plan_file}" in proc.stdout


def test_a_plan_whose_recording_fails_leaves_no_file(env: Path, apt_root: testrepo.AptRoot) -> None:
    """The store refuses the write after the plan file exists: the file goes, rc 7, said so."""
    cfg = load_config()
    api.list_requests(cfg)  # creates the store
    with sqlite3.connect(cfg.store_path) as db:
        db.execute(
            "CREATE TRIGGER refuse_history BEFORE INSERT ON history "
            "BEGIN SELECT RAISE(ABORT, 'disk quota exceeded'); END"
        )
    db.close()
    proc = _aegis_process(
        env, apt_root.apt_config, "apt", "install", "aegis-tool", "--plan", "--no-contents"
    )
    assert proc.returncode == 7, (proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stderr
    assert "the plan was not recorded, and " in proc.stderr
    assert " was removed" in proc.stderr
    assert not list(cfg.plans_dir.glob("*.json"))
    assert "plan: " not in proc.stdout
    with sqlite3.connect(cfg.store_path) as db:
        db.execute("DROP TRIGGER refuse_history")
    db.close()
    assert api.list_requests(cfg) == []


def test_update_plan_records_current_valid_until(
    tmp_path: Path, aegis_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from datetime import UTC, datetime, timedelta

    until = (datetime.now(UTC) + timedelta(days=7)).replace(microsecond=0)
    repo = testrepo.build_repo(tmp_path / "repo", valid_until=until)
    root = testrepo.make_root(tmp_path / "root", [repo])
    testrepo.apt_update(root)
    monkeypatch.setenv("AEGIS_APT_CONFIG", str(root.apt_config))
    res = run("apt", "update", "--plan", "--json")
    assert res.exit_code == 0, res.output
    doc = json.loads(res.output)
    assert doc["plan"]["command_preview"] == ["/usr/bin/apt-get", "update"]
    (ev,) = doc["plan"]["repositories"]
    assert ev["uri"] == repo.uri
    assert ev["valid_until"] == until.strftime("%Y-%m-%dT%H:%M:%SZ")
    assert not ev["expired"]
    human = run("apt", "update", "--plan")
    # Long temporary paths may fold the repository line; compare the words.
    assert f"Valid-Until {ev['valid_until']}" in " ".join(human.output.split())


@pytest.mark.parametrize("kind", ["missing", "fifo", "directory"])
def test_unusable_apt_config_fails_closed(
    tmp_path: Path, aegis_home: Path, monkeypatch: pytest.MonkeyPatch, kind: str
) -> None:
    """apt would only warn and plan the host's own configuration: Aegis refuses (exit 7)."""
    import os

    path = tmp_path / "apt.conf"
    if kind == "fifo":
        os.mkfifo(path)
    elif kind == "directory":
        path.mkdir()
    monkeypatch.setenv("AEGIS_APT_CONFIG", str(path))
    res = run("apt", "install", "aegis-tool", "--plan", "--no-contents")
    assert res.exit_code == 7, res.output
    assert res.stderr.startswith(f"Error: the configured apt configuration {path} is not a regular")
    assert api.list_requests(load_config()) == []
