"""Builders of small .deb files for the contents tests.

``make_deb`` writes a .deb byte by byte (ar + tar.gz/xz/zst, Python only) so tests can
also build packages dpkg-deb would refuse (``..`` members, device nodes, broken
archives). ``dpkg_deb`` builds a real one with ``dpkg-deb --build`` from a tree.
"""

from __future__ import annotations

import io
import subprocess
import tarfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest
import zstandard


@dataclass(frozen=True)
class Entry:
    """One data-archive entry for :func:`make_deb`."""

    name: str
    mode: int = 0o644
    kind: bytes = tarfile.REGTYPE
    content: bytes = b""
    linkname: str = ""


def _tar(entries: Sequence[tuple[tarfile.TarInfo, bytes]], compression: str) -> bytes:
    buf = io.BytesIO()
    mode = {"gz": "w:gz", "xz": "w:xz", "": "w", "zst": "w"}[compression]
    with tarfile.open(fileobj=buf, mode=mode, format=tarfile.GNU_FORMAT) as tar:
        for info, data in entries:
            tar.addfile(info, io.BytesIO(data) if info.isreg() else None)
    if compression == "zst":
        return zstandard.ZstdCompressor().compress(buf.getvalue())
    return buf.getvalue()


def _ar(members: Sequence[tuple[str, bytes]]) -> bytes:
    out = bytearray(b"!<arch>\n")
    for name, data in members:
        header = f"{name:<16}{0:<12}{0:<6}{0:<6}{'100644':<8}{len(data):<10}".encode() + b"`\n"
        assert len(header) == 60
        out += header + data
        if len(data) % 2:
            out += b"\n"
    return bytes(out)


def build_deb_bytes(
    *,
    package: str = "fixture",
    version: str = "1.0",
    description: str = "a fixture\n more text",
    scripts: Mapping[str, str | bytes] | None = None,
    entries: Sequence[Entry] = (),
    compression: str = "gz",
    extra_control: str = "",
) -> bytes:
    """A complete .deb as bytes."""
    control = (
        f"Package: {package}\nVersion: {version}\nArchitecture: all\n"
        f"Maintainer: T <t@example.invalid>\n{extra_control}Description: {description}\n"
    ).encode()
    ctl: list[tuple[tarfile.TarInfo, bytes]] = []
    for name, body in {"control": control, **(scripts or {})}.items():
        data = body.encode() if isinstance(body, str) else body
        info = tarfile.TarInfo("./" + name)
        info.size = len(data)
        info.mode = 0o755 if name not in ("control", "triggers") else 0o644
        ctl.append((info, data))
    dat: list[tuple[tarfile.TarInfo, bytes]] = []
    for e in entries:
        info = tarfile.TarInfo(e.name)
        info.type = e.kind
        info.mode = e.mode
        info.linkname = e.linkname
        if e.kind == tarfile.REGTYPE:
            info.size = len(e.content)
        dat.append((info, e.content))
    ext = f".{compression}" if compression else ""
    return _ar(
        [
            ("debian-binary", b"2.0\n"),
            (f"control.tar{ext}", _tar(ctl, compression)),
            (f"data.tar{ext}", _tar(dat, compression)),
        ]
    )


@pytest.fixture
def make_deb(tmp_path: Path) -> Callable[..., Path]:
    """Write :func:`build_deb_bytes` output to a file in ``tmp_path``; returns its path."""
    counter = iter(range(1_000_000))

    def make(**kwargs: object) -> Path:
        path = tmp_path / f"pkg-{next(counter)}.deb"
        path.write_bytes(build_deb_bytes(**kwargs))  # type: ignore[arg-type]
        return path

    return make


@pytest.fixture
def dpkg_deb(tmp_path: Path) -> Callable[..., Path]:
    """Build a real .deb with ``dpkg-deb --build`` from control text, scripts and files."""
    counter = iter(range(1_000_000))

    def build(
        package: str,
        version: str,
        *,
        scripts: Mapping[str, str] | None = None,
        files: Mapping[str, tuple[str, int]] | None = None,
        compression: str = "gzip",
    ) -> Path:
        root = tmp_path / f"tree-{next(counter)}"
        (root / "DEBIAN").mkdir(parents=True)
        (root / "DEBIAN/control").write_text(
            f"Package: {package}\nVersion: {version}\nArchitecture: all\n"
            "Maintainer: T <t@example.invalid>\nDescription: real fixture\n"
        )
        for name, body in (scripts or {}).items():
            p = root / "DEBIAN" / name
            p.write_text(body)
            p.chmod(0o755)
        for path, (content, mode) in (files or {}).items():
            p = root / path.lstrip("/")
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_text(content)
            p.chmod(mode)
        out = tmp_path / f"{package}_{version}_{next(counter)}.deb"
        subprocess.run(
            ["dpkg-deb", "--root-owner-group", f"-Z{compression}", "--build", str(root), str(out)],
            check=True,
            capture_output=True,
        )
        return out

    return build
