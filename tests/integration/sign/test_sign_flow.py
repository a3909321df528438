"""``aegisctl approve`` and ``aegisctl sign`` against a real analysis of a throwaway root.

Each attack is refused with its reason and exit code, the request stays in
``policy`` and no execution plan is left behind.
"""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from freezegun import freeze_time

from aegis import api
from aegis.canonical import canonical_bytes
from aegis.cli.aegisctl import cli
from aegis.errors import TrustError
from aegis.model import Host, plan_hash
from aegis.sign.approvals import approval_bytes, build_approval
from aegis.sign.keys import load_signing_key
from aegis.sign.service import sign_request
from tests.conftest import FILES_ONLY, planned_debs


def _ctl(*args: str, input: str | None = None) -> Result:
    return CliRunner().invoke(cli, list(args), input=input)


def _approve(flow: Any, target: str | Path, *extra: str) -> Result:
    return _ctl(
        "approve",
        str(target),
        "--reason",
        "CHG-42 window",
        "--key",
        str(flow.approver_key),
        "--approver",
        "bob",
        *extra,
    )


def _sign(flow: Any, plan_path: Path, *extra: str) -> Result:
    return _ctl(
        "sign",
        "--plan",
        str(plan_path),
        "--key",
        str(flow.signer_key),
        "--signer",
        "ops1",
        "--json",
        *extra,
    )


def _assert_not_signed(flow: Any, request_id: str) -> None:
    assert api.get_request(flow.cfg, request_id).state == "policy"
    assert not list(flow.cfg.execution_plans_dir.glob("*.json"))


def test_approve_sign_verify(flow: Any) -> None:
    request_id, plan_path, decided = flow.to_policy(flow.analyze("aegis-tool"))
    assert decided.result.decision.value == "require-approval"
    approved = _approve(flow, plan_path)
    assert approved.exit_code == 0, approved.output
    plan_id = decided.result.plan_id
    approval_file = flow.cfg.approvals_dir / f"{plan_id}.bob.approval.json"
    assert f"approval: {approval_file}" in approved.stdout
    assert approval_file.is_file()
    kinds = [a.kind for a in api.request_artifacts(flow.cfg, request_id)]
    assert "approval" in kinds

    signed = _sign(flow, plan_path)
    assert signed.exit_code == 0, signed.output
    out = json.loads(signed.stdout)
    path = Path(out["path"])
    assert path == flow.cfg.execution_plans_dir / f"{out['execution_id']}.json"
    assert out["state"] == "signed"
    assert api.get_request(flow.cfg, request_id).state == "signed"
    _ref, stored = api.latest_artifact(flow.cfg, request_id, "execution-plan") or (None, b"")
    assert stored == path.read_bytes()
    ep = out["execution_plan"]
    assert ep["argv"][:3] == ["/usr/bin/apt-get", *FILES_ONLY]
    assert ep["argv"][-5:] == ["install", "--trivial-only", "--", *planned_debs(ep["plan"])]
    assert [(t["name"], t["sha256"]) for t in ep["targets"]] == [
        (p["package"], p["sha256"]) for p in ep["plan"]["provenance"]
    ]
    assert [a["approver_id"] for a in ep["approvals"]] == ["bob"]
    assert ep["policy"]["decision"] == "require-approval"
    assert ep["policy"]["controls"] == ["approval", "snapshot"]
    assert ep["host"]["machine_id"] == "test-host"
    assert ep["signer_public_key_hex"] == flow.signer_pub

    verified = _ctl("verify", "--execution-plan", str(path), "--public-key-hex", flow.signer_pub)
    assert verified.exit_code == 0, verified.output
    # Signing twice is a state conflict, not a second plan.
    again = _sign(flow, plan_path)
    assert again.exit_code == 6
    assert len(list(flow.cfg.execution_plans_dir.glob("*.json"))) == 1


def test_approve_by_request_id_and_passphrase_key(flow: Any, tmp_path: Path) -> None:
    from aegis.sign.keys import write_keypair

    request_id, plan_path, _ = flow.to_policy(flow.analyze("aegis-tool"))
    assert _approve(flow, request_id).exit_code == 0
    wrapped, pub = write_keypair(tmp_path / "w", "signer", b"pw-123", name="ops2")
    pf = tmp_path / "pass"
    pf.write_text("wrong\n")
    bad = _ctl(
        "sign",
        "--plan",
        str(plan_path),
        "--key",
        str(wrapped),
        "--signer",
        "ops2",
        "--passphrase-file",
        str(pf),
    )
    assert bad.exit_code == 4
    assert "wrong passphrase" in bad.stderr
    good = _ctl(
        "sign",
        "--plan",
        str(plan_path),
        "--key",
        str(wrapped),
        "--signer",
        "ops2",
        "--passphrase-stdin",
        "--json",
        input="pw-123\n",
    )
    assert good.exit_code == 0, good.output
    assert json.loads(good.stdout)["signer_public_key_hex"] == pub


