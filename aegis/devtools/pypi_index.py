"""A static PEP 503 index on loopback, with hand-built wheels and sdists (tests, bench, demo).

Wheels are real zip files with ``METADATA``, ``WHEEL``, ``RECORD`` and optional
``entry_points.txt``, ``.pth`` files and fake native modules; real pip installs them.

Example:
    idx = PypiIndex(tmp_path / "index")
    idx.add_wheel("demo-lib", "1.0")
    with idx.serve() as url:   # http://127.0.0.1:PORT/simple/
        ...
"""

from __future__ import annotations

import base64
import hashlib
import html
import io
import json
import tarfile
import threading
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from aegis.ecosystems.pip.names import normalize


def _norm(name: str) -> str:

    return normalize(name)


def _record_line(path: str, data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"{path},sha256={digest},{len(data)}"


SIMPLE_JSON = "application/vnd.pypi.simple.v1+json"


class _Quiet(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        """Stay silent: the tests' output is pytest's."""

    def do_GET(self) -> None:
        """PEP 691 content negotiation: the JSON page when asked for and there is one."""
        page = Path(self.translate_path(self.path)) / "index.json"
        if SIMPLE_JSON in self.headers.get("Accept", "") and page.is_file():
            body = page.read_bytes()
            self.send_response(200)
            self.send_header("Content-Type", SIMPLE_JSON)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            return
        super().do_GET()


class PypiIndex:
    """Files under ``root/files``, one ``root/simple/<name>/index.html`` per project."""

    def __init__(self, root: Path) -> None:
        """Create the directories."""
        self.root = root
        (root / "files").mkdir(parents=True, exist_ok=True)
        (root / "simple").mkdir(parents=True, exist_ok=True)
        self.links: dict[str, list[tuple[str, str, bool]]] = {}
        self.uploaded: dict[str, str] = {}
        """Filename -> PEP 700 upload-time."""

    def add_wheel(
        self,
        name: str,
        version: str,
        *,
        requires: tuple[str, ...] = (),
        pth: dict[str, str] | None = None,
        scripts: dict[str, str] | None = None,
        native: bool = False,
        yanked: bool = False,
        publish_hash: bool = True,
        wrong_hash: bool = False,
        uploaded: str | None = None,
    ) -> Path:
        """Build ``name-version-py3-none-any.whl`` and list it; return its path.

        ``uploaded``: its PEP 700 ``upload-time``; a project with one also gets a PEP 691
        JSON page (pip and the planner ask for it), one without stays HTML only.
        """
        dist = name.replace("-", "_")
        pkg = dist.lower()
        info = f"{dist}-{version}.dist-info"
        meta = f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n"
        meta += "".join(f"Requires-Dist: {r}\n" for r in requires)
        files: dict[str, bytes] = {
            f"{pkg}/__init__.py": f"VERSION = {version!r}\n".encode(),
            f"{info}/METADATA": meta.encode(),
            f"{info}/WHEEL": b"Wheel-Version: 1.0\nGenerator: aegis-test\n"
            b"Root-Is-Purelib: true\nTag: py3-none-any\n",
        }
        for fname, body in (pth or {}).items():
            files[fname] = body.encode()
        if scripts:
            lines = "".join(f"{k} = {v}\n" for k, v in scripts.items())
            files[f"{info}/entry_points.txt"] = f"[console_scripts]\n{lines}".encode()
        if native:
            files[f"{pkg}/_speedups.cpython-311-x86_64-linux-gnu.so"] = b"\x7fELF fake"
        record = [_record_line(p, d) for p, d in files.items()] + [f"{info}/RECORD,,"]
        files[f"{info}/RECORD"] = ("\n".join(record) + "\n").encode()
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w") as zf:
            for p, d in files.items():
                zf.writestr(p, d)
        path = self.root / "files" / f"{dist}-{version}-py3-none-any.whl"
        path.write_bytes(buf.getvalue())
        self._link(name, path, yanked, publish_hash, wrong_hash, uploaded=uploaded)
        return path

    def add_sdist(self, name: str, version: str) -> Path:
        """A minimal sdist (``pyproject.toml`` with setuptools); listed like a wheel."""
        dist = name.replace("-", "_")
        base = f"{dist}-{version}"
        files = {
            f"{base}/PKG-INFO": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n",
            f"{base}/pyproject.toml": "[build-system]\nrequires = []\n"
            'build-backend = "setuptools.build_meta"\n',
        }
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w:gz") as tf:
            for p, text in files.items():
                data = text.encode()
                ti = tarfile.TarInfo(p)
                ti.size = len(data)
                tf.addfile(ti, io.BytesIO(data))
        path = self.root / "files" / f"{base}.tar.gz"
        path.write_bytes(buf.getvalue())
        self._link(name, path, False, True)
        return path

    def _link(
        self,
        name: str,
        path: Path,
        yanked: bool,
        publish_hash: bool,
        wrong: bool = False,
        *,
        uploaded: str | None = None,
    ) -> None:
        project = _norm(name)
        digest = hashlib.sha256(path.read_bytes() + (b"x" if wrong else b"")).hexdigest()
        self.links.setdefault(project, []).append(
            (path.name, digest if publish_hash else "", yanked)
        )
        if uploaded is not None:
            self.uploaded[path.name] = uploaded
        anchors = []
        files = []
        for fname, digest, is_yanked in self.links[project]:
            files.append(
                {"filename": fname, "url": f"../../files/{fname}",
                 "hashes": {"sha256": digest} if digest else {}, "yanked": is_yanked,
                 **({"upload-time": self.uploaded[fname]} if fname in self.uploaded else {})}
            )  # fmt: skip
            href = f"../../files/{fname}" + (f"#sha256={digest}" if digest else "")
            extra = ' data-yanked=""' if is_yanked else ""
            anchors.append(f'<a href="{html.escape(href)}"{extra}>{html.escape(fname)}</a><br>')
        d = self.root / "simple" / project
        d.mkdir(exist_ok=True)
        page = "<!DOCTYPE html><html><body>\n" + "\n".join(anchors) + "\n</body></html>\n"
        (d / "index.html").write_text(page)
        if any(f["filename"] in self.uploaded for f in files):
            doc = {"meta": {"api-version": "1.1"}, "name": project, "files": files}
            (d / "index.json").write_text(json.dumps(doc))

    @contextmanager
    def serve(self) -> Iterator[str]:
        """Serve the index on 127.0.0.1; yield its ``/simple/`` URL."""
        handler = partial(_Quiet, directory=str(self.root))
        server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        try:
            yield f"http://127.0.0.1:{server.server_address[1]}/simple/"
        finally:
            server.shutdown()
            server.server_close()
