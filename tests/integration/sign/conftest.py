"""A throwaway apt root, an AEGIS_HOME whose policy approves the test repository,
signer and approver keys, and helpers that walk a request to ``policy``."""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from aegis.config import Config, load_config
from aegis.model import Intent, Operation, Plan, Tool

REPO_ROOT = Path(__file__).resolve().parents[3]


@dataclass
class Flow:
    """One signing test's world."""

    cfg: Config
    signer_key: Path
    signer_pub: str
    approver_key: Path
    approver_pub: str

    def analyze(self, *targets: str, now: datetime | None = None) -> Plan:
        from aegis.ecosystems.apt.plan import analyze_apt

        intent = Intent(
            Tool.APT, Operation.INSTALL, tuple(targets), "tester", "2026-11-26T11:00:00Z"
        )
        return analyze_apt(self.cfg, intent, now or datetime.now(UTC))

    def to_policy(self, plan: Plan, *, now: datetime | None = None) -> tuple[str, Path, Any]:
        """Submit ``plan``, record a skipped review, decide; return (request, plan path, result)."""
        from aegis import api
        from aegis.policy.run import decide
        from aegis.review.record import review_bytes, skipped_review

        planned = api.submit_plan(self.cfg, plan, "tester")
        review = skipped_review(
            plan, "review skipped by configuration (--no-review)", plan.created_at
        )
        api.advance(
            self.cfg,
            planned.request_id,
            "review",
            "tester",
            artifact_kind="review",
            artifact=review_bytes(review),
        )
        decided = decide(self.cfg, planned.plan_path, now=now or datetime.now(UTC), actor="tester")
        return planned.request_id, planned.plan_path, decided


def _policy_text(repo: Any) -> str:
    default = (REPO_ROOT / "aegis/policy/default_policy.toml").read_text()
    return default + (
        f'\n[[sources]]\nname = "test"\nuri = "{repo.uri}"\nsuite = "{repo.suite}"\n'
        f'component = "main"\nsigner_fingerprint = "{repo.fingerprint}"\n'
        'packages = ["aegis-*"]\n'
    )


@pytest.fixture
def flow(
    aegis_home: Path, apt_root: Any, test_repo: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Flow:
    from aegis.sign.keys import write_keypair

    monkeypatch.setenv("AEGIS_APT_CONFIG", str(apt_root.apt_config))
    monkeypatch.setenv("AEGIS_DPKG_ROOT", str(apt_root.root))
    monkeypatch.delenv("AEGIS_KEY_PASSPHRASE", raising=False)
    cfg = load_config()
    cfg.etc_dir.mkdir(parents=True, exist_ok=True)
    cfg.policy_path.write_text(_policy_text(test_repo))
    private = tmp_path / "private"
    sk, spub = write_keypair(private, "signer", name="ops1")
    ak, apub = write_keypair(private, "approver", name="bob")
    approvers = cfg.keys_dir / "approvers"
    approvers.mkdir(parents=True)
    (approvers / "bob.pub").write_text(apub + "\n")
    assert os.environ["AEGIS_HOME"] == str(aegis_home)
    return Flow(cfg, sk, spub, ak, apub)
