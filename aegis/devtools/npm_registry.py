"""A static npm registry on loopback: packuments and tarballs written by tests (and the bench).

Real npm talks HTTP to it: ``GET /<name>`` returns the packument, ``GET /<name>/-/<file>.tgz``
the tarball. Each version's ``dist.integrity`` is the SHA-512 of the tarball bytes, as a real
registry publishes it. A local registry cannot sign, so no signatures or attestations.

Example:
    reg = NpmRegistry(tmp_path / "registry")
    reg.add("left-pad", "1.3.0")
    with reg.serve() as url:   # http://127.0.0.1:PORT/
        ...
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import tarfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import unquote


class NpmRegistry:
    """Packuments in memory and on disk; tarballs under ``root/tarballs``."""

    def __init__(self, root: Path) -> None:
        """Create the directories."""
        self.root = root
        (root / "tarballs").mkdir(parents=True, exist_ok=True)
        self.url = ""
        self.docs: dict[str, dict[str, Any]] = {}

    def add(
        self,
        name: str,
        version: str,
        *,
        dependencies: dict[str, str] | None = None,
        scripts: dict[str, str] | None = None,
        bin: dict[str, str] | None = None,
        files: dict[str, str] | None = None,
        published: str = "2020-01-01T00:00:00.000Z",
    ) -> None:
        """Publish ``name@version`` (becomes ``latest``)."""
        manifest: dict[str, Any] = {"name": name, "version": version}
        if dependencies:
            manifest["dependencies"] = dependencies
        if scripts:
            manifest["scripts"] = scripts
        if bin:
            manifest["bin"] = bin
        members = {"package/package.json": json.dumps(manifest, indent=2)}
        members.update({f"package/{k}": v for k, v in (files or {}).items()})
        members.setdefault("package/index.js", "module.exports = 1;\n")
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w:gz") as tf:
            for path, text in members.items():
                data = text.encode()
                info = tarfile.TarInfo(path)
                info.size = len(data)
                info.mode = 0o644
                tf.addfile(info, io.BytesIO(data))
        data = buf.getvalue()
        base = name.rsplit("/", maxsplit=1)[-1]
        fname = f"{base}-{version}.tgz"
        (self.root / "tarballs" / name.replace("/", "%2f")).mkdir(parents=True, exist_ok=True)
        (self.root / "tarballs" / name.replace("/", "%2f") / fname).write_bytes(data)
        integrity = "sha512-" + base64.b64encode(hashlib.sha512(data).digest()).decode()
        doc = self.docs.setdefault(name, {"name": name, "dist-tags": {}, "versions": {},
                                          "time": {}})  # fmt: skip
        version_doc = dict(manifest)
        if scripts and any(k in scripts for k in ("preinstall", "install", "postinstall")):
            version_doc["hasInstallScript"] = True
        version_doc["dist"] = {
            "integrity": integrity,
            "shasum": hashlib.sha1(data).hexdigest(),  # noqa: S324 - npm's legacy field
            "tarball": f"@@REGISTRY@@{name}/-/{fname}",
        }
        doc["versions"][version] = version_doc
        doc["dist-tags"]["latest"] = version
        if published:  # "": a registry that states no time for this version
            doc["time"][version] = published

    def tarball(self, name: str, fname: str) -> bytes | None:
        """The bytes of one tarball, or None."""
        path = self.root / "tarballs" / name.replace("/", "%2f") / fname
        return path.read_bytes() if path.is_file() else None

    @contextmanager
    def serve(self) -> Iterator[str]:
        """Serve on 127.0.0.1; yield the registry URL (with a trailing ``/``)."""
        registry = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: object) -> None:
                """Stay silent."""

            def _send(self, code: int, body: bytes, kind: str) -> None:
                self.send_response(code)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self) -> None:
                path = unquote(self.path.split("?", 1)[0]).lstrip("/")
                if "/-/" in path:
                    name, fname = path.split("/-/", 1)
                    data = registry.tarball(name, fname)
                    if data is not None:
                        self._send(200, data, "application/octet-stream")
                        return
                elif path in registry.docs:
                    text = json.dumps(registry.docs[path]).replace("@@REGISTRY@@", registry.url)
                    self._send(200, text.encode(), "application/json")
                    return
                self._send(404, b'{"error":"Not found"}', "application/json")

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{server.server_address[1]}/"
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        try:
            yield self.url
        finally:
            server.shutdown()
            server.server_close()
