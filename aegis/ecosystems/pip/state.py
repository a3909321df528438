"""What is installed in a virtual environment: read from its ``*.dist-info`` directly.

Reading the metadata files is what ``pip list`` does, without starting an interpreter; the
reads are bounded because a venv is writable by whoever owns it (untrusted input).
"""

from __future__ import annotations

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


def installed(venv: Path) -> dict[str, str]:
    """Normalised name -> version of every distribution installed in ``venv``."""
    out: dict[str, str] = {}
    for sp in site_packages(venv):
        for n, entry in enumerate(sorted(sp.glob("*.dist-info"))):
            if n >= MAX_DISTS:
                break
            found = _name_version(entry / "METADATA")
            if found is not None:
                out[found[0]] = found[1]
    return out
