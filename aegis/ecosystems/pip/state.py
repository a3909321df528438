"""What is installed in a virtual environment: read from its ``*.dist-info`` directly.

Reading the metadata files is what ``pip list`` does, without starting an interpreter; the
reads are bounded because a venv is writable by whoever owns it (untrusted input).
"""

from __future__ import annotations

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