def test_no_approval_requires_approval(flow: Any) -> None:
    request_id, plan_path, _ = flow.to_policy(flow.analyze("aegis-tool"))
    result = _sign(flow, plan_path)
    assert result.exit_code == 8
    assert "0 approval(s) count; policy requires 1" in result.stderr
    _assert_not_signed(flow, request_id)


def _drop_approval(flow: Any, plan: Any, decided: Any, key_path: Path, **kw: Any) -> None:
    args: dict[str, Any] = {
        "plan_id": plan.plan_id,
        "plan_hash": plan_hash(plan),
        "policy_hash": decided.path.read_bytes() and _sha(decided.path),
        "approver_id": "mallory",
        "role": "approver",
        "reason": "looks fine",
        "now": datetime.now(UTC),
        "expires_in": timedelta(hours=1),
        "key": load_signing_key(key_path),
    }
    args.update(kw)
    a = build_approval(**args)
    flow.cfg.approvals_dir.mkdir(parents=True, exist_ok=True)
    (flow.cfg.approvals_dir / f"{plan.plan_id}.mallory.approval.json").write_bytes(
        approval_bytes(a)
    )


def _sha(path: Path) -> str:
    from aegis.canonical import sha256_hex

    return sha256_hex(path.read_bytes())


def test_signer_own_approval_does_not_count(flow: Any) -> None:
    plan = flow.analyze("aegis-tool")
    request_id, plan_path, decided = flow.to_policy(plan)
    # Trusted as an approver too: it still never counts for the plan this key signs.
    (flow.cfg.keys_dir / "approvers/ops1.pub").write_text(flow.signer_pub)
    _drop_approval(flow, plan, decided, flow.signer_key)
    result = _sign(flow, plan_path)
    assert result.exit_code == 8
    assert "mallory: signer-key" in result.stderr
    _assert_not_signed(flow, request_id)
    # And approve refuses a signer key outright.
    refused = _ctl("approve", str(plan_path), "--reason", "x", "--key", str(flow.signer_key))
    assert refused.exit_code == 4
    assert "approvals need an approver key" in refused.stderr


@pytest.mark.parametrize(
    ("kw", "reason"),
    [({"plan_hash": "5" * 64}, "other-plan"), ({"policy_hash": "6" * 64}, "other-policy")],
    ids=["other-plan", "other-policy"],
)
def test_approval_for_something_else(flow: Any, kw: dict[str, str], reason: str) -> None:
    plan = flow.analyze("aegis-tool")
    request_id, plan_path, decided = flow.to_policy(plan)
    _drop_approval(flow, plan, decided, flow.approver_key, **kw)
    result = _sign(flow, plan_path)
    assert result.exit_code == 8
    assert f"mallory: {reason}" in result.stderr
    _assert_not_signed(flow, request_id)


def test_expired_approval(flow: Any) -> None:
    request_id, plan_path, _ = flow.to_policy(flow.analyze("aegis-tool"))
    assert _approve(flow, plan_path, "--expires-in", "1m").exit_code == 0
    with freeze_time(datetime.now(UTC) + timedelta(minutes=5)):
        result = _sign(flow, plan_path)
    assert result.exit_code == 8
    assert "bob: expired" in result.stderr
    _assert_not_signed(flow, request_id)


def _edited(flow: Any, plan: Any, **changes: Any) -> tuple[str, Path, Any]:
    """Someone in group aegis stores an edited plan as their own request."""
    return flow.to_policy(replace(plan, **changes))


def test_plan_edited_in_store_finding_deleted(flow: Any) -> None:
    plan = flow.analyze("aegis-hostile")
    assert plan.findings
    request_id, plan_path, decided = _edited(flow, plan, findings=(), signals=())
    assert decided.result.decision.value != "deny"
    assert _approve(flow, plan_path).exit_code == 0
    result = _sign(flow, plan_path)
    assert result.exit_code == 4, result.output
    assert "refused:rederivation" in result.stderr
    assert "findings" in result.stderr
    _assert_not_signed(flow, request_id)


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"host": Host("f" * 32, "db9")}, "host"),
        (
            {
                "command_preview": (
                    "/usr/bin/apt-get",
                    "install",
                    "--trivial-only",
                    "-o",
                    "APT::Get::AllowUnauthenticated=true",
                    "--",
                    "aegis-base=1.2",
                    "aegis-tool=2.0",
                )
            },
            "command_preview",
        ),
    ],
    ids=["other-host", "extra-o-option"],
)
def test_plan_edited_in_store(flow: Any, changes: dict[str, Any], field: str) -> None:
    request_id, plan_path, _ = _edited(flow, flow.analyze("aegis-tool"), **changes)
    assert _approve(flow, plan_path).exit_code == 0
    result = _sign(flow, plan_path)
    assert result.exit_code == 4, result.output
    assert "refused:rederivation" in result.stderr
    assert field in result.stderr
    _assert_not_signed(flow, request_id)


