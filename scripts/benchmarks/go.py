"""Go figures (issue 14): planning and applying through Aegis vs the raw go tool, same run.

A ``file://`` GOPROXY (``aegis.devtools.go_proxy``) serves ``example.com/benchapp`` (a
command) and two dependencies. Each round uses fresh modules, caches and AEGIS_HOME.

- ``plan_resolve_in_process_s``: the planner alone (no interpreter start, imports, store),
  to show where the CLI's time goes against a raw call that takes tens of milliseconds.
- ``plan``: ``aegis go get example.com/benchapp@v1.0.0 --module M --proxy U --plan`` (the CLI:
  a scratch module, ``go get``, ``go mod download -json`` and ``go list -m -retracted`` of
  each changed module, the request row and the plan file) over ``go mod download -json`` of
  the same three modules in a scratch module with a fresh module cache. Goal <= 1.3x.
- ``apply_get``: ``aegis.execute.service.apply`` of the signed ``go get`` plan through aegisd
  (its checks, its own re-resolution, the signed files, ``go get`` with the exact version,
  drift, audit) over the same ``go get`` run directly in an identical module with a fresh
  module cache. Goal: <= 1.3x + 0.3 s.
- ``apply_install``: the same for ``go install example.com/benchapp@v1.0.0`` into the
  managed GOBIN over a raw ``go install PKG@VERSION`` with fresh caches. Goal: <= 1.3x + 0.3 s.

Medians over ROUNDS.
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

sys.path.insert(0, str(Path(__file__).resolve().parent))
from npm import _env, _sign  # the same signing and environment as npm's figures

ROUNDS = 3
HERE = Path(__file__).resolve().parents[2]
APP = "example.com/benchapp"
MODULES = (f"{APP}@v1.0.0", "example.com/benchutil@v1.0.0", "example.com/benchcore@v1.0.0")


def _timed(argv: list[str] | tuple[str, ...], env: dict[str, str], cwd: Path) -> float:
    t0 = time.perf_counter()
    subprocess.run(argv, env=env, check=True, capture_output=True, cwd=cwd, timeout=300)
    return time.perf_counter() - t0


def _module(path: Path) -> Path:
    path.mkdir(parents=True)
    (path / "go.mod").write_text("module example.com/app\n\ngo 1.18\n")
    return path


def _raw_env(tmp: Path, name: str, url: str) -> dict[str, str]:
    from aegis.ecosystems.go.gotool import pinned

    d = tmp / name
    env = pinned(str(d), str(d / "modcache"), str(d / "cache"), str(d / "path"), url)
    return {**env, "GOFLAGS": "", "GOBIN": str(d / "bin")}


def _aegisd(env: dict[str, str], keyset: dict[str, Any]) -> tuple[subprocess.Popen[bytes], Path]:
    from aegis.execute.protocol import Request, call

    sock = Path(tempfile.mkdtemp(prefix="aegisd-bench-", dir="/tmp")) / "s.sock"
    proc = subprocess.Popen(
        [sys.executable, "-m", "aegis.execute.aegisd", "--socket", str(sock),
         "--public-key-hex", keyset["spub"], "--approval-public-key-hex", keyset["apub"]],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=HERE,
    )  # fmt: skip
    for _ in range(300):
        try:
            call(str(sock), Request(op="ping"), timeout_s=5)
            break
        except Exception:
            time.sleep(0.02)
    return proc, sock


def _through(cfg: Any, env: dict[str, str], ep: Path, spub: str, sock: Path) -> float:
    from aegis.execute import service

    old = dict(os.environ)
    os.environ.clear()
    os.environ.update(env)
    try:
        t0 = time.perf_counter()
        out = service.apply(cfg, ep, spub, socket=sock)
        took = time.perf_counter() - t0
    finally:
        os.environ.clear()
        os.environ.update(old)
    assert out.answer["ok"], out.answer
    return took


def _round(tmp: Path, url: str, keyset: dict[str, Any]) -> tuple[float, ...]:
    from aegis.config import load_config
    from aegis.ecosystems import for_tool
    from aegis.ecosystems.go.gotool import GO
    from aegis.ecosystems.go.names import gobin_dir
    from aegis.model import Intent, Operation, Tool

    home = tmp / "home"
    env = _env(home)
    cfg = load_config(env)
    cfg.etc_dir.mkdir(parents=True, exist_ok=True)
    # aegisd's lock is dpkg's: a throwaway root's, never the host's (other work may hold it).
    (tmp / "root/var/lib/dpkg").mkdir(parents=True)
    (cfg.etc_dir / "aegis.toml").write_text(f'dpkg_root = "{tmp / "root"}"\n')
    cfg = load_config(env)
    policy = (HERE / "aegis/policy/default_policy.toml").read_text()
    approved = f'[[registries]]\nname = "bench"\necosystem = "go"\nurl = "{url}"\n'
    cfg.policy_path.write_text(f'{policy}\n{approved}\n[rules."go.sumdb-off"]\neffect = "allow"\n')
    raw_plan = _timed([GO, "mod", "download", "-json", *MODULES], _raw_env(tmp, "r1", url),
                      _module(tmp / "raw"))  # fmt: skip
    aegis_m = _module(tmp / "aegis")
    aegis_plan = _timed([sys.executable, "-m", "aegis", "go", "get", f"{APP}@v1.0.0", "--module",
                         str(aegis_m), "--proxy", url, "--plan"], env, HERE)  # fmt: skip
    plans = {}
    resolve = 0.0
    for loc in (f"gomod:{aegis_m}", f"gobin:{gobin_dir(cfg)}"):
        intent = Intent(Tool.GO, Operation.INSTALL, (f"{APP}@v1.0.0",), "bench",
                        "2026-01-01T00:00:00Z", location=loc, registry=url)  # fmt: skip
        t0 = time.perf_counter()
        plans[loc[:5]] = for_tool(Tool.GO).plan(cfg, intent, datetime.now(UTC))
        resolve = resolve or time.perf_counter() - t0  # the go get plan, in process
    eps = {}
    for kind, plan in plans.items():
        eps[kind] = tmp / f"{kind}.json"
        eps[kind].write_bytes(_sign(cfg, plan, keyset["signer"], keyset["approver"]))
    raw_get = _timed([GO, "get", f"{APP}@v1.0.0"], _raw_env(tmp, "r2", url),
                     _module(tmp / "raw-get"))  # fmt: skip
    raw_install = _timed([GO, "install", f"{APP}@v1.0.0"], _raw_env(tmp, "r3", url), tmp)
    proc, sock = _aegisd(env, keyset)
    try:
        get = _through(cfg, env, eps["gomod"], keyset["spub"], sock)
        install = _through(cfg, env, eps["gobin"], keyset["spub"], sock)
    finally:
        proc.terminate()
        proc.wait()
        shutil.rmtree(sock.parent, ignore_errors=True)
    return raw_plan, aegis_plan, resolve, raw_get, get, raw_install, install


def _build(root: Path) -> str:
    from aegis.devtools.go_proxy import GoProxy

    p = GoProxy(root)
    p.add("example.com/benchcore", "v1.0.0", {"core.go": "package benchcore\n\nconst N = 1\n"})
    p.add("example.com/benchutil", "v1.0.0",
          {"util.go": 'package benchutil\n\nimport "example.com/benchcore"\n\n'
                      "func N() int { return benchcore.N }\n"},
          requires={"example.com/benchcore": "v1.0.0"})  # fmt: skip
    p.add(APP, "v1.0.0",
          {"main.go": 'package main\n\nimport "example.com/benchutil"\n\n'
                      "func main() { println(benchutil.N()) }\n"},
          requires={"example.com/benchutil": "v1.0.0",
                    "example.com/benchcore": "v1.0.0"})  # fmt: skip
    return p.url


def _clean(path: Path) -> None:
    for dirpath, dirnames, _ in os.walk(path):  # go's module cache is read-only
        for d in dirnames:
            os.chmod(os.path.join(dirpath, d), 0o755)  # noqa: S103 - the bench's own temp dir
    shutil.rmtree(path, ignore_errors=True)


def run() -> dict[str, Any]:
    """Medians of both sides of each figure, their ratios and whether the goals hold."""
    from aegis.sign import keys

    base = Path(tempfile.mkdtemp(prefix="aegis-bench-go-"))
    try:
        url = _build(base / "proxy")
        sp, spub = keys.write_keypair(base / "keys", "signer")
        ap, apub = keys.write_keypair(base / "keys", "approver")
        keyset = {"signer": keys.load_signing_key(sp), "approver": keys.load_signing_key(ap),
                  "spub": spub, "apub": apub}  # fmt: skip
        rows = [_round(base / f"r{i}", url, keyset) for i in range(ROUNDS)]
    finally:
        _clean(base)
    raw_plan, aegis_plan, resolve, raw_get, get, raw_install, install = (
        statistics.median(c) for c in zip(*rows, strict=True)
    )
    out: dict[str, Any] = {
        "plan_raw_s": round(raw_plan, 3),
        "plan_aegis_s": round(aegis_plan, 3),
        "plan_ratio": round(aegis_plan / raw_plan, 2),
        "plan_goal_met": aegis_plan <= 1.3 * raw_plan,
        # The planner alone, without the CLI's interpreter start, imports and store.
        "plan_resolve_in_process_s": round(resolve, 3),
    }
    for name, raw, through in (("get", raw_get, get), ("install", raw_install, install)):
        out.update({
            f"apply_{name}_raw_s": round(raw, 3),
            f"apply_{name}_aegisd_s": round(through, 3),
            f"apply_{name}_ratio": round(through / raw, 2),
            f"apply_{name}_goal_s": round(1.3 * raw + 0.3, 3),
            f"apply_{name}_goal_met": through <= 1.3 * raw + 0.3,
        })  # fmt: skip
    return out


if __name__ == "__main__":
    print(run())
