"""The booted-host checks, imported by test_bookworm.py and test_trixie.py (one per release).

A real Debian host, installed and used as packaging/README.md says. The scenario fixture
(tests/system/conftest.py) boots the module's release once with systemd-nspawn, installs
Aegis from a git clone with packaging/install-native.sh (wheelhouse built here), and walks
the operator guide: readiness checks and a plan as an agent in group aegis, a user outside
the group, the operator's approve/sign/apply through the real aegisd.socket, the monitor.
Each test asserts one recorded step (or asks the still-running host one question).
"""

from __future__ import annotations

import json
import re

import pytest

from tests.system.booted import Result
from tests.system.scenario import Scenario

AEGISD_MAX_EXPOSURE = 7.0
"""`systemd-analyze security` exposure of aegisd.service (8.7 before its hardening)."""


def _ok(result: Result) -> None:
    assert result.returncode == 0, str(result)


def _json(result: Result) -> dict[str, object]:
    data = json.loads(result.stdout)
    assert isinstance(data, dict), str(result)
    return data


# -- install -----------------------------------------------------------------------------


def test_install_native_installs_in_one_command(scenario: Scenario) -> None:
    _ok(scenario.r["install"])
    assert "installed: /opt/aegis" in scenario.r["install"].stdout


def test_install_native_is_idempotent(scenario: Scenario) -> None:
    again = scenario.r["install_again"]
    _ok(again)
    assert "(all installed)" in again.stdout, str(again)


def test_installer_installs_what_aegis_runs(scenario: Scenario) -> None:
    verifier = {"bookworm": "gpgv", "trixie": "sqv"}[scenario.host.release]
    debs = ["python3-venv", "dpkg-repack", "python3-nacl", verifier]
    result = scenario.host.run("dpkg-query -W -f='${Package} ${Status}\\n' " + " ".join(debs))
    _ok(result)
    for deb in debs:
        assert f"{deb} install ok installed" in result.stdout, str(result)
    # The policy helper's Ed25519 comes from Debian's python3-nacl on the system Python.
    _ok(scenario.host.run("/usr/bin/python3 -c 'import nacl.signing'"))


def test_no_unit_failed_after_install(scenario: Scenario) -> None:
    failed = scenario.r["failed_after_install"]
    _ok(failed)
    assert failed.stdout.strip() == "", str(failed)


def test_aegisd_hardening_scores_below_threshold_on_this_systemd(scenario: Scenario) -> None:
    # systemd 252 prints "8.7 EXPOSED", 257 "0.9 SAFE" with other glyphs: compare numbers.
    result = scenario.host.run("systemd-analyze security --no-pager aegisd.service")
    match = re.search(r"Overall exposure level for aegisd\.service: (\d+\.\d+)", result.stdout)
    assert match, str(result)
    assert float(match.group(1)) <= AEGISD_MAX_EXPOSURE, str(result)


# -- the agent (group aegis) -------------------------------------------------------------


def test_agent_verify_native_is_ready(scenario: Scenario) -> None:
    result = scenario.r["agent_verify_native"]
    _ok(result)
    assert result.stdout.rstrip().endswith("verify-native: ready"), str(result)


def test_agent_systemctl_status_shows_no_failed_unit(scenario: Scenario) -> None:
    result = scenario.r["agent_status"]
    # systemctl status exits 3 when a listed unit is not running: the oneshot monitor
    # is inactive between passes, which is its healthy state.
    assert result.returncode in (0, 3), str(result)
    assert "failed" not in result.stdout, str(result)
    assert result.stdout.count("Active: active (running)") == 2, str(result)  # the daemons
    assert "Active: active (waiting)" in result.stdout, str(result)  # the timer


def test_agent_doctor_passes(scenario: Scenario) -> None:
    _ok(scenario.r["agent_doctor"])


def test_root_doctor_passes(request: pytest.FixtureRequest, scenario: Scenario) -> None:
    # dpkg-repack and the verifier come from install-native.sh, not from the machine.
    _ok(scenario.r["root_doctor"])


def test_root_verify_native_from_the_checkout_is_ready(scenario: Scenario) -> None:
    result = scenario.r["root_verify_native"]
    _ok(result)
    assert result.stdout.rstrip().endswith("verify-native: ready"), str(result)


def test_agent_audit_verify_passes_before_any_change(scenario: Scenario) -> None:
    _ok(scenario.r["agent_audit_verify_empty"])


def test_agent_plan_is_recorded(scenario: Scenario) -> None:
    plan = scenario.r["svc_plan"]
    _ok(plan)
    request_id = _json(plan)["request_id"]
    listed = _json(scenario.r["svc_requests"])["requests"]
    assert isinstance(listed, list)
    assert any(r["id"] == request_id for r in listed), str(scenario.r["svc_requests"])


