"""A cargo local registry written by tests (and the bench); optionally served as a sparse index.

Layout as cargo reads it (``[source.x] local-registry = DIR``): ``DIR/index/<prefix>/<name>``
with one JSON line per version (``cksum`` is the SHA-256 of the ``.crate``) and
``DIR/<name>-<version>.crate`` tar.gz files. :meth:`CargoRegistry.serve` serves the same
files over loopback HTTP as a sparse index (``config.json`` names ``dl``).

Example:
    reg = CargoRegistry(tmp_path / "registry")
    reg.add("tiny-dep", "1.0.0", lib="pub fn one() -> u32 { 1 }")
    reg.add("hello-bin", "1.0.0", deps={"tiny-dep": "1.0.0"}, main="fn main() {}")
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import subprocess
import tarfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote

from aegis.ecosystems.cargo.source import index_path

CRATES_IO = "registry+https://github.com/rust-lang/crates.io-index"


def find_cargo() -> str | None:
    """Debian's cargo, else the real binary behind rustup's proxy, else cargo on PATH."""
    if Path("/usr/bin/cargo").exists():
        return "/usr/bin/cargo"
    if shutil.which("rustup"):
        out = subprocess.run(["rustup", "which", "cargo"], capture_output=True, text=True,
                             check=False)  # fmt: skip
        if out.returncode == 0 and out.stdout.strip():
            return out.stdout.strip()
    found = shutil.which("cargo")
    return os.path.realpath(found) if found else None


def _tar_gz(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz", format=tarfile.GNU_FORMAT) as tf:
        for name, data in sorted(members.items()):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mode = 0o644
            info.mtime = 1_600_000_000
            tf.addfile(info, io.BytesIO(data))
    return buf.getvalue()


class CargoRegistry:
    """Crates on disk under ``root``; cksums remembered for lockfiles."""

    def __init__(self, root: Path) -> None:
        """Create the directories."""
        self.root = root
        (root / "index").mkdir(parents=True, exist_ok=True)
        self.cksums: dict[tuple[str, str], str] = {}
        self.url = ""

    def add(
        self,
        name: str,
        version: str,
        *,
        deps: dict[str, str] | None = None,
        main: str | None = None,
        lib: str | None = None,
        build_rs: str | None = None,
        manifest_extra: str = "",
        lock: bool = True,
        yanked: bool = False,
        members: dict[str, bytes] | None = None,
    ) -> str:
        """Publish ``name@version`` (exact ``deps`` already published); return its cksum."""
        deps = deps or {}
        toml = [f'[package]\nname = "{name}"\nversion = "{version}"\nedition = "2021"\n']
        toml.append(manifest_extra)
        if deps:
            toml.append("\n[dependencies]\n")
            toml.extend(f'{d} = "={v}"\n' for d, v in sorted(deps.items()))
        prefix = f"{name}-{version}"
        files: dict[str, bytes] = {f"{prefix}/Cargo.toml": "".join(toml).encode()}
        if main is not None:
            files[f"{prefix}/src/main.rs"] = main.encode()
        if lib is not None:
            files[f"{prefix}/src/lib.rs"] = lib.encode()
        if build_rs is not None:
            files[f"{prefix}/build.rs"] = build_rs.encode()
        if lock:
            files[f"{prefix}/Cargo.lock"] = self._lockfile(name, version, deps).encode()
        files.update(members or {})
        data = _tar_gz(files)
        return self.publish(name, version, data, deps=deps, yanked=yanked)

    def publish(
        self, name: str, version: str, data: bytes, *, deps: dict[str, str], yanked: bool = False
    ) -> str:
        """Write ``data`` as the crate and append its index line; return the cksum."""
        cksum = hashlib.sha256(data).hexdigest()
        (self.root / f"{name}-{version}.crate").write_bytes(data)
        line = {
            "name": name,
            "vers": version,
            "deps": [
                {"name": d, "req": f"={v}", "features": [], "optional": False,
                 "default_features": True, "target": None, "kind": "normal"}
                for d, v in sorted(deps.items())
            ],
            "cksum": cksum,
            "features": {},
            "yanked": yanked,
            "links": None,
        }  # fmt: skip
        path = self.root / "index" / index_path(name)
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("a") as f:
            f.write(json.dumps(line, separators=(",", ":")) + "\n")
        self.cksums[(name, version)] = cksum
        return cksum

    def _lockfile(self, name: str, version: str, deps: dict[str, str]) -> str:
        out = ["# This file is automatically @generated by Cargo.\n", "version = 3\n"]
        for d, v in sorted(deps.items()):
            out.append(f'\n[[package]]\nname = "{d}"\nversion = "{v}"\n'
                       f'source = "{CRATES_IO}"\nchecksum = "{self.cksums[(d, v)]}"\n')  # fmt: skip
        out.append(f'\n[[package]]\nname = "{name}"\nversion = "{version}"\n')
        if deps:
            out.append("dependencies = [\n" + "".join(f' "{d}",\n' for d in sorted(deps)) + "]\n")
        return "".join(out)

    @contextmanager
    def serve(self) -> Iterator[str]:
        """Serve as a sparse index on 127.0.0.1; yield its URL (with a trailing ``/``)."""
        registry = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: object) -> None:
                """Stay silent."""

            def do_GET(self) -> None:
                path = unquote(self.path.split("?", 1)[0]).lstrip("/")
                body: bytes | None = None
                if path == "config.json":
                    body = json.dumps({"dl": registry.url + "dl/{crate}-{version}.crate"}).encode()
                elif ".." not in path.split("/"):
                    base = registry.root / path[3:] if path.startswith("dl/") else (
                        registry.root / "index" / path)  # fmt: skip
                    if base.is_file():
                        body = base.read_bytes()
                self.send_response(200 if body is not None else 404)
                self.send_header("Content-Length", str(len(body or b"")))
                self.end_headers()
                self.wfile.write(body or b"")

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{server.server_address[1]}/"
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        try:
            yield self.url
        finally:
            server.shutdown()
            server.server_close()
