"""More attacks on the signing edge: planted store files, hidden fields, option-shaped names."""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from aegis.canonical import canonical_bytes, sha256_hex
from aegis.devtools.sample_plans import SAMPLE_DEB_DIR, sample_plan
from aegis.ecosystems.apt.argv import derive_argv
from aegis.ed25519 import sign_canonical
from aegis.errors import InputError
from aegis.model import plan_to_dict
from aegis.policy.run import read_plan
from aegis.sign import files
from aegis.sign.execution_plan import execution_plan_bytes, parse_execution_plan
from aegis.sign.refusals import MalformedExecutionPlanError


def _within(seconds: float, fn: Callable[[], Any]) -> Any:
    """Run ``fn`` in a thread; fail (instead of hanging the suite) if it blocks."""
    out: list[Any] = []

    def run() -> None:
        try:
            out.append(fn())
        except BaseException as e:  # handed back to the test
            out.append(e)

    t = threading.Thread(target=run, daemon=True)
    t.start()
    t.join(seconds)
    assert out, f"still blocked after {seconds}s"
    if isinstance(out[0], BaseException):
        raise out[0]
    return out[0]


def _plant(path: Path, kind: str) -> None:
    if kind == "fifo":
        os.mkfifo(path)
    elif kind == "dev-zero":
        path.symlink_to("/dev/zero")
    else:
        path.mkdir()


@pytest.mark.parametrize("kind", ["fifo", "dev-zero", "directory"])
def test_a_planted_plan_file_is_refused_without_blocking(tmp_path: Path, kind: str) -> None:
    """``aegisctl sign --plan plans/<id>.json``: the plans directory is group-writable."""
    path = tmp_path / "p-1.json"
    _plant(path, kind)
    with pytest.raises(InputError, match="not a regular file"):
        _within(5, lambda: read_plan(path))


def test_a_planted_approval_fifo_is_reported_without_blocking(tmp_path: Path, approve: Any) -> None:
    from aegis.sign.approvals import approval_bytes

    d = tmp_path / "approvals"
    d.mkdir()
    a = approve()
    (d / "p-0001.bob.approval.json").write_bytes(approval_bytes(a))
    os.mkfifo(d / "p-0001.eve.approval.json")
    found, problems = _within(5, lambda: files.approvals_for_plan(d, "p-0001"))
    assert found == [a]
    assert problems == [f"approval {d / 'p-0001.eve.approval.json'} is not a regular file"]


def test_a_plan_with_a_duplicate_key_is_refused(tmp_path: Path) -> None:
    body = canonical_bytes(plan_to_dict(sample_plan("p-dup")))
    path = tmp_path / "p-dup.json"
    path.write_bytes(body.replace(b'{"changes":', b'{"changes":[],"changes":', 1))
    with pytest.raises(InputError, match="duplicate"):
        read_plan(path)


def _resigned(build: Any, keys: Any, edit: Callable[[dict[str, Any]], None]) -> bytes:
    doc = json.loads(execution_plan_bytes(build()))
    edit(doc)
    del doc["signature_hex"]
    doc["signature_hex"] = sign_canonical(doc, keys.signer)
    return canonical_bytes(doc)


@pytest.mark.parametrize(
    ("where", "edit"),
    [
        ("$.policy", lambda d: d["policy"].update(zz=1)),
        ("$.intent", lambda d: d["intent"].update(zz=1)),
        ("$.host", lambda d: d["host"].update(zz=1)),
        ("$.targets[0]", lambda d: d["targets"][0].update(zz=1)),
        ("$.plan.changes[0]", lambda d: d["plan"]["changes"][0].update(zz=1)),
        ("$", lambda d: d["approvals"][0].update(zz=1)),
    ],
    ids=["policy", "intent", "host", "target", "plan-change", "approval"],
)
def test_an_unknown_field_anywhere_is_refused_even_when_signed(
    build: Any, keys: Any, where: str, edit: Callable[[dict[str, Any]], None]
) -> None:
    """A trusted signer's tool adds a field aegisd would not look at: still malformed."""
    with pytest.raises(MalformedExecutionPlanError, match="unknown key") as info:
        parse_execution_plan(_resigned(build, keys, edit))
    assert where + ":" in str(info.value)


@pytest.mark.parametrize(
    "name",
    ["-oDpkg::Pre-Invoke::=touch /tmp/x", "--config-file=/tmp/x", "-y", "../../../tmp/x"],
)
def test_an_option_or_path_shaped_name_never_reaches_the_argv(name: str) -> None:
    """Even if such a name reached a plan, nothing runs: it cannot name a verified file."""
    assert derive_argv(sample_plan("p-opt", targets=("aegis-base", name))) == ()
    argv = derive_argv(sample_plan("p-ok", targets=("aegis-base",)))
    end = argv.index("--")
    assert argv[end + 1 :] == (
        f"{SAMPLE_DEB_DIR}/aegis-base_1.0_all_{sha256_hex(b'aegis-base')}.deb",
    )


def test_an_approval_in_the_signers_own_name_never_counts(keys: Any, approve: Any) -> None:
    from aegis.devtools import signing
    from aegis.model import plan_hash
    from aegis.sign.approvals import RejectReason, verify_approvals

    plan = signing.make_plan()
    common: dict[str, Any] = {
        "plan_hash": plan_hash(plan),
        "policy_hash": signing.POLICY_HASH,
        "trusted_approver_keys": {keys.pub("approver")},
        "signer_key_hex": keys.pub("signer"),
        "now": signing.NOW,
    }
    mine = approve(approver_id="carol")
    verdict = verify_approvals([mine], signer_id="carol", **common)
    assert verdict.counted == ()
    assert [r.reason for r in verdict.rejected] == [RejectReason.SELF_APPROVAL]
    assert len(verify_approvals([mine], signer_id="dave", **common).counted) == 1


@pytest.mark.parametrize("kind", ["fifo", "dev-zero"])
def test_a_planted_vulnerability_index_neither_hangs_nor_is_followed(
    aegis_home: Path, kind: str
) -> None:
    """aegisd's re-derivation reads the index from the group-writable store, as root."""
    from aegis.analyze.evidence.vulndb import load_index
    from aegis.config import load_config

    cfg = load_config()
    cfg.vulndb_path.parent.mkdir(parents=True, exist_ok=True)
    _plant(cfg.vulndb_path, kind)
    with pytest.raises(InputError, match="vulnerability index"):
        _within(5, lambda: load_index(cfg))
