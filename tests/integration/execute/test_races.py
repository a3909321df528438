"""Two clients, one execution id: exactly one run, the other a clean refusal.

Each pair is a real signed request (analysed, decided, approved and signed through the
library the CLIs call) submitted by two clients at once to a real aegisd, which installs
into a throwaway root. The request must end ``audited`` with one install, never
``interrupted`` or ``failed``; the losing client is refused with exit 6 (a lost race).
"""

from __future__ import annotations

import os
import subprocess
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from aegis import api
from aegis.errors import AegisError, StateError
from aegis.execute import service
from aegis.execute.ledger import Ledger
from aegis.model import Intent, Operation, Tool

from .chain_helpers import Chain, make_chain

pytestmark = pytest.mark.root

PAIRS = int(os.environ.get("AEGIS_RACE_PAIRS", "50"))
"""The issue asks for many repetitions; 50 by default (a pair takes about half a second)."""


def _signed(chain: Chain) -> tuple[str, Path]:
    """A request for ``install aegis-benign`` walked to ``signed``; (request id, plan file)."""
    from aegis.ecosystems.apt.plan import analyze_apt
    from aegis.policy.run import decide
    from aegis.review.record import review_bytes, skipped_review
    from aegis.sign.service import approve_plan, sign_request

    cfg = chain.cfg
    now = datetime.now(UTC)
    intent = Intent(
        Tool.APT, Operation.INSTALL, ("aegis-benign",), "tester", "2026-01-01T00:00:00Z"
    )
    plan = analyze_apt(cfg, intent, now)
    planned = api.submit_plan(cfg, plan, "tester")
    review = skipped_review(plan, "review skipped by configuration (--no-review)", plan.created_at)
    api.advance(
        cfg,
        planned.request_id,
        "review",
        "tester",
        artifact_kind="review",
        artifact=review_bytes(review),
    )
    decided = decide(cfg, planned.plan_path, now=now, actor="tester")
    if decided.result.controls.approval.count:
        approve_plan(
            cfg,
            planned.request_id,
            reason="race test",
            key_path=chain.keys.approver_path,
            approver_id="bob",
            role="approver",
            expires_in=timedelta(hours=1),
            now=now,
            passphrase=None,
        )
    signed = sign_request(
        cfg,
        planned.plan_path,
        None,
        key_path=chain.keys.signer_path,
        signer_id="alice",
        expires_in=timedelta(hours=1),
        now=now,
        passphrase=None,
    )
    return planned.request_id, signed.path


def _race(chain: Chain, sock: Path, signer_pub: str, path: Path, hooks: Path | None) -> list[Any]:
    """Two clients submit ``path``; what each got.

    Without ``hooks`` both start at the same moment; with it, the second starts while
    aegisd holds the first one's run at ``before-run`` (``started`` is in the ledger):
    the moment a second client used to mark a running request interrupted.
    """
    results: list[Any] = [None, None]
    go = threading.Barrier(1 if hooks else 2)

    def client(i: int) -> None:
        go.wait()
        try:
            results[i] = service.apply(chain.cfg, path, signer_pub, socket=sock)
        except AegisError as e:
            results[i] = e

    first, second = (threading.Thread(target=client, args=(i,)) for i in (0, 1))
    first.start()
    if hooks is not None:
        deadline = time.monotonic() + 60
        while not (hooks / "before-run.reached").exists():
            assert time.monotonic() < deadline
            time.sleep(0.01)
    second.start()
    if hooks is not None:
        second.join(60)
        (hooks / "before-run.go").touch()
    first.join(120)
    second.join(120)
    return results


def test_same_execution_id_from_two_clients_runs_once(
    make_daemon: Any, tmp_path: Path, key_set: Any
) -> None:
    chain = make_chain(tmp_path, key_set)
    approvers = chain.cfg.keys_dir / "approvers"
    approvers.mkdir(parents=True, exist_ok=True)
    (approvers / "bob.pub").write_text(key_set.approver_pub + "\n")
    extra = {k: v for k, v in chain.env.items() if k in ("AEGIS_APT_CONFIG", "AEGIS_DPKG_ROOT")}
    hooks = tmp_path / "hooks"
    hooks.mkdir()
    extra.update({"AEGIS_TEST_HOOKS": "1", "AEGIS_TEST_HOOK_DIR": str(hooks)})
    d = make_daemon(env_extra=extra, home=chain.home)
    saved = dict(os.environ)
    os.environ.update(chain.env)  # the library reads AEGIS_HOME like the CLIs do
    try:
        for pair in range(PAIRS):
            request_id, path = _signed(chain)
            for name in ("before-run.reached", "before-run.go", "before-run.wait"):
                (hooks / name).unlink(missing_ok=True)
            held = pair % 2 == 1
            if held:
                (hooks / "before-run.wait").touch()
            results = _race(chain, d.socket, key_set.signer_pub, path, hooks if held else None)
            won = [r for r in results if isinstance(r, service.ApplyOutcome)]
            lost = [r for r in results if not isinstance(r, service.ApplyOutcome)]
            assert len(won) == 1, (pair, results)
            [loser] = lost
            assert isinstance(loser, StateError), (pair, loser)
            if api.get_request(chain.cfg, request_id).state == "applied":
                # The loser's refusal names the request and lands between the winner's
                # checkpoint and its audit check: not covered yet, so the request waits
                # at applied for the pass cron runs, as on a host (aegisd checkpointed it).
                api.resume(chain.cfg, "race-test")
            assert api.get_request(chain.cfg, request_id).state == "audited", pair
            assert chain.installed()["aegis-benign"] == "1.1"
            # Ready for the next pair: out again behind aegisd's back (not a signed change).
            subprocess.run(
                ["/usr/bin/dpkg", f"--root={chain.root.root}", "--purge", "aegis-benign"],
                capture_output=True,
                check=True,
            )
    finally:
        os.environ.clear()
        os.environ.update(saved)
    rows = Ledger(d.cfg.ledger_path).entries()
    assert len(rows) == PAIRS
    assert {(r.state, r.exit_status) for r in rows} == {("finished", 0)}
    assert {r.state for r in api.list_requests(chain.cfg)} == {"audited"}
    installs = [e for e in d.audit_events() if e["kind"] == "apply-finished"]
    assert len(installs) == PAIRS