def test_agent_review_is_recorded(scenario: Scenario) -> None:
    review = scenario.r["svc_review"]
    _ok(review)
    # No model is configured: aegis-reviewd signs a "skipped" review, and it is stored.
    assert _json(review)["state"] == "reviewed", str(review)


def test_agent_policy_does_not_deny_an_approved_source(
    request: pytest.FixtureRequest, scenario: Scenario
) -> None:
    policy = scenario.r["svc_policy"]
    # 0 allow, 8 approval required: both let the operator go on; 5 is a deny.
    assert policy.returncode in (0, 8), str(policy)
    result = _json(policy)["result"]
    assert isinstance(result, dict)
    assert result["decision"] != "deny", str(policy)
    assert _json(policy)["state"] == "policy", str(policy)  # the decision is stored


# -- a user outside group aegis ----------------------------------------------------------


JOIN_HINT = re.compile(
    r"(not in|join|member of|add \S+ to) (the )?group aegis|adduser \S+ aegis", re.I
)
"""The hint a user outside group aegis gets: to become a member (not "writable by ...")."""


def test_agent_mcp_session_plans_reviews_and_decides(scenario: Scenario) -> None:
    # The same chain through aegis mcp, as the agent, with the SDK's own client.
    result = scenario.r["agent_mcp"]
    _ok(result)
    doc = _json(result)
    assert set(doc["tools"]) == {
        "plan",
        "review",
        "policy",
        "show",
        "requests",
        "explain_rule",
        "guard_check",
        "doctor",
        "audit_verify",
        "sources",
    }
    assert doc["plan_error"] is False, str(result)
    assert doc["review_state"] == "reviewed", str(result)
    assert doc["decision"] in ("allow", "allow-with-snapshot", "require-approval"), str(result)
    assert doc["state"] == "policy", str(result)


def test_outsider_doctor_exits_7_with_a_hint(scenario: Scenario) -> None:
    result = scenario.r["outsider_doctor"]
    assert result.returncode == 7, str(result)
    assert JOIN_HINT.search(result.stderr), str(result)
    assert "Traceback" not in result.stderr + result.stdout


def test_outsider_plan_exits_7_with_a_hint(scenario: Scenario) -> None:
    result = scenario.r["outsider_plan"]
    assert result.returncode == 7, str(result)
    assert JOIN_HINT.search(result.stderr), str(result)


def test_outsider_verify_native_cannot_inspect_not_missing(scenario: Scenario) -> None:
    result = scenario.r["outsider_verify_native"]
    assert result.returncode == 7, str(result)
    assert "cannot inspect" in result.stdout, str(result)
    assert "missing" not in result.stdout, str(result)
    assert "FAIL" not in result.stdout, str(result)


# -- the operator (aegis-apply) ----------------------------------------------------------


def test_operator_approves_and_signs(request: pytest.FixtureRequest, scenario: Scenario) -> None:
    _ok(scenario.r["svc_approve"])
    _ok(scenario.r["svc_sign"])


def test_operator_apply_installs_a_package_whose_postinst_starts_a_service(
    request: pytest.FixtureRequest, scenario: Scenario
) -> None:
    # aegisd's sandbox (RestrictAddressFamilies, PrivateIPC, syscall filters ...) must
    # still let dpkg run a postinst that enables and starts a unit through systemd.
    _ok(scenario.r["svc_apply"])
    assert scenario.r["svc_installed"].stdout.startswith("install ok installed 1.0")
    assert scenario.r["svc_active"].stdout.strip() == "active", str(scenario.r["svc_active"])
    assert scenario.r["svc_enabled"].stdout.strip() == "enabled", str(scenario.r["svc_enabled"])


def test_audit_log_verifies_for_the_agent_after_the_apply(scenario: Scenario) -> None:
    _ok(scenario.r["agent_audit_verify"])


def _monitor_state(result: Result) -> dict[str, str]:
    return dict(line.split("=", 1) for line in result.stdout.split())


def test_monitor_pass_leaves_the_service_inactive(scenario: Scenario) -> None:
    _ok(scenario.r["monitor_start"])
    state = _monitor_state(scenario.r["monitor_state"])
    assert state == {"ActiveState": "inactive", "Result": "success"}, state


def test_monitor_pass_succeeds_while_reviewd_is_stopped(scenario: Scenario) -> None:
    _ok(scenario.r["monitor_start_reviewd_down"])
    state = _monitor_state(scenario.r["monitor_state_reviewd_down"])
    assert state == {"ActiveState": "inactive", "Result": "success"}, state


