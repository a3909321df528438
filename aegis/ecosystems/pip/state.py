"""What is installed in a virtual environment: read from its ``*.dist-info`` directly.

Reading the metadata files is what ``pip list`` does, without starting an interpreter; the
reads are bounded because a venv is writable by whoever owns it (untrusted input).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import stat
from pathlib import Path

from aegis.ecosystems.pip.names import normalize

MAX_DISTS = 5000
MAX_HEADER = 64 * 1024


def _name_version(metadata: Path) -> tuple[str, str] | None:
    try:
        with metadata.open("rb") as f:
            head = f.read(MAX_HEADER).decode("utf-8", "replace")
    except OSError:
        return None
    return _parse_header(head)


def _parse_header(head: str) -> tuple[str, str] | None:
    name = version = ""
    for line in head.splitlines():
        if not line.strip():
            break
        key, _, value = line.partition(":")
        if key == "Name" and not name:
            name = value.strip()
        elif key == "Version" and not version:
            version = value.strip()
    return (normalize(name), version) if name and version else None


def site_packages(venv: Path) -> list[Path]:
    """The venv's site-packages directories (``lib/python3.X/site-packages``)."""
    return sorted(p for p in venv.glob("lib/python3*/site-packages") if p.is_dir())


def installed(venv: Path, *, target: bool = False) -> dict[str, str]:
    """Normalised name -> version of every distribution installed in ``venv``.

    ``target``: ``venv`` is a ``pip install --target`` directory, holding the dist-infos itself.
    """
    out: dict[str, str] = {}
    for sp in [venv] if target else site_packages(venv):
        for n, entry in enumerate(sorted(sp.glob("*.dist-info"))):
            if n >= MAX_DISTS:
                break
            found = _name_version(entry / "METADATA")
            if found is not None:
                out[found[0]] = found[1]
    return out


MAX_RECORD = 4 * 1024 * 1024


def _read_head(path: str, limit: int) -> bytes | None:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    try:
        return os.read(fd, limit)
    finally:
        os.close(fd)


def _site_dirs(venv: Path) -> list[str]:
    """``lib/python3*/site-packages``, listed so that an unreadable venv raises.

    (``Path.glob`` would return nothing for it, and an unreadable venv would look empty.)
    """
    try:
        with os.scandir(venv / "lib") as it:
            return sorted(f"{e.path}/site-packages" for e in it if e.name.startswith("python3"))
    except FileNotFoundError:
        return []


def fingerprints(venv: Path, *, target: bool = False) -> dict[str, str]:
    """Normalised name -> ``VERSION SHA256`` of every distribution in ``venv``.

    What ``pip freeze --all`` would list, and the SHA-256 of each ``RECORD`` (the file list
    with every installed file's hash), read directly: no interpreter is started, and a
    reinstall of the same version with other files still shows. Plain ``os`` calls, one read
    per file: the monitor runs this on every pass. Bounded like :func:`installed`;
    ``target`` as there.

    Raises:
        OSError: a dist-info exists but cannot be read (permissions).
    """
    out: dict[str, str] = {}
    for sp in [str(venv)] if target else _site_dirs(venv):
        try:
            with os.scandir(sp) as it:
                infos = sorted(e.path for e in it if e.name.endswith(".dist-info"))
        except FileNotFoundError:
            continue
        for info in infos[:MAX_DISTS]:
            head = _read_head(f"{info}/METADATA", MAX_HEADER)
            found = _parse_header(head.decode("utf-8", "replace")) if head else None
            if found is None:
                continue
            record = _read_head(f"{info}/RECORD", MAX_RECORD)
            digest = hashlib.sha256(record).hexdigest() if record is not None else "-"
            out[found[0]] = f"{found[1]} {digest}"
    return out


def drop_replaced(target: Path, old: dict[str, str]) -> list[str]:
    """Remove the ``*.dist-info`` of each ``name: old version`` from a ``--target`` directory.

    ``pip install --target --upgrade`` replaces a distribution's top-level packages but keeps
    the old version's dist-info (its name differs), so both would look installed. Runs as
    root in a directory its owner may change: the directory is opened without following
    links and each dist-info is removed through that descriptor (``shutil.rmtree`` with
    ``dir_fd`` never follows links). Returns the names removed.
    """
    removed: list[str] = []
    dfd = os.open(target, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
    try:
        for entry in sorted(os.listdir(dfd))[: MAX_DISTS * 4]:
            if not entry.endswith(".dist-info"):
                continue
            st = os.lstat(entry, dir_fd=dfd)
            if not stat.S_ISDIR(st.st_mode):
                continue
            found = _name_version(target / entry / "METADATA")
            if found is not None and old.get(found[0]) == found[1]:
                shutil.rmtree(entry, dir_fd=dfd)
                removed.append(entry)
    finally:
        os.close(dfd)
    return removed
