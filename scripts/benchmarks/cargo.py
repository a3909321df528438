"""Cargo figures (issue 14): planning and applying through Aegis vs raw reads and raw cargo.

A local registry (``aegis.devtools.cargo_registry``) holds ``bench-bin`` and one locked
dependency. Same registry, same run; medians over ROUNDS.

- ``plan_inprocess_ratio`` (goal <= 1.3): the planner in process, after its imports
  (``for_tool(CARGO).plan``: index read, both ``.crate`` files read and hashed against the
  index cksum, their archives read strictly in one streaming pass, manifests, the
  installed crate's lockfile and build scripts parsed and scored, the plan record) over the
  raw read alone (the index lines parsed and the ``.crate`` bytes hashed, in process);
  alternating, medians of PLAN_ROUNDS. Nothing is remembered between plans but
  ``cargo --version`` of the same binary.
  Reference figures (not the goal's baseline): ``plan_raw_read_and_inflate_s``, the same
  raw read plus inflating both ``.crate`` files once, and the plan over it.
  Informational, ``plan_realistic_*``: the same two sides (and the raw read plus inflating)
  for ``bench-big``, a crate of REALISTIC_FILES seeded source files (about 1 MB inflated,
  a few hundred KB compressed) with the same dependency. The goal's key stays on
  ``bench-bin``. On the small fixture the plan's fixed costs (three TOML documents, the
  plan record) dwarf a read of a few hundred bytes; on a realistic crate inflating the
  archive, which any reader of its contents must do, dwarfs the raw read instead.
  Also reported: ``cargo info NAME@V`` against the same registry (cargo's own read-only look
  at one crate) and, informational, ``cli_seconds``: the whole CLI (``aegis cargo install
  --plan``: interpreter start, planning, the request row, the plan file).
- ``apply``: ``aegis.execute.service.apply`` of a signed execution plan through aegisd (its
  checks, its own re-resolution, staging the signed crates by cksum, ``cargo install
  --locked --offline``, drift, audit) over running the same ``cargo install --locked
  --offline`` directly against the same registry into another root. Both compile the crate
  and its dependency from scratch. Goal: <= 1.3x + 0.3 s.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import zlib
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import HERE, aegisd, apply_figures, keyset, through_aegisd, timed
from _common import env_for as _env
from _common import sign as _sign

ROUNDS = 5
PLAN_ROUNDS = 30
REALISTIC_FILES = 100
MAIN = 'fn main() { println!("{}", bench_dep::one()); }\n'


def _median(f: Any, n: int) -> float:
    xs = []
    for _ in range(n):
        t0 = time.perf_counter()
        f()
        xs.append(time.perf_counter() - t0)
    return statistics.median(xs)


def _realistic_members(prefix: str) -> dict[str, bytes]:
    """REALISTIC_FILES source files of Rust-like text (seeded), compressing about as code does."""
    rnd = random.Random(14)  # noqa: S311 - reproducible filler, not a secret
    words = ["fn", "let", "mut", "self", "impl", "pub", "match", "Some", "None", "Ok", "Err",
             "return", "if", "else", "for", "in", "while", "struct", "enum", "use", "mod",
             "u32", "usize", "String", "Vec", "&str", "->", "=>", "{", "}", "(", ")", ";",
             *(f"name_{i}" for i in range(400))]  # fmt: skip
    out = {}
    for i in range(REALISTIC_FILES):
        lines = (" ".join(rnd.choices(words, k=rnd.randint(3, 12))) for _ in range(160))
        out[f"{prefix}/src/m{i:03d}.rs"] = "\n".join(lines).encode()
    return out


def _plan_trio(reg: Any, cfg: Any, intent: Any, top: str) -> tuple[Any, Any, Any]:
    """The raw read, the raw read plus inflating, and the in-process plan of ``top``.

    The raw read: the index lines of ``top`` and ``bench-dep`` parsed and both ``.crate``
    files' bytes hashed; the second also inflates each ``.crate`` once (no tar, no parsing).
    """
    from aegis.ecosystems import for_tool
    from aegis.ecosystems.cargo.source import index_path
    from aegis.model import Tool

    eco = for_tool(Tool.CARGO)

    def raw(inflate: bool = False) -> None:
        for name, version in ((top, "1.0.0"), ("bench-dep", "1.0.0")):
            data = (reg.root / "index" / index_path(name)).read_bytes()
            [json.loads(line) for line in data.splitlines()]
            crate = (reg.root / f"{name}-{version}.crate").read_bytes()
            hashlib.sha256(crate).hexdigest()
            if inflate:
                zlib.decompressobj(wbits=31).decompress(crate)

    def plan() -> None:
        assert eco.plan(cfg, intent, datetime.now(UTC)).failure is None

    return raw, lambda: raw(inflate=True), plan


def _plan_figures(reg: Any, cfg: Any, intent: Any, base: Path) -> dict[str, float]:
    from aegis.ecosystems import for_tool
    from aegis.ecosystems.cargo.source import index_path
    from aegis.model import Tool

    def raw() -> None:
        for name, version in (("bench-bin", "1.0.0"), ("bench-dep", "1.0.0")):
            data = (reg.root / "index" / index_path(name)).read_bytes()
            [json.loads(line) for line in data.splitlines()]
            hashlib.sha256((reg.root / f"{name}-{version}.crate").read_bytes()).hexdigest()

    def raw_inflated() -> None:
        # The reference floor of any planner that must look inside the archive: the raw
        # read above plus inflating each .crate once (no tar, no parsing).
        for name, version in (("bench-bin", "1.0.0"), ("bench-dep", "1.0.0")):
            data = (reg.root / "index" / index_path(name)).read_bytes()
            [json.loads(line) for line in data.splitlines()]
            crate = (reg.root / f"{name}-{version}.crate").read_bytes()
            hashlib.sha256(crate).hexdigest()
            zlib.decompressobj(wbits=31).decompress(crate)

    eco = for_tool(Tool.CARGO)
    eco.plan(cfg, intent, datetime.now(UTC))  # warm: imports, cargo --version
    raw()
    raw_inflated()
    raws, inflated, plans = [], [], []
    for _ in range(PLAN_ROUNDS):  # alternating: a load that comes and goes hits both sides
        raws.append(_median(raw, 1))
        inflated.append(_median(raw_inflated, 1))
        plans.append(_median(lambda: eco.plan(cfg, intent, datetime.now(UTC)), 1))
    plan_raw, plan_aegis = statistics.median(raws), statistics.median(plans)
    big_intent = replace(intent, targets=("bench-big",))
    big_raw, big_inflated, big_plan = _plan_trio(reg, cfg, big_intent, "bench-big")
    big_raw()
    big_plan()
    big: list[list[float]] = [[], [], []]
    for _ in range(PLAN_ROUNDS):
        for xs, f in zip(big, (big_raw, big_inflated, big_plan), strict=True):
            xs.append(_median(f, 1))
    home = base / "info-home"
    home.mkdir()
    (home / "config.toml").write_text(
        f'[source.crates-io]\nreplace-with = "b"\n[source.b]\nlocal-registry = "{reg.root}"\n'
        "[net]\noffline = true\n"
    )
    env = {"PATH": f"{os.path.dirname(cfg.cargo)}:/usr/bin:/bin", "CARGO_HOME": str(home)}
    info = [cfg.cargo, "info", "bench-bin@1.0.0", "--registry", "crates-io"]
    ok = subprocess.run(info, env=env, capture_output=True, check=False).returncode == 0
    info_s = statistics.median(timed(info, env, timeout=600) for _ in range(ROUNDS)) if ok else 0.0
    cli = [sys.executable, "-m", "aegis", "cargo", "install", "bench-bin", "--registry-dir",
           str(reg.root), "--plan"]  # fmt: skip
    cenv = {**_env(cfg.home), "AEGIS_CARGO": cfg.cargo}
    cli_s = statistics.median(timed(cli, cenv, timeout=600) for _ in range(ROUNDS))
    return {"raw": plan_raw, "aegis": plan_aegis, "info": info_s, "cli": cli_s,
            "inflated": statistics.median(inflated), "big_raw": statistics.median(big[0]),
            "big_inflated": statistics.median(big[1]),
            "big_aegis": statistics.median(big[2])}  # fmt: skip


def _apply_round(tmp: Path, reg: Any, base_home: Path, keys: dict[str, Any]) -> tuple[float, float]:
    from aegis.config import load_config
    from aegis.ecosystems import for_tool
    from aegis.ecosystems.cargo.names import registry_dir_url, root_location
    from aegis.model import Intent, Operation, Tool

    home = tmp / "home"
    shutil.copytree(base_home / "etc", home / "etc")
    env = _env(home)
    cfg = load_config(env)
    intent = Intent(Tool.CARGO, Operation.INSTALL, ("bench-bin",), "bench",
                    "2026-01-01T00:00:00Z", location=root_location(str(cfg.cargo_root)),
                    registry=registry_dir_url(str(reg.root)))  # fmt: skip
    plan = for_tool(Tool.CARGO).plan(cfg, intent, datetime.now(UTC))
    ep_path = tmp / "ep.json"
    ep_path.write_bytes(_sign(cfg, plan, keys["signer"], keys["approver"]))
    # Raw: the same argv against the same registry, its own CARGO_HOME, another root.
    raw_home = tmp / "raw"
    (raw_home / "home").mkdir(parents=True)
    (raw_home / "home/config.toml").write_text(
        f'[source.crates-io]\nreplace-with = "b"\n[source.b]\nlocal-registry = "{reg.root}"\n'
        "[net]\noffline = true\n"
    )
    raw_argv = list(plan.command_preview)
    work = str(cfg.aegisd_dir / "cargo")
    raw_argv = [a.replace(work, str(raw_home)) for a in raw_argv]
    raw_argv[raw_argv.index("--root") + 1] = str(tmp / "raw-root")
    with aegisd(env, keys) as sock:
        raw_apply = timed(raw_argv, timeout=600)
        through = through_aegisd(cfg, env, ep_path, keys["spub"], sock)
    return raw_apply, through


def _apply_rounds(base: Path, reg: Any, home: Path, keys: dict[str, Any]) -> list[Any]:
    """ROUNDS rounds; one refused for a dpkg lock someone else holds is run again.

    aegisd takes dpkg's frontend lock for every apply; such a refusal ran nothing.
    """
    from aegis.errors import EnvironmentFailure

    rows: list[Any] = []
    for attempt in range(ROUNDS * 4):
        if len(rows) == ROUNDS:
            break
        try:
            rows.append(_apply_round(base / f"r{attempt}", reg, home, keys))
        except EnvironmentFailure as e:
            if "dpkg-locked" not in e.message:
                raise
            time.sleep(2)
    if len(rows) < ROUNDS:
        raise RuntimeError("the host's dpkg lock stayed busy")
    return rows


def run() -> dict[str, Any]:
    """Medians of both sides of both figures, their ratios and whether the goals hold."""
    from aegis.config import load_config
    from aegis.devtools.cargo_registry import CargoRegistry, find_cargo
    from aegis.ecosystems.cargo.names import registry_dir_url, root_location
    from aegis.model import Intent, Operation, Tool

    cargo = find_cargo()
    if cargo is None:
        return {"skipped": "no cargo on this machine (scripts/test installs Debian's)"}
    base = Path(tempfile.mkdtemp(prefix="aegis-bench-cargo-"))
    try:
        reg = CargoRegistry(base / "registry")
        reg.add("bench-dep", "1.0.0", lib="pub fn one() -> u32 { 1 }\n")
        reg.add("bench-bin", "1.0.0", deps={"bench-dep": "1.0.0"}, main=MAIN)
        reg.add("bench-big", "1.0.0", deps={"bench-dep": "1.0.0"}, main=MAIN,
                members=_realistic_members("bench-big-1.0.0"))  # fmt: skip
        big_bytes = (reg.root / "bench-big-1.0.0.crate").stat().st_size
        home = base / "home"
        (home / "etc/aegis").mkdir(parents=True)
        policy = (HERE / "aegis/policy/default_policy.toml").read_text()
        url = registry_dir_url(str(reg.root))
        (home / "etc/aegis/policy.toml").write_text(
            policy + f'\n[[registries]]\nname = "bench"\necosystem = "cargo"\nurl = "{url}"\n'
        )
        # dpkg's locks (aegisd takes them for every apply) in a root of its own, not the host's.
        dpkg = base / "dpkg-root"
        (dpkg / "var/lib/dpkg").mkdir(parents=True)
        (dpkg / "var/lib/dpkg/status").write_text("")
        (home / "etc/aegis/aegis.toml").write_text(f'cargo = "{cargo}"\ndpkg_root = "{dpkg}"\n')
        cfg = load_config(_env(home))
        intent = Intent(Tool.CARGO, Operation.INSTALL, ("bench-bin",), "bench",
                        "2026-01-01T00:00:00Z", location=root_location(str(cfg.cargo_root)),
                        registry=url)  # fmt: skip
        plan = _plan_figures(reg, cfg, intent, base)
        keys = keyset(base / "keys")
        rows = _apply_rounds(base, reg, home, keys)
    finally:
        shutil.rmtree(base, ignore_errors=True)
    raw_apply, through = (statistics.median(c) for c in zip(*rows, strict=True))
    return {
        "plan_measured": (
            "in process, after imports: for_tool(CARGO).plan of bench-bin (index, both "
            ".crate files hashed and read, manifests, lockfile, build scripts) over the raw "
            f"index read with the .crate bytes hashed; alternating, medians of {PLAN_ROUNDS}"
        ),
        "plan_raw_index_read_s": round(plan["raw"], 5),
        "plan_inprocess_s": round(plan["aegis"], 5),
        "plan_inprocess_ratio": round(plan["aegis"] / plan["raw"], 2),
        "plan_inprocess_goal_met": plan["aegis"] <= 1.3 * plan["raw"],
        # Reference, not the goal's baseline: the raw read plus inflating both .crate files
        # (what no planner that reads inside the archive can skip), and the plan over it.
        "plan_raw_read_and_inflate_s": round(plan["inflated"], 5),
        "plan_raw_inflate_over_raw_read": round(plan["inflated"] / plan["raw"], 2),
        "plan_inprocess_over_raw_read_and_inflate": round(plan["aegis"] / plan["inflated"], 2),
        "plan_cargo_info_s": round(plan["info"], 3),
        "plan_inprocess_over_cargo_info": round(plan["aegis"] / plan["info"], 2)
        if plan["info"]
        else None,
        # Informational: a crate of realistic size (REALISTIC_FILES source files), the same
        # two sides; the read is no longer trivially small next to the plan's fixed costs.
        "plan_realistic_crate": f"bench-big: {REALISTIC_FILES + 4} files, {big_bytes} bytes",
        "plan_realistic_raw_s": round(plan["big_raw"], 5),
        "plan_realistic_inprocess_s": round(plan["big_aegis"], 5),
        "plan_realistic_ratio": round(plan["big_aegis"] / plan["big_raw"], 2),
        "plan_realistic_raw_read_and_inflate_s": round(plan["big_inflated"], 5),
        "plan_realistic_over_raw_read_and_inflate": round(
            plan["big_aegis"] / plan["big_inflated"], 2
        ),
        # Informational: the whole CLI, interpreter start and the store included.
        "cli_seconds": round(plan["cli"], 3),
        **apply_figures("apply", raw_apply, through, net=False),
    }


if __name__ == "__main__":
    print(run())