def test_monitor_reconciles_an_apply_whose_client_was_killed(scenario: Scenario) -> None:
    killed = scenario.r["slow_apply_killed"]
    assert killed.stdout.strip().startswith("killed"), str(killed)
    _ok(scenario.r["slow_release"])
    monitor = scenario.r["slow_monitor"]
    assert monitor.returncode == 0, f"{monitor}\n{scenario.r['slow_monitor_log']}"
    shown = _json(scenario.r["slow_reconciled"])["request"]
    assert isinstance(shown, dict)
    assert shown.get("state") in ("applied", "audited"), str(scenario.r["slow_reconciled"])


# -- Debian's own archive ----------------------------------------------------------------


def test_debian_archive_plan_is_not_denied(
    request: pytest.FixtureRequest, scenario: Scenario
) -> None:
    _ok(scenario.r["debian_approve_sources"])
    _ok(scenario.r["debian_plan"])
    policy = scenario.r["debian_policy"]
    assert policy.returncode in (0, 8), str(policy)


# -- out-of-band changes and automatic upgrades (docs/operator-guide.md 10 and 11) --------


def test_changes_behind_aegis_are_found_within_one_pass(scenario: Scenario) -> None:
    _ok(scenario.r["oob_changes"])
    drift = _json(scenario.r["oob_drift"])
    found = {(d["package"], d["action"], d["tool"]) for d in drift["recorded"]}  # type: ignore[attr-defined, index]
    assert ("aegis-oob", "install", "dpkg") in found, str(scenario.r["oob_drift"])
    assert ("aegis-oob", "remove", "dpkg") in found
    assert ("aegis-oob", "install", "apt-get") in found
    assert ("aegis-oob", "remove", "apt-get") in found
    by_apt = [d for d in drift["recorded"] if d["tool"] == "apt-get" and d["action"] == "install"]  # type: ignore[attr-defined, index]
    assert "install -y -q aegis-oob" in by_apt[0]["commandline"]
    assert by_apt[0]["user"] == "ops"
    # Aegis's own applies (aegis-svc, aegis-slow) are never reported.
    assert not {p for p, _, _ in found} & {"aegis-svc", "aegis-slow"}
    assert 'aegis_out_of_band_changes_total{tool="dpkg"} 2' in scenario.r["oob_metrics"].stdout


def test_unattended_timer_and_root_only_automation_key(scenario: Scenario) -> None:
    result = scenario.r["unattended_timer"]
    _ok(result)
    assert "enabled" in result.stdout
    assert "700 root /etc/aegis/keys/automation\n" in result.stdout
    assert "600 root /etc/aegis/keys/automation/automation.key" in result.stdout


def test_one_timer_pass_installs_the_security_fix_with_no_human(scenario: Scenario) -> None:
    _ok(scenario.r["unattended_prepare"])
    run = scenario.r["unattended_pass"]
    assert "Result=success" in run.stdout, str(run)
    assert '"status":"applied"' in run.stdout, str(run)
    assert scenario.r["unattended_fix"].stdout.strip() == "1.1", str(scenario.r["unattended_fix"])


def test_a_plan_outside_the_scope_signed_with_the_automation_key_is_refused(
    scenario: Scenario,
) -> None:
    _ok(scenario.r["forged_plan"])  # the agent's plan: a failure there names itself
    _ok(scenario.r["forged_sign"])
    forged = scenario.r["forged_apply"]
    assert forged.returncode == 4, str(forged)
    assert "refused:automation-scope" in forged.stderr + forged.stdout


# -- health probes after an apply (docs/operator-guide.md "Health probes") -------------------


def test_an_upgrade_that_leaves_its_unit_failed_is_rolled_back_automatically(
    scenario: Scenario,
) -> None:
    _ok(scenario.r["web_prepare"])
    _ok(scenario.r["web_plan"])
    applied = scenario.r["web_apply"]
    assert applied.returncode == 9, str(applied)
    assert "rolled back" in applied.stderr, str(applied)
    assert scenario.r["web_version"].stdout.strip() == "1.0", str(scenario.r["web_version"])
    assert scenario.r["web_active"].stdout.strip() == "active", str(scenario.r["web_active"])
    shown = _json(scenario.r["web_request"])["request"]
    assert isinstance(shown, dict)
    assert shown.get("state") == "rolled_back", str(scenario.r["web_request"])
    audit = scenario.r["web_audit"].stdout
    kinds = [line.split(" ", 1)[0] for line in audit.splitlines()]
    assert kinds[-2:] == ["rollback-started", "rollback-finished"], audit
    assert "verify-started" in kinds, audit
    assert "unit:aegis-web.service" in audit, audit
    assert '"cause": "probe-failed"' in audit, audit