def _install_behind_the_plan(apt_root: Any) -> None:
    """A package appears in dpkg's status after the analysis: the state moved."""
    status = Path(apt_root.root) / "var/lib/dpkg/status"
    status.write_text(
        status.read_text()
        + (
            "Package: extra\nStatus: install ok installed\nVersion: 1\nArchitecture: all\n"
            "Maintainer: x <x@example.invalid>\nDescription: x\n\n"
        )
    )


def test_package_state_moved_is_stale(flow: Any, apt_root: Any) -> None:
    request_id, plan_path, _ = flow.to_policy(flow.analyze("aegis-tool"))
    assert _approve(flow, plan_path).exit_code == 0
    _install_behind_the_plan(apt_root)
    result = _sign(flow, plan_path)
    assert result.exit_code == 6, result.output
    assert "package state moved" in result.stderr
    assert "installed packages outside the delta changed" in result.stderr
    _assert_not_signed(flow, request_id)


def _sign_as_the_pass(flow: Any, plan_path: Path, analyzed: Any) -> Any:
    """``sign_request`` as aegis unattended calls it: with the analysis it ran itself."""
    return sign_request(
        flow.cfg,
        plan_path,
        None,
        key_path=flow.signer_key,
        signer_id="ops1",
        expires_in=timedelta(hours=1),
        now=datetime.now(UTC),
        passphrase=None,
        analyzed=analyzed,
    )


def test_the_signers_own_analysis_holds_an_edited_plan_to_it(flow: Any) -> None:
    """The unattended pass signs with its own analysis: an edit in the store is refused."""
    plan = flow.analyze("aegis-hostile")
    request_id, plan_path, _ = _edited(flow, plan, findings=(), signals=())
    assert _approve(flow, plan_path).exit_code == 0
    with pytest.raises(TrustError, match=r"refused:rederivation.*findings"):
        _sign_as_the_pass(flow, plan_path, plan)
    _assert_not_signed(flow, request_id)


def test_the_signers_own_analysis_is_not_run_again(flow: Any, apt_root: Any) -> None:
    """With its own analysis the signer runs no second one: a moved state is aegisd's to find.

    Here the state moves after the analysis: ``aegisctl sign`` (which analyses again)
    refuses it as stale (test_package_state_moved_is_stale), the pass's signature binds the
    state it analyzed, and aegisd's re-derivation refuses it
    (tests/integration/execute/test_apply.py::test_package_state_moved_after_signing_refused).
    """
    plan = flow.analyze("aegis-tool")
    request_id, plan_path, _ = flow.to_policy(plan)
    assert _approve(flow, plan_path).exit_code == 0
    _install_behind_the_plan(apt_root)
    signed = _sign_as_the_pass(flow, plan_path, plan)
    assert signed.execution_plan.plan.package_state_hash == plan.package_state_hash
    assert api.get_request(flow.cfg, request_id).state == "signed"


def test_denied_request_is_never_signed(flow: Any) -> None:
    request_id, plan_path, decided = flow.to_policy(flow.analyze("aegis-hostile"))
    assert decided.result.decision.value == "deny"
    result = _sign(flow, plan_path)
    assert result.exit_code == 5
    assert api.get_request(flow.cfg, request_id).state == "denied"
    assert _approve(flow, plan_path).exit_code == 5


def test_policy_relabelled_allow(flow: Any) -> None:
    request_id, plan_path, decided = flow.to_policy(flow.analyze("aegis-tool"))
    doc = json.loads(decided.path.read_bytes())
    doc["decision"] = "allow"
    doc["controls"] = {"approval": {"count": 0, "roles": []}, "snapshot": False}
    decided.path.write_bytes(canonical_bytes(doc))
    result = _sign(flow, plan_path, "--policy", str(decided.path))
    assert result.exit_code == 4
    assert "policy hash mismatch" in result.stderr
    _assert_not_signed(flow, request_id)


