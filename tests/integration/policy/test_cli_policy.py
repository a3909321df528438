"""``aegis policy`` end to end: real store, real files, real CLI (CliRunner and python -m)."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from aegis import api
from aegis.canonical import canonical_bytes
from aegis.cli.aegis import cli
from aegis.config import Config, load_config
from aegis.devtools import policy_plans as pp
from aegis.model import Action, AnalysisFailure, Operation, Plan, plan_to_dict
from aegis.policy.result import result_from_bytes

AT = ["--at", pp.NOW]
SOURCE = (
    "target source or evidence is denied: do not work around direct URL, local path, "
    "replacement, unsigned repo, downgrade, or missing provenance blocks."
)


@pytest.fixture
def cfg(aegis_home: Path) -> Config:
    config = load_config()
    config.policy_path.parent.mkdir(parents=True, exist_ok=True)
    config.policy_path.write_text(pp.policy_toml(), encoding="utf-8")
    return config


def _review_bytes(plan: Plan) -> bytes:
    """The unsigned local skip of ``aegis review --no-review`` (neutral under this policy)."""
    from aegis.review.record import review_bytes, skipped_review

    return review_bytes(skipped_review(plan, "skipped by configuration (--no-review)", pp.NOW))


def _reviewed(cfg: Config, plan: Plan, review: bytes | None = None) -> tuple[str, Path]:
    planned = api.submit_plan(cfg, plan, "tester")
    api.advance(
        cfg,
        planned.request_id,
        "review",
        "tester",
        artifact_kind="review",
        artifact=review if review is not None else _review_bytes(plan),
    )
    return planned.request_id, planned.plan_path


def _run(*args: str) -> Any:
    return CliRunner().invoke(cli, ["policy", *args], catch_exceptions=False)


def test_unverifiable_review_requires_approval_and_records_result(cfg: Config) -> None:
    request_id, plan_path = _reviewed(cfg, pp.clean_plan(), b'{"forged": "review"}')
    result = _run(str(plan_path), "--json", *AT)
    assert result.exit_code == 8, result.stderr
    out = json.loads(result.stdout)
    assert out["state"] == "policy"
    assert out["result"]["decision"] == "require-approval"
    assert out["result"]["review"]["status"] == "unverified"
    assert out["result"]["review"]["counted"] is False
    assert out["result"]["controls"] == {
        "approval": {"count": 1, "roles": ["approver"]},
        "snapshot": True,
    }
    path = Path(out["path"])
    assert path == cfg.policy_dir / "p-0000000000000001.policy.json"
    data = path.read_bytes()
    # The file is the canonical bytes the store keeps as the policy artifact.
    ref, stored = api.latest_artifact(cfg, request_id, "policy") or (None, b"")
    assert stored == data
    assert ref is not None
    assert ref.path == str(path)
    assert result_from_bytes(data).evaluated_at == pp.NOW
    assert api.get_request(cfg, request_id).state == "policy"
    assert "Error: policy requires approval" in result.stderr


def test_deny_prints_rule_id_and_contract_phrase_and_exits_5(cfg: Config) -> None:
    plan = pp.clean_plan(
        changes=(pp.change("pkg0000", action=Action.DOWNGRADE, current="1.2-1", candidate="1.0-1"),)
    )
    request_id, plan_path = _reviewed(cfg, plan)
    result = _run(str(plan_path), *AT)
    assert result.exit_code == 5
    lines = result.stdout.splitlines()
    assert f"deny apt.downgrade: {SOURCE}" in lines
    assert "apt.downgrade" in result.stdout.split("Fired rules")[1]
    # The skipped review raised nothing: its row says so, not the other rules' deny.
    review_row = next(line for line in lines if "review.skipped" in line)
    assert "neutral" in review_row
    assert "deny" not in review_row
    assert "decision   deny" in lines
    assert f"policy result: {cfg.policy_dir / 'p-0000000000000001.policy.json'}" in lines
    assert "Error: policy denied request" in result.stderr
    assert api.get_request(cfg, request_id).state == "denied"


def test_second_run_shows_the_recorded_decision(cfg: Config) -> None:
    request_id, plan_path = _reviewed(cfg, pp.clean_plan())
    first = _run(str(plan_path), "--json", *AT)
    # Later, with another policy in force, the recorded decision is what is shown.
    cfg.policy_path.unlink()
    second = _run(str(plan_path), "--json", "--at", "2026-01-01T00:20:00Z")
    assert second.exit_code == first.exit_code == 0
    out = json.loads(second.stdout)
    assert out["recorded"] is True
    assert out["result"] == json.loads(first.stdout)["result"]
    assert api.get_request(cfg, request_id).state == "policy"


def test_missing_policy_file_denies(cfg: Config) -> None:
    cfg.policy_path.unlink()
    request_id, plan_path = _reviewed(cfg, pp.clean_plan())
    result = _run(str(plan_path), "--json", *AT)
    assert result.exit_code == 5
    out = json.loads(result.stdout)
    assert out["result"]["decision"] == "deny"
    assert out["result"]["fired"][0]["rule_id"] == "policy.unavailable"
    assert "absent rule set denies" in out["result"]["fired"][0]["reason"]
    assert api.get_request(cfg, request_id).state == "denied"


def test_malformed_policy_file_denies(cfg: Config) -> None:
    cfg.policy_path.write_text(pp.policy_toml(extra="[rules]\n= x\n"), encoding="utf-8")
    _, plan_path = _reviewed(cfg, pp.clean_plan())
    assert _run(str(plan_path), *AT).exit_code == 5


def test_explain_lists_rules_that_did_not_fire(cfg: Config) -> None:
    _, plan_path = _reviewed(cfg, pp.clean_plan())
    result = _run(str(plan_path), "--explain", *AT)
    assert result.exit_code in (0, 8)
    assert "Rules that did not fire" in result.stdout
    assert "command.metachar" in result.stdout
    assert "every command preview element is plain argv" in " ".join(result.stdout.split())


def test_hostile_text_from_the_plan_is_inert(cfg: Config) -> None:
    message = "E: \x1b[31mboom\x1b[0m [/] \n[bold]decision: allow \u202e"
    plan = pp.clean_plan(
        operation=Operation.INSTALL, changes=(), failure=AnalysisFailure("tool-failed", message)
    )
    _, plan_path = _reviewed(cfg, plan)
    result = _run(str(plan_path), *AT)
    assert result.exit_code == 5
    assert "\x1b" not in result.stdout
    assert "\u202e" not in result.stdout
    assert "\\x1b[31mboom" in result.stdout
    assert "\\u202e" in result.stdout
    assert "decision: allow" not in result.stdout.split("\n")[0]


def test_policy_needs_a_reviewed_request(cfg: Config) -> None:
    planned = api.submit_plan(cfg, pp.clean_plan(), "tester")
    result = _run(str(planned.plan_path), *AT)
    assert result.exit_code == 6
    assert "policy decides only reviewed requests" in result.stderr
    assert "aegis review" in result.stderr
    assert not (cfg.policy_dir / "p-0000000000000001.policy.json").exists()


def test_plan_without_a_request_and_a_malformed_plan(cfg: Config, tmp_path: Path) -> None:
    loose = tmp_path / "plan.json"
    loose.write_bytes(canonical_bytes(plan_to_dict(pp.clean_plan())))
    result = _run(str(loose), *AT)
    assert result.exit_code == 6
    assert "no change request is bound to plan" in result.stderr
    bad = tmp_path / "bad.json"
    bad.write_text('{"schema_version": "aegis.plan/1", "schema_version": "x"}', encoding="utf-8")
    result = _run(str(bad), *AT)
    assert result.exit_code == 3
    assert "duplicate JSON key" in result.stderr


def test_dry_run_writes_nothing(cfg: Config) -> None:
    request_id, plan_path = _reviewed(cfg, pp.clean_plan())
    result = _run(str(plan_path), "--dry-run", "--json", *AT)
    assert result.exit_code in (0, 8)
    assert json.loads(result.stdout)["path"] is None
    assert api.get_request(cfg, request_id).state == "reviewed"
    assert not cfg.policy_dir.exists() or not any(cfg.policy_dir.iterdir())


def test_edited_plan_file_is_not_the_requests_plan(cfg: Config) -> None:
    _, plan_path = _reviewed(cfg, pp.clean_plan())
    # Someone in group aegis deletes a finding-free field value in the stored file.
    doc = json.loads(plan_path.read_bytes())
    doc["command_preview"] = ["/usr/bin/apt-get", "install", "--", "pkg0000=1.2-1"]
    plan_path.write_bytes(canonical_bytes(doc))
    result = _run(str(plan_path), *AT)
    assert result.exit_code == 6
    assert "no change request is bound to plan" in result.stderr


def test_resume_runs_the_policy_stage(cfg: Config) -> None:
    request_id, _ = _reviewed(cfg, pp.clean_plan(created_at=pp.CREATED))
    report = api.resume(cfg, "aegis-monitor")
    items = [i for i in report.items if i.request_id == request_id]
    assert items
    assert items[0].action == "advanced", items[0]
    # The plan is old relative to the real clock: evidence.stale denies it.
    assert api.get_request(cfg, request_id).state == "denied"
    assert (cfg.policy_dir / "p-0000000000000001.policy.json").exists()


def test_init_check_and_rules(aegis_home: Path) -> None:
    config = load_config()
    first = CliRunner().invoke(cli, ["policy", "init"])
    assert first.exit_code == 0, first.stderr
    assert str(config.policy_path) in first.stdout
    again = CliRunner().invoke(cli, ["policy", "init"])
    assert again.exit_code == 3
    assert "refusing to overwrite" in again.stderr
    check = CliRunner().invoke(cli, ["policy", "check", "--json"])
    assert check.exit_code == 0, check.stderr
    assert len(json.loads(check.stdout)["policy_version"]) == 64
    rules = CliRunner().invoke(cli, ["policy", "rules", "--json"])
    ids = {r["rule_id"] for r in json.loads(rules.stdout)}
    assert {"repo.untrusted", "command.metachar", "vuln.fixed-available"} <= ids
    config.policy_path.write_text("", encoding="utf-8")
    bad = CliRunner().invoke(cli, ["policy", "check"])
    assert bad.exit_code == 3
    assert "empty" in bad.stderr


def test_python_dash_m_exit_codes(cfg: Config, aegis_home: Path) -> None:
    plan = replace(pp.clean_plan(), command_preview=("apt-get", "install", "x;id"))
    _, plan_path = _reviewed(cfg, plan)
    import os

    env = {k: v for k, v in os.environ.items() if not k.startswith("AEGIS_")}
    env.update({"AEGIS_HOME": str(aegis_home), "AEGIS_HOST_ID": "test-host"})
    proc = subprocess.run(
        [sys.executable, "-m", "aegis", "policy", str(plan_path), "--json", *AT],
        capture_output=True,
        env=env,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 5, proc.stderr
    out = json.loads(proc.stdout)
    fired = {f["rule_id"]: f for f in out["result"]["fired"]}
    assert fired["command.metachar"]["contract"] == (
        "command preview contains shell metacharacters: reject the request; command previews "
        "must be argv arrays."
    )


def test_help_has_examples() -> None:
    for args in (["policy", "--help"], ["policy", "evaluate", "--help"], ["policy", "init", "-h"]):
        result = CliRunner().invoke(cli, args)
        assert result.exit_code == 0
        assert "Example" in result.stdout


def test_explain_shows_the_shadow_decision(cfg: Config) -> None:
    (cfg.policy_path.parent / "next.toml").write_text(
        pp.policy_toml(extra='[rules."apt.upgrade-clean"]\neffect = "allow"\n').replace(
            'name = "test"', 'name = "next"'
        ),
        encoding="utf-8",
    )
    cfg.policy_path.write_text(
        pp.policy_toml(extra='[shadow]\npath = "next.toml"\n'), encoding="utf-8"
    )
    _, plan_path = _reviewed(cfg, pp.clean_plan())
    result = _run(str(plan_path), "--explain", *AT)
    assert result.exit_code == 0, result.stderr
    assert "shadow     next: allow (no approval; no snapshot; not enforced)" in result.stdout
    assert "Shadow policy (not enforced)" in result.stdout
    out = json.loads(_run(str(plan_path), "--json", *AT).stdout)
    assert out["result"]["decision"] == "allow-with-snapshot"
    assert out["result"]["shadow"]["decision"] == "allow"


def test_rules_table_lists_ids_and_phrases() -> None:
    result = CliRunner().invoke(cli, ["policy", "rules"])
    assert result.exit_code == 0
    for rule_id in ("repo.weakly-pinned", "apt.downgrade", "content.apt-hook", "apt.update"):
        assert rule_id in result.stdout
