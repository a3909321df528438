"""The Aegis-managed npm prefix and pip venvs, compared like dpkg's state.

Only aegisd changes ``/var/lib/aegis/managed/npm`` and ``/var/lib/aegis/managed/python/NAME``
(aegis/ecosystems/managed.py), so anything else that changed them (``npm install --prefix``,
``python3 -m pip --python``, a hand edit) is an out-of-band change, named per package with
tool ``npm`` or ``pip``. Each place's state is read from disk, never by running the tool:

- npm: the prefix's ``node_modules/.package-lock.json`` (npm's record of the installed
  tree): install path -> ``VERSION INTEGRITY``;
- pip: every ``*.dist-info``: name -> ``VERSION SHA256-of-RECORD``
  (:func:`aegis.ecosystems.pip.state.fingerprints`).

The same holds for every other place aegisd applied a pip or npm change into (a venv, a
``--target`` directory, an npm project): once aegisd changed it, it is watched, so a later
change there that did not come through aegisd is named too.

The baseline (aegis/oob/baseline.py) keeps the last state aegisd accounted for under
``places``, keyed by the recorded location (``global:/dir``, ``managed:/dir``,
``venv:/dir``, ``target:/dir``, ``project:/dir``); aegisd moves it after each of its own
runs exactly as for dpkg, so its applies are never findings. A place that is gone is
named once (everything removed) and then no longer watched.
Reads are bounded: the files are root's, but a finding must never hang a pass.

Example:
    >>> place_changes("digest", {"managed:/v": {"six": "1.16.0 ab.."}}, {"managed:/v": {}})
    [Finding(package='six', action='remove', old='1.16.0', new=None, tool='pip', ...)]
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path

from packaging.version import InvalidVersion, Version

from aegis.config import Config
from aegis.ecosystems.pip.names import check_venv_name
from aegis.ecosystems.pip.state import fingerprints
from aegis.errors import InputError
from aegis.oob.findings import Finding, fid

MAX_PLACES = 64
MAX_LOCK = 64 * 1024 * 1024
MAX_ENTRIES = 20_000
KINDS = ("global", "managed", "venv", "target", "project")
"""The recorded location kinds of npm's and pip's places."""
Places = dict[str, dict[str, str]]
"""Location -> package -> ``VERSION DIGEST``."""


def managed_places(cfg: Config) -> list[str]:
    """The managed prefix and venvs that exist now, as recorded locations (at most 64)."""
    managed = cfg.state_dir / "managed"
    out: list[str] = []
    if (managed / "npm").is_dir():
        out.append(f"global:{managed / 'npm'}")
    try:
        names = sorted(os.listdir(managed / "python"))
    except OSError:
        names = []
    for name in names:
        try:
            check_venv_name(name)
        except InputError:
            continue  # never a venv aegisd made: not its place to watch
        if (managed / "python" / name).is_dir():
            out.append(f"managed:{managed / 'python' / name}")
    return out[:MAX_PLACES]


def _npm_tree(prefix: Path) -> dict[str, str]:
    path = prefix / "node_modules" / ".package-lock.json"
    try:
        with path.open("rb") as f:
            data = f.read(MAX_LOCK + 1)
    except FileNotFoundError:
        return {}
    if len(data) > MAX_LOCK:
        raise OSError(f"{path} is larger than {MAX_LOCK} bytes")
    try:
        doc = json.loads(data)
    except ValueError:
        return {"(node_modules/.package-lock.json)": "unreadable -"}
    packages = doc.get("packages") if isinstance(doc, dict) else None
    out: dict[str, str] = {}
    for key, entry in list((packages or {}).items())[:MAX_ENTRIES]:
        if not isinstance(key, str) or not key.startswith("node_modules/"):
            continue
        if not isinstance(entry, dict):
            continue
        version, integrity = entry.get("version"), entry.get("integrity") or "-"
        out[key[len("node_modules/") :][:300]] = f"{str(version)[:64]} {str(integrity)[:200]}"
    return out


def read_place(location: str) -> dict[str, str]:
    """One place's packages now; ``{}`` when it is gone.

    Raises:
        OSError: it exists but cannot be read.
    """
    kind, _, directory = location.partition(":")
    if not Path(directory).is_dir():
        return {}
    if kind in ("global", "project"):
        return _npm_tree(Path(directory))
    if kind in ("managed", "venv", "target"):
        return fingerprints(Path(directory), target=kind == "target")
    return {}


def watchable(location: str | None) -> bool:
    """Whether ``location`` is a pip or npm place this module reads."""
    kind, _, directory = (location or "").partition(":")
    return kind in KINDS and directory.startswith("/") and "\x00" not in directory


def read_places(
    cfg: Config, before: Mapping[str, Mapping[str, str]], also: str | None = None
) -> Places:
    """Every managed place now, every one the baseline knew, and ``also``.

    ``also``: a place aegisd just changed. A place gone since reads ``{}`` once, then is
    dropped. A place that cannot be read keeps its baseline state: unknown is never "removed".
    """
    out: Places = {}
    wanted = {*managed_places(cfg), *before, *([also] if also and watchable(also) else [])}
    for location in sorted(wanted)[:MAX_PLACES]:
        try:
            out[location] = read_place(location)
        except OSError:
            if location in before:
                out[location] = dict(before[location])
    return {k: v for k, v in out.items() if v or before.get(k)}


def tool_of(location: str) -> str:
    """``npm`` for the managed prefix and projects, ``pip`` for venvs and targets."""
    return "npm" if location.startswith(("global:", "project:")) else "pip"


def _action(was: str | None, is_: str | None) -> str:
    if was is None:
        return "install"
    if is_ is None:
        return "remove"
    old, new = was.split(" ", 1)[0], is_.split(" ", 1)[0]
    if old == new:
        return "changed"  # the same version with other files: a reinstall or an edit
    try:
        return "upgrade" if Version(new) > Version(old) else "downgrade"
    except InvalidVersion:
        return "changed"


def place_changes(baseline_id: str, before: Places, now: Places) -> list[Finding]:
    """One finding per package whose state differs in a place (see the module doc)."""
    out: list[Finding] = []
    for location in sorted(set(before) | set(now)):
        if location not in now:
            continue  # not read this time (more than MAX_PLACES): compared next time
        was_all, is_all = before.get(location, {}), now[location]
        for name in sorted(set(was_all) | set(is_all)):
            was, is_ = was_all.get(name), is_all.get(name)
            if was == is_:
                continue
            out.append(
                Finding(
                    finding_id=fid(baseline_id, "place", location, name, was, is_),
                    package=name,
                    arch="",
                    action=_action(was, is_),
                    old=was.split(" ", 1)[0] if was else None,
                    new=is_.split(" ", 1)[0] if is_ else None,
                    time=None,
                    tool=tool_of(location),
                    commandline=None,
                    user=None,
                    uid=None,
                    expected=False,
                    place=location.partition(":")[2],
                )
            )
    return out
