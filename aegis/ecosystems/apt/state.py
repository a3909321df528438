"""The package-state hash: one SHA-256 over everything that decides what apt would do.

It lets the executor prove that nothing moved between planning and running.

Inputs (each file by path and SHA-256): dpkg's status file, the release files
(InRelease / Release / Release.gpg) in apt's lists for every configured source,
the source files, the keyrings (apt's trusted keyrings and every Signed-By path),
apt preferences (pins), plus the apt and dpkg configuration hashes. Missing files
are recorded as absent, so creating one changes the hash too.

:func:`package_state_hash` is pure; :func:`gather_state_inputs` reads the files.

Example:
    >>> h = package_state_hash(StateInputs("0" * 64, {}, {}, {}, {}, "a", "b"))
    >>> len(h)
    64
"""

from __future__ import annotations

import hashlib
import stat
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from aegis.canonical import canonical_hash
from aegis.ecosystems.apt.evidence.sources import (
    AptPaths,
    SourceEntry,
    lists_prefix,
    parse_sources,
    signed_by_tokens,
)

ABSENT = "absent"


@dataclass(frozen=True)
class StateInputs:
    """What the package-state hash covers (path -> sha256 or ``absent``)."""

    status: str
    release_files: Mapping[str, str]
    sources: Mapping[str, str]
    keyrings: Mapping[str, str]
    preferences: Mapping[str, str]
    apt_config_hash: str
    dpkg_config_hash: str


def package_state_hash(inputs: StateInputs) -> str:
    """SHA-256 over the canonical JSON of ``inputs``."""
    return canonical_hash(
        {
            "status": inputs.status,
            "release_files": dict(sorted(inputs.release_files.items())),
            "sources": dict(sorted(inputs.sources.items())),
            "keyrings": dict(sorted(inputs.keyrings.items())),
            "preferences": dict(sorted(inputs.preferences.items())),
            "apt_config": inputs.apt_config_hash,
            "dpkg_config": inputs.dpkg_config_hash,
        }
    )


def _sha(path: Path) -> str:
    try:
        mode = path.stat().st_mode
    except (FileNotFoundError, NotADirectoryError):
        return ABSENT
    if stat.S_ISDIR(mode):
        return "directory"
    if not stat.S_ISREG(mode):
        return "special"  # a FIFO or device: reading it could block for ever
    try:
        h = hashlib.sha256()
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
        return h.hexdigest()
    except (FileNotFoundError, NotADirectoryError):
        return ABSENT
    except IsADirectoryError:
        return "directory"


def _dir_files(d: str, suffixes: tuple[str, ...] | None) -> list[Path]:
    p = Path(d)
    if d == "/dev/null" or not p.is_dir():
        return []
    return sorted(
        f
        for f in p.iterdir()
        if not f.name.startswith(".") and (suffixes is None or f.suffix in suffixes)
    )


def source_files(paths: AptPaths) -> list[Path]:
    """sources.list and sources.list.d/*.list|*.sources, in apt's order."""
    out = [] if paths.sourcelist == "/dev/null" else [Path(paths.sourcelist)]
    return out + _dir_files(paths.sourceparts, (".list", ".sources"))


def configured_entries(paths: AptPaths) -> list[SourceEntry]:
    """Every configured (URI, suite, component), first occurrence wins, in apt's order.

    Both formats (one-line ``.list`` and deb822 ``.sources``) through
    :func:`~aegis.ecosystems.apt.evidence.sources.parse_sources`; unreadable files and
    anything but regular files are skipped.
    """
    files: list[tuple[str, str]] = []
    for p in source_files(paths):
        if not p.is_file():
            continue  # a FIFO would block this read for ever; apt skips such files too
        try:
            files.append((str(p), p.read_text(errors="replace")))
        except OSError:
            continue
    seen: set[tuple[str, str, str]] = set()
    out: list[SourceEntry] = []
    for e in parse_sources(files):
        if (e.uri, e.suite, e.component) not in seen:
            seen.add((e.uri, e.suite, e.component))
            out.append(e)
    return out


def preference_files(paths: AptPaths) -> list[Path]:
    """List apt's ``preferences`` and ``preferences.d/*`` (apt ignores other names)."""
    out = [] if paths.preferences == "/dev/null" else [Path(paths.preferences)]
    return out + [p for p in _dir_files(paths.preferencesparts, None) if p.suffix in ("", ".pref")]


def gather_state_inputs(
    paths: AptPaths,
    entries: Iterable[SourceEntry],
    apt_config_hash: str,
    dpkg_config_hash: str,
) -> StateInputs:
    """Hash every file the package-state hash covers (the edge)."""
    entries = list(entries)
    releases: dict[str, str] = {}
    for e in entries:
        base = Path(paths.lists) / lists_prefix(e.uri, e.suite)
        for suffix in ("InRelease", "Release", "Release.gpg"):
            p = Path(f"{base}{suffix}")
            releases[str(p)] = _sha(p)
    keyrings: dict[str, str] = {}
    if paths.trusted != "/dev/null":
        keyrings[paths.trusted] = _sha(Path(paths.trusted))
    for p in _dir_files(paths.trustedparts, (".gpg", ".asc")):
        keyrings[str(p)] = _sha(p)
    for e in entries:
        if e.signed_by_form in ("keyring-path", "armored-path"):
            for tok in signed_by_tokens(e.signed_by or ""):
                keyrings[tok] = _sha(Path(tok))
    return StateInputs(
        status=_sha(Path(paths.status)),
        release_files=releases,
        sources={str(p): _sha(p) for p in source_files(paths)},
        keyrings=keyrings,
        preferences={str(p): _sha(p) for p in preference_files(paths)},
        apt_config_hash=apt_config_hash,
        dpkg_config_hash=dpkg_config_hash,
    )
