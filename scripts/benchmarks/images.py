"""Container image figures (issue 14): planning and applying through Aegis vs the raw tools.

A real registry on loopback (Debian's docker-registry, ``aegis.devtools.image_registry``)
holds one small image, pinned by digest. Each round uses fresh podman graph roots (vfs).

- ``plan``: the image planner in process (``for_tool(Tool.IMAGE).plan``: the manifest, its
  SHA-256, the config checked against the manifest, the tag, the cosign signature fetched
  and verified with the trusted key policy names, the signals) over one ``skopeo inspect``
  of the same reference (which reads the manifest and the config too).
  Goal <= 1.3x. The CLI (``aegis podman pull REF --plan``: Python start, the policy read for
  plain HTTP, the request row and the plan file) is reported beside it, without a goal.
- ``apply``: ``aegis.execute.service.apply`` of a signed execution plan through aegisd (its
  checks, its own re-inspection, ``podman pull REF@sha256:...``, the store read before and
  after, audit) over the same ``podman pull`` by digest into an identical empty store.
  Goal: <= 1.3x + 0.3 s.

Medians over ROUNDS. Needs root (podman's rootful store) and skopeo, podman, docker-registry.
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROUNDS = 3
HERE = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(HERE / "scripts/benchmarks"))


def _timed(argv: list[str] | tuple[str, ...], env: dict[str, str]) -> float:
    t0 = time.perf_counter()
    subprocess.run(argv, env=env, check=True, capture_output=True, timeout=300)
    return time.perf_counter() - t0


def _store(path: Path) -> Path:
    from aegis.ecosystems.image import runroot_for

    path.mkdir(parents=True)
    argv = ["podman", "--root", str(path), "--runroot", runroot_for(str(path)),
            "--storage-driver", "vfs", "images"]  # fmt: skip
    subprocess.run(argv, check=True, capture_output=True)
    return path


def _round(tmp: Path, host: str, ref: str, keyset: dict[str, Any]) -> tuple[float, ...]:
    from _common import aegisd, env_for, sign, through_aegisd

    from aegis.config import load_config
    from aegis.ecosystems import for_tool
    from aegis.ecosystems.image.resolve import SKOPEO, skopeo_env
    from aegis.model import Intent, Operation, Tool

    home = tmp / "home"
    env = env_for(home)
    cfg = load_config(env)
    cfg.etc_dir.mkdir(parents=True, exist_ok=True)
    policy = (HERE / "aegis/policy/default_policy.toml").read_text()
    cfg.policy_path.write_text(
        policy + f'\n[[registries]]\nname = "bench"\necosystem = "image"\nurl = "http://{host}/"\n'
        f'trusted_keys = ["{keyset["image_key"]}"]\nrequire_signature = true\n'
    )
    # skopeo takes no TAG@DIGEST: the raw side inspects by digest, what the planner's first
    # read is (the planner resolves the tag beside it, in parallel).
    by_digest = ref.split(":v1@", 1)[0] + "@" + ref.split("@", 1)[1]
    raw_plan = _timed((SKOPEO, "inspect", "--tls-verify=false", "docker://" + by_digest),
                      skopeo_env())  # fmt: skip
    raw_store, aegis_store = _store(tmp / "raw-store"), _store(tmp / "aegis-store")
    intent = Intent(Tool.IMAGE, Operation.INSTALL, (ref,), "bench", "2026-01-01T00:00:00Z",
                    location=f"podman:{aegis_store}", registry=f"http://{host}/")  # fmt: skip
    t0 = time.perf_counter()
    plan = for_tool(Tool.IMAGE).plan(cfg, intent, datetime.now(UTC))
    aegis_plan = time.perf_counter() - t0
    assert plan.failure is None, plan.failure
    assert plan.ecosystem is not None
    assert plan.ecosystem.image is not None
    assert plan.ecosystem.image.signature == "verified"
    cli_plan = _timed([sys.executable, "-m", "aegis", "podman", "pull", ref, "--storage",
                       str(tmp / "cli-store"), "--plan"], env)  # fmt: skip
    ep_path = tmp / "ep.json"
    ep_path.write_bytes(sign(cfg, plan, keyset["signer"], keyset["approver"]))
    raw_argv = [str(raw_store) if a == str(aegis_store) else a for a in plan.command_preview]
    from aegis.ecosystems.image import runroot_for

    raw_argv[raw_argv.index("--runroot") + 1] = runroot_for(str(raw_store))
    raw_apply = _timed(raw_argv, dict(os.environ))
    with aegisd(env, keyset) as sock:
        through = through_aegisd(cfg, env, ep_path, keyset["spub"], sock)
    return raw_plan, aegis_plan, cli_plan, raw_apply, through


def run() -> dict[str, Any]:
    """Medians of both sides of both figures, their ratios and whether the goals hold."""
    from aegis.devtools import image_registry as ir
    from aegis.sign import keys

    if os.geteuid() != 0:
        return {"skipped": "needs root (podman's rootful store)"}
    base = Path(tempfile.mkdtemp(prefix="aegis-bench-images-"))
    try:
        sp, spub = keys.write_keypair(base / "keys", "signer")
        ap, apub = keys.write_keypair(base / "keys", "approver")
        image_key = base / "keys/images/bench.pub"
        keyset: dict[str, Any] = {"signer": keys.load_signing_key(sp), "spub": spub,
                                  "approver": keys.load_signing_key(ap), "apub": apub,
                                  "image_key": image_key}  # fmt: skip
        rows = []
        with ir.serve(base / "registry") as host:
            digest = ir.build_layout(base / "layout", payload=os.urandom(256 * 1024))
            ir.push(base / "layout", f"{host}/bench/app:v1")
            ir.cosign_sign(base, f"{host}/bench/app", digest, ir.new_key(image_key))
            ref = f"{host}/bench/app:v1@{digest}"
            for i in range(ROUNDS):
                rows.append(_round(base / f"r{i}", host, ref, keyset))
    finally:
        from aegis.ecosystems.image import runroot_for

        for used in base.glob("r*/*-store"):  # their run roots live under /run/aegis-podman
            shutil.rmtree(runroot_for(str(used)), ignore_errors=True)
        shutil.rmtree(base, ignore_errors=True)
    raw_plan, aegis_plan, cli_plan, raw_apply, through = (
        statistics.median(c) for c in zip(*rows, strict=True)
    )
    return {
        "plan_raw_s": round(raw_plan, 3),
        "plan_aegis_s": round(aegis_plan, 3),
        "plan_ratio": round(aegis_plan / raw_plan, 2),
        "plan_goal_met": aegis_plan <= 1.3 * raw_plan,
        "plan_cli_s": round(cli_plan, 3),
        "apply_raw_s": round(raw_apply, 3),
        "apply_aegisd_s": round(through, 3),
        "apply_ratio": round(through / raw_apply, 2),
        "apply_goal_s": round(1.3 * raw_apply + 0.3, 3),
        "apply_goal_met": through <= 1.3 * raw_apply + 0.3,
    }


if __name__ == "__main__":
    print(run())