def test_wrong_file_as_policy_result(flow: Any, tmp_path: Path) -> None:
    """An operator at 3 a.m. passes the plan (or garbage) as --policy: a trust failure that
    names the mix-up and the way out, never a parse of the wrong document."""
    request_id, plan_path, _ = flow.to_policy(flow.analyze("aegis-tool"))
    garbage = tmp_path / "garbage.json"
    garbage.write_bytes(b"\x00\xff" * 64)
    for wrong in (plan_path, garbage):
        result = _sign(flow, plan_path, "--policy", str(wrong))
        assert result.exit_code == 4, result.output
        assert "another file, or this one changed after the decision" in result.stderr
        assert "omit --policy" in result.stderr
        assert result.stdout == ""
    _assert_not_signed(flow, request_id)


def test_policy_changed_since_decision(flow: Any) -> None:
    request_id, plan_path, _ = flow.to_policy(flow.analyze("aegis-tool"))
    assert _approve(flow, plan_path).exit_code == 0
    text = flow.cfg.policy_path.read_text().replace("count = 1", "count = 2", 1)
    flow.cfg.policy_path.write_text(text)
    result = _sign(flow, plan_path)
    assert result.exit_code == 6, result.output
    assert "is not current" in result.stderr
    _assert_not_signed(flow, request_id)


def test_stale_plan_and_future_plan(flow: Any) -> None:
    request_id, plan_path, _ = flow.to_policy(flow.analyze("aegis-tool"))
    assert _approve(flow, plan_path).exit_code == 0
    with freeze_time(datetime.now(UTC) + timedelta(hours=25)):
        late = _sign(flow, plan_path)
    assert late.exit_code == 6
    assert "older than" in late.stderr
    with freeze_time(datetime.now(UTC) - timedelta(hours=2)):
        early = _sign(flow, plan_path)
    assert early.exit_code == 4
    assert "in the future" in early.stderr
    _assert_not_signed(flow, request_id)


def test_ttl_capped(flow: Any) -> None:
    _, plan_path, _ = flow.to_policy(flow.analyze("aegis-tool"))
    assert _approve(flow, plan_path).exit_code == 0
    result = _sign(flow, plan_path, "--expires-in", "25h")
    assert result.exit_code == 3
    assert "at most" in result.stderr


def test_binding_agrees_with_aegisd(flow: Any) -> None:
    """The signer's policy binding is exactly what aegisd computes from the same result."""
    from aegis.execute.apply import binding_from_result
    from aegis.policy.result import result_hash
    from aegis.sign.execution_plan import policy_binding

    _, _, decided = flow.to_policy(flow.analyze("aegis-tool"))
    result = decided.result
    assert policy_binding(result, _sha(decided.path)) == binding_from_result(result)
    assert _sha(decided.path) == result_hash(result)


def test_resume_expires_signed_and_stale_requests(flow: Any) -> None:
    signed_id, plan_path, _ = flow.to_policy(flow.analyze("aegis-tool"))
    assert _approve(flow, plan_path).exit_code == 0
    assert _sign(flow, plan_path, "--expires-in", "10m").exit_code == 0
    waiting_id, _, _ = flow.to_policy(flow.analyze("aegis-benign"))
    now = datetime.now(UTC)
    api.resume(flow.cfg, "monitor", now + timedelta(minutes=5))
    assert api.get_request(flow.cfg, signed_id).state == "signed"
    assert api.get_request(flow.cfg, waiting_id).state == "policy"
    api.resume(flow.cfg, "monitor", now + timedelta(minutes=11))
    assert api.get_request(flow.cfg, signed_id).state == "expired"
    assert api.get_request(flow.cfg, waiting_id).state == "policy"
    api.resume(flow.cfg, "monitor", now + timedelta(hours=25))
    assert api.get_request(flow.cfg, waiting_id).state == "expired"
    history = api.get_request_detail(flow.cfg, signed_id).history
    assert "expired at" in json.dumps([h.facts for h in history])


def test_reevaluation_says_deny(flow: Any) -> None:
    """Stored decision require-approval; the policy in force now denies: never signed."""
    request_id, plan_path, _ = flow.to_policy(flow.analyze("aegis-tool"))
    assert _approve(flow, plan_path).exit_code == 0
    with flow.cfg.policy_path.open("a") as f:
        f.write('\n[rules."apt.upgrade-clean"]\neffect = "deny"\n')
    result = _sign(flow, plan_path)
    assert result.exit_code == 5, result.output
    assert "re-evaluated now says deny" in result.stderr
    _assert_not_signed(flow, request_id)
