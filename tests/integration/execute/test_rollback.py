"""Rollback: a new request restoring a recorded dpkg-state snapshot, through the chain."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from aegis.ecosystems.apt.dpkg import dpkg_status

from .chain_helpers import (
    AEGIS,
    AEGISCTL,
    SignedRequest,
    approve_and_sign,
    newest,
    run_cli,
    signed_request,
)
from .conftest import Daemon

pytestmark = pytest.mark.root


def _version(root: Path, name: str) -> str | None:
    for key, (version, status) in dpkg_status(root, {}).items():
        if key.split(":")[0] == name and status == "installed":
            return version
    return None


def test_rollback_restores_the_replaced_version(tmp_path: Path, sock_dir: Path) -> None:
    sr = signed_request(tmp_path, "aegis-base=1.2", preinstall=("aegis-base=1.0",))
    d = Daemon(
        sr.home,
        sock_dir / "a.sock",
        sr.env,
        ["--public-key-hex", sr.signer_pub],
        tmp_path / "aegisd.log",
    ).start()
    try:
        apply = [
            *AEGISCTL,
            "apply",
            "--public-key-hex",
            sr.signer_pub,
            "--socket",
            str(d.socket),
            "--json",
        ]
        out = json.loads(
            run_cli([*apply, "--execution-plan", str(sr.execution_plan)], sr.env).stdout
        )
        snapshot_id = out["answer"]["result"]["snapshot_id"]
        assert _version(sr.root.root, "aegis-base") == "1.2"
        manifest = sr.home / f"var/lib/aegis/aegisd/rollback-cache/{snapshot_id}/manifest.json"
        kept = json.loads(manifest.read_text())["replaced"]
        assert [(r["name"], r["version"]) for r in kept] == [("aegis-base", "1.0")]
        assert kept[0]["obtained_from"] in ("apt-cache", "repository", "dpkg-repack")
        assert (manifest.parent / kept[0]["deb"]).is_file()

        rb = json.loads(run_cli([*AEGISCTL, "rollback", sr.request_id, "--json"], sr.env).stdout)
        assert rb["rollback_of"] == snapshot_id
        plan = Path(rb["plan_path"])
        doc = json.loads(plan.read_text())
        assert doc["intent"]["operation"] == "rollback"
        assert doc["intent"]["rollback_of"] == snapshot_id
        run_cli([*AEGIS, "review", str(plan), "--no-review"], sr.env)
        policy = run_cli([*AEGIS, "policy", str(plan)], sr.env, ok=False)
        assert policy.returncode == 8, policy.stdout  # a rollback downgrade needs approval
        approve_and_sign(plan, sr.env, sr.keys)
        ep = newest(sr.home / "var/lib/aegis/execution-plans")
        done = json.loads(run_cli([*apply, "--execution-plan", str(ep)], sr.env).stdout)
        assert done["request_state"] == "audited"
        assert _version(sr.root.root, "aegis-base") == "1.0"
    finally:
        d.stop()


def _rebuilt(deb: Path, work: Path) -> Path:
    """The same package, version and architecture as ``deb``, other contents."""
    tree = work / "tree"
    work.mkdir()
    subprocess.run(["/usr/bin/dpkg-deb", "-R", str(deb), str(tree)], check=True)
    extra = tree / "usr/share/doc/aegis-base/another-build"
    extra.parent.mkdir(parents=True, exist_ok=True)
    extra.write_text("another build\n")
    out = work / "aegis-base_1.0_all.deb"
    subprocess.run(
        ["/usr/bin/dpkg-deb", "-b", str(tree), str(out)], check=True, capture_output=True
    )
    return out


@dataclass
class _Dropped:
    """A request applied (1.0 -> 1.2), then the repository stopped serving 1.0."""

    sr: SignedRequest
    daemon: Daemon
    apply: list[str]
    snapshot_id: str
    kept: Path
    other_deb: Path
    """aegis-base 1.0 built again with other contents (other bytes than the kept one)."""

    def rollback_plan(self) -> Path:
        out = run_cli([*AEGISCTL, "rollback", self.sr.request_id, "--json"], self.sr.env)
        return Path(json.loads(out.stdout)["plan_path"])

    def sign_rollback(self) -> None:
        plan = self.rollback_plan()
        run_cli([*AEGIS, "review", str(plan), "--no-review"], self.sr.env)
        policy = run_cli([*AEGIS, "policy", str(plan)], self.sr.env, ok=False)
        assert policy.returncode == 8, (policy.stdout, policy.stderr)
        approve_and_sign(plan, self.sr.env, self.sr.keys)

    def submit(self) -> dict[str, Any]:
        ep = newest(self.sr.home / "var/lib/aegis/execution-plans")
        out = run_cli([*self.apply, "--execution-plan", str(ep)], self.sr.env, ok=False)
        doc: dict[str, Any] = json.loads(out.stdout)
        doc["exit_code"] = out.returncode
        return doc


def _dropped(tmp_path: Path, sock_dir: Path, hooks: Path | None = None) -> _Dropped:
    from aegis.devtools import testrepo

    sr = signed_request(tmp_path, "aegis-base=1.2", preinstall=("aegis-base=1.0",))
    env = dict(sr.env)
    if hooks is not None:
        env.update(AEGIS_TEST_HOOKS="1", AEGIS_TEST_HOOK_DIR=str(hooks))
    d = Daemon(
        sr.home, sock_dir / "a.sock", env, ["--public-key-hex", sr.signer_pub], tmp_path / "d.log"
    ).start()
    apply = [
        *AEGISCTL,
        "apply",
        "--public-key-hex",
        sr.signer_pub,
        "--socket",
        str(d.socket),
        "--json",
    ]
    try:
        out = json.loads(
            run_cli([*apply, "--execution-plan", str(sr.execution_plan)], sr.env).stdout
        )
        snapshot_id = out["answer"]["result"]["snapshot_id"]
        manifest = sr.home / f"var/lib/aegis/aegisd/rollback-cache/{snapshot_id}/manifest.json"
        [kept] = json.loads(manifest.read_text())["replaced"]
        # The file:// repository is read in place (no copy in apt's cache): the old version
        # was fetched from the repository that still served it.
        assert kept["obtained_from"] == "repository"
        pool = tmp_path / "repo/pool/main/aegis-base_1.0_all.deb"
        other_deb = _rebuilt(pool, tmp_path / "other")
        pool.unlink()
        specs = tuple(
            p for p in testrepo.DEFAULT_PACKAGES if (p.name, p.version) != ("aegis-base", "1.0")
        )
        testrepo.build_repo(tmp_path / "repo", packages=specs)
        testrepo.apt_update(sr.root)
    except BaseException:
        d.stop()
        raise
    return _Dropped(sr, d, apply, snapshot_id, manifest.parent / kept["deb"], other_deb)


def test_rollback_after_the_repository_stopped_serving_the_old_version(
    tmp_path: Path, sock_dir: Path
) -> None:
    t = _dropped(tmp_path, sock_dir)
    try:
        plan = t.rollback_plan()
        doc = json.loads(plan.read_text())
        assert doc["failure"] is None
        [sd] = doc["snapshot_debs"]
        assert (sd["package"], sd["version"], sd["snapshot_id"]) == (
            "aegis-base",
            "1.0",
            t.snapshot_id,
        )
        assert (sd["path"], sd["verified"], sd["obtained_from"]) == (
            str(t.kept),
            True,
            "repository",
        )
        assert sd["sha256"] == hashlib.sha256(t.kept.read_bytes()).hexdigest()
        preview = doc["command_preview"]
        assert preview[0] == "/usr/bin/apt-get"
        assert f"Dir::Etc::SourceParts={doc['deb_dir']}/" in preview  # only named files
        assert preview[preview.index("-y") :] == [
            "-y",
            "--allow-downgrades",
            "install",
            "--",
            str(t.kept),
        ]
        run_cli([*AEGIS, "review", str(plan), "--no-review"], t.sr.env)
        policy = run_cli([*AEGIS, "policy", str(plan), "--json"], t.sr.env, ok=False)
        assert policy.returncode == 8, policy.stdout  # approval, never allow, never deny
        fired = {f["rule_id"]: f for f in json.loads(policy.stdout)["result"]["fired"]}
        assert fired["target.direct-path"]["effect"] == "require-approval"
        assert "matches aegisd's manifest" in fired["target.direct-path"]["reason"]
        assert fired["provenance.missing"]["effect"] == "require-approval"
        approve_and_sign(plan, t.sr.env, t.sr.keys)
        done = t.submit()
        assert done["request_state"] == "audited", done
        assert done["answer"]["result"]["argv"][-1] == str(t.kept)
        assert _version(t.sr.root.root, "aegis-base") == "1.0"
    finally:
        t.daemon.stop()


@pytest.mark.parametrize("attack", ["other-bytes", "symlink", "not-root-owned"])
def test_a_tampered_kept_deb_fails_the_plan(tmp_path: Path, sock_dir: Path, attack: str) -> None:
    t = _dropped(tmp_path, sock_dir)
    try:
        if attack == "other-bytes":  # same package, version and arch, other contents
            shutil.copyfile(t.other_deb, t.kept)
            why = "is not the manifest's"
        elif attack == "symlink":
            original = shutil.copyfile(t.kept, tmp_path / "elsewhere.deb")
            t.kept.unlink()
            t.kept.symlink_to(original)
            why = "is a symlink"
        else:
            os.chown(t.kept, 65534, 65534)
            why = "owned by uid 65534"
        doc = json.loads(t.rollback_plan().read_text())
        assert doc["failure"]["kind"] == "snapshot-mismatch"
        assert why in doc["failure"]["message"]
        assert doc["command_preview"] == []
        [sd] = doc["snapshot_debs"]
        assert sd["verified"] is False
        assert why in sd["problem"]
        signals = {s["name"] for s in doc["signals"]}
        assert "rollback.snapshot-mismatch" in signals
        plan = newest(t.sr.home / "var/lib/aegis/plans")
        run_cli([*AEGIS, "review", str(plan), "--no-review"], t.sr.env)
        policy = run_cli([*AEGIS, "policy", str(plan), "--json"], t.sr.env, ok=False)
        assert policy.returncode == 5, policy.stdout
        fired = {f["rule_id"]: f["effect"] for f in json.loads(policy.stdout)["result"]["fired"]}
        assert fired["target.direct-path"] == "deny"
        assert fired["analysis.failed"] == "deny"
    finally:
        t.daemon.stop()


def test_kept_deb_replaced_after_signing_is_refused(tmp_path: Path, sock_dir: Path) -> None:
    t = _dropped(tmp_path, sock_dir)
    try:
        t.sign_rollback()
        shutil.copyfile(t.other_deb, t.kept)
        out = t.submit()
        assert out["answer"]["refusal"] == "refused:rederivation", out
        assert "analysis failed: snapshot-mismatch" in out["answer"]["message"], out
        assert "is not the manifest's" in out["answer"]["message"]
        assert _version(t.sr.root.root, "aegis-base") == "1.2"
        last = [e for e in t.daemon.audit_events() if e["kind"] != "checkpoint"][-1]
        assert last["decision"]["rule_ids"] == ["refused:rederivation"]
    finally:
        t.daemon.stop()


def test_kept_deb_replaced_after_rederivation_is_refused_before_the_run(
    tmp_path: Path, sock_dir: Path
) -> None:
    from aegis.execute.ledger import Ledger

    hooks = tmp_path / "hooks"
    hooks.mkdir()
    t = _dropped(tmp_path, sock_dir, hooks)
    try:
        t.sign_rollback()
        before = {e.execution_id for e in Ledger(t.daemon.cfg.ledger_path).entries()}
        (hooks / "before-started.reached").unlink()  # reached by the first apply
        (hooks / "before-started.wait").touch()
        answers: list[dict[str, Any]] = []
        th = threading.Thread(target=lambda: answers.append(t.submit()))
        th.start()
        deadline = time.monotonic() + 60
        while not (hooks / "before-started.reached").exists():
            assert time.monotonic() < deadline
            time.sleep(0.05)
        # aegisd re-derived and checked the plan; now the kept file is swapped.
        shutil.copyfile(t.other_deb, t.kept)
        (hooks / "before-started.go").touch()
        th.join(60)
        [out] = answers
        assert out["answer"]["refusal"] == "refused:snapshot-deb-changed", out
        assert out["exit_code"] == 4  # a trust failure (docs/design.md "Errors and exit codes")
        assert "changed after signing" in out["answer"]["message"]
        assert _version(t.sr.root.root, "aegis-base") == "1.2"
        after = {e.execution_id for e in Ledger(t.daemon.cfg.ledger_path).entries()}
        assert after == before  # never started
        last = [e for e in t.daemon.audit_events() if e["kind"] != "checkpoint"][-1]
        assert last["decision"]["rule_ids"] == ["refused:snapshot-deb-changed"]
    finally:
        t.daemon.stop()
