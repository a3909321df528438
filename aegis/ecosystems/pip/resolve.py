"""Plan a pip install read-only: ``pip install --dry-run --ignore-installed --report``.

pip runs with the target venv's own interpreter, isolated from the machine's pip
configuration (``--isolated``, ``PIP_CONFIG_FILE=/dev/null``, no cache, an explicit
``--index-url``): a config file could add indexes, and the plan must name every index it
used, which is then exactly one. Wheels only: pip would run an sdist's build backend just to
read its metadata, and planning runs no package code. The report gives the whole resolved
set; each change is compared with what the venv has, and each artifact is downloaded
(bounded), checked against the SHA-256 pip saw (the index's, or the one pip computed when
the index publishes none) and listed for ``.pth`` files,
native modules and commands.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlsplit

from aegis.analyze.lookalike import lookalike_signals
from aegis.analyze.stamps import format_time, new_plan_id, this_host
from aegis.canonical import canonical_hash
from aegis.early.pip_tool import PipRun, dry_run_argv
from aegis.ecosystems import idle
from aegis.ecosystems.pip.names import (
    check_targets,
    is_managed,
    is_target,
    location_dir,
    normalize,
    pip_head,
)
from aegis.ecosystems.pip.state import installed
from aegis.model import (
    PLAN_SCHEMA,
    Action,
    AnalysisFailure,
    Artifact,
    ConfigEvidence,
    EcosystemEvidence,
    Intent,
    PackageChange,
    Plan,
    Provenance,
    Signal,
)

if TYPE_CHECKING:
    from aegis.ecosystems.pip import wheels

# What only the work after pip has started needs (urllib.request, zipfile, packaging,
# threads) is imported there: pip starts first, and those imports overlap its resolution.

POPULAR = frozenset(
    {
        "requests", "urllib3", "numpy", "pandas", "setuptools", "boto3", "botocore",
        "certifi", "idna", "charset-normalizer", "cryptography", "pyyaml", "django",
        "flask", "jinja2", "markupsafe", "six", "python-dateutil", "typing-extensions",
        "packaging", "pip", "wheel", "attrs", "click", "pydantic", "sqlalchemy", "pytest",
        "colorama", "beautifulsoup4", "pillow", "scipy", "matplotlib", "fastapi", "uvicorn",
    }
)  # fmt: skip
"""Names typosquatters imitate most (PyPI download ranks); installed names are added."""
SHADOWED_COMMANDS = frozenset(
    {
        "sudo", "su", "ls", "cp", "mv", "rm", "sh", "bash", "ssh", "scp", "curl", "wget",
        "python", "python3", "pip", "pip3", "apt", "apt-get", "dpkg", "systemctl", "git",
        "gpg", "tar", "chmod", "chown", "passwd", "login", "id", "ps", "kill", "cat", "env",
        "aegis", "aegisctl", "aegisd",
    }
)  # fmt: skip
"""System commands a package's console script must not shadow on PATH."""


def venv_owner(venv: Path) -> str:
    """``UID:GID`` that runs the venv's interpreter (``0:0`` when root owns all of it).

    The first non-root owner of the venv directory, its ``bin`` or its ``bin/python`` link.
    """
    for path in (venv, venv / "bin", venv / "bin" / "python"):
        try:
            st = path.lstat()
        except OSError:
            continue
        if st.st_uid != 0:
            return f"{st.st_uid}:{st.st_gid}"
    return "0:0"


def target_owner(directory: Path) -> str:
    """``UID:GID`` of a ``--target`` directory (``0:0``: root's), who runs pip into it."""
    try:
        st = directory.lstat()
    except OSError:
        return ""
    return f"{st.st_uid}:{st.st_gid}" if st.st_uid != 0 else "0:0"


def location_owner(location: str | None) -> str:
    """Who runs pip for a recorded location: the venv's or the target directory's owner.

    A managed venv is root's (aegisd refuses one that is not), existing or not.
    """
    if is_managed(location):
        return "0:0"
    directory = Path(location_dir(location))
    return target_owner(directory) if is_target(location) else venv_owner(directory)


def _kind(url: str) -> str:
    return "wheel" if urlsplit(url).path.endswith(".whl") else "sdist"


def _artifact(item: Mapping[str, Any], facts: wheels.WheelFacts | None) -> Artifact:
    meta = item.get("metadata") or {}
    info = item.get("download_info") or {}
    url = str(info.get("url", ""))
    hashes = (info.get("archive_info") or {}).get("hashes") or {}
    # The SHA-256 pip saw: the index's, or (newer pips, an index publishing none) the one
    # pip computed from what it downloaded. Our own download must have exactly those bytes.
    published = str(hashes.get("sha256", "")).lower()
    if not published and facts is not None and not facts.problem:
        published = facts.sha256
    ok = facts is not None and not facts.problem and facts.sha256 == published
    return Artifact(
        name=normalize(str(meta.get("name", ""))),
        version=str(meta.get("version", "")),
        kind=_kind(url),
        url=url,
        # Only a hash the resolution saw and the bytes matched counts as integrity.
        sha256=published if ok else "",
        size=facts.size if facts else 0,
        requested=bool(item.get("requested")),
        yanked=bool(item.get("is_yanked")),
        pth_files=facts.pth_files if facts else (),
        native_modules=facts.native_modules if facts else (),
        commands=facts.commands if facts else (),
    )


_YANKED_RE = re.compile(r"yanked version: '([A-Za-z0-9._-]+)' candidate \(version ([^ )]+)")


def _yanked(stderr: str) -> set[tuple[str, str]]:
    """(name, version) pip warned were yanked (older pips' reports lack ``is_yanked``)."""
    return {(normalize(n), v) for n, v in _YANKED_RE.findall(stderr)}


SIMPLE_JSON = "application/vnd.pypi.simple.v1+json"


def _upload_times(index: str, project: str) -> dict[str, str]:
    """Filename -> PEP 700 ``upload-time`` from the index's JSON page (PEP 691).

    {} when the index serves no JSON or no times (a PEP 503 HTML-only index).
    """
    from aegis.ecosystems.published import fetch_json, normal_time  # noqa: PLC0415 - see top

    try:
        kind, doc = fetch_json(f"{index}{project}/", SIMPLE_JSON)
    except (OSError, ValueError):
        return {}
    files = doc.get("files") if isinstance(doc, dict) and kind == SIMPLE_JSON else None
    out: dict[str, str] = {}
    for f in files[:100_000] if isinstance(files, list) else ():
        if isinstance(f, dict) and isinstance(f.get("filename"), str):
            out[f["filename"]] = normal_time(f.get("upload-time"))
    return out


def _inspect(item: Mapping[str, Any], ahead: dict[str, bytes]) -> wheels.WheelFacts | None:
    """The artifact's facts; its bytes from ``ahead`` (fetched while pip resolved) or fetched."""
    from aegis.ecosystems import prefetch  # noqa: PLC0415 - see the top
    from aegis.ecosystems.pip import wheels  # noqa: PLC0415 - see the top

    url = str((item.get("download_info") or {}).get("url", ""))
    try:
        data = ahead.get(url) or prefetch.get(url)
    except (OSError, ValueError):
        return None
    return wheels.inspect_wheel(data) if _kind(url) == "wheel" else wheels.hash_only(data)


def _action(current: str | None, new: str) -> Action:
    from packaging.version import InvalidVersion, Version  # noqa: PLC0415 - see the top

    if current is None:
        return Action.INSTALL
    try:
        return Action.UPGRADE if Version(new) > Version(current) else Action.DOWNGRADE
    except InvalidVersion:
        return Action.UPGRADE


def _signals(arts: tuple[Artifact, ...], have: Mapping[str, str]) -> list[Signal]:

    out: list[Signal] = []
    for a in arts:
        if a.kind == "sdist":
            out.append(Signal("pip.sdist", a.name, "an sdist runs its build backend"))
        for f in a.pth_files:
            out.append(Signal("pip.pth", a.name, f"{f} runs at every interpreter start"))
        if a.native_modules:
            out.append(Signal("pip.native", a.name, f"{len(a.native_modules)} native module(s)"))
        for c in a.commands:
            if c in SHADOWED_COMMANDS:
                out.append(Signal("pip.command-shadows", a.name, f"installs command {c!r}"))
        if a.yanked:
            out.append(Signal("pip.yanked", a.name, "the index marks this release yanked"))
        if not a.sha256:
            out.append(Signal("integrity.unverified", a.name, "bytes not matching the SHA-256"))
    new = [a.name for a in arts if a.requested and a.name not in have]
    out.extend(lookalike_signals(new, set(POPULAR) | set(have)))
    return out


def _start(argv: tuple[str, ...]) -> PipRun:
    """The pip run the CLI started with exactly ``argv``, or one started now."""
    from aegis.early import slot  # noqa: PLC0415 - see the note on imports at the top

    started = slot.claim(("pip", argv))
    slot.discard()  # a run the CLI started for other words: never read
    return started if isinstance(started, PipRun) else PipRun(argv)


def plan_pip(cfg: Any, intent: Intent, now: datetime, *, inspect_contents: bool = True) -> Plan:
    """Resolve ``intent`` against its index for its venv (read-only); see the module doc."""
    check_targets(intent.targets)
    venv = location_dir(intent.location)
    target = is_target(intent.location)
    index = intent.registry or ""
    # A managed venv not created yet resolves for the system interpreter it will be made
    # from, with nothing installed (``--ignore-installed``; ``--dry-run --report`` changes
    # nothing there and pip exempts it from PEP 668's externally-managed check).
    fresh = is_managed(intent.location) and not os.path.isfile(f"{venv}/pyvenv.cfg")
    head = pip_head(intent.location, exists=not fresh)
    pip = _start(dry_run_argv(venv, index, intent.targets, target=target, head=head))
    # While pip resolves: the imports and the venv's state.

    from concurrent.futures import ThreadPoolExecutor  # noqa: PLC0415 - see the top

    from packaging.version import Version  # noqa: F401, PLC0415 - loaded now, used by _action

    from aegis.ecosystems import prefetch, published  # noqa: F401, PLC0415 - loaded now
    from aegis.ecosystems.pip import wheels  # noqa: F401, PLC0415 - loaded now, used by _inspect

    have = installed(Path(venv), target=target)
    owner = location_owner(intent.location)
    state_hash = canonical_hash(
        {"ecosystem": "pip", "location": intent.location, "installed": sorted(have.items()),
         "owner": owner}
    )  # fmt: skip
    idle.run_queued()  # what the caller does next, while the tool still runs
    code, out, err = pip.wait()
    failure: AnalysisFailure | None = None
    items: list[dict[str, Any]] = []
    version = ""
    if code != 0:
        kind = "unknown-package" if "No matching distribution" in err else "tool-failed"
        failure = AnalysisFailure(kind, err.strip()[-2000:] or f"pip exited {code}")
    else:
        try:
            report = json.loads(out)
            items = [i for i in report.get("install", []) if isinstance(i, dict)]
            version = f"pip {report.get('pip_version', '')}"
        except (ValueError, AttributeError):
            failure = AnalysisFailure("tool-failed", "pip's report is not JSON")
    projects = sorted({normalize(str((i.get("metadata") or {}).get("name", ""))) for i in items})
    ahead = prefetch.take()  # this thread's: what aegisd fetched while pip resolved
    with ThreadPoolExecutor(max_workers=4) as pool:
        timed = pool.map(lambda p: _upload_times(index, p), projects)
        facts = list(pool.map(lambda i: _inspect(i, ahead), items))
        uploaded = dict(zip(projects, timed, strict=True))
    warned = _yanked(err)

    def _filename(url: str) -> str:
        return unquote(urlsplit(url).path.rsplit("/", 1)[-1])

    arts = tuple(
        sorted(
            (
                replace(a, yanked=a.yanked or (a.name, a.version) in warned,
                        published=uploaded.get(a.name, {}).get(_filename(a.url), ""))
                for a in (_artifact(i, f) for i, f in zip(items, facts, strict=True))
            ),
            key=lambda a: a.name,
        )
    )  # fmt: skip
    changes: list[PackageChange] = []
    prov: list[Provenance] = []
    for a in arts:
        if have.get(a.name) == a.version:
            continue
        changes.append(
            PackageChange(a.name, "", _action(have.get(a.name), a.version), have.get(a.name),
                          a.version, a.name, a.version, index,
                          integrity=f"sha256:{a.sha256}" if a.sha256 else "")
        )  # fmt: skip
        filename = unquote(urlsplit(a.url).path.rsplit("/", 1)[-1])
        chain = (f"index:{index}", f"{a.kind}:{a.sha256}") if a.sha256 else ()
        prov.append(
            Provenance(a.name, a.version, "", a.url, filename, a.size, a.sha256, index, chain,
                       bool(a.sha256))
        )  # fmt: skip
    # The plan says the managed venv does not exist yet: the apply creates it.
    created = (
        [Signal("pip.creates-venv", os.path.basename(venv), f"aegisd creates {venv} on apply")]
        if fresh
        else []
    )
    plan = Plan(
        schema_version=PLAN_SCHEMA,
        plan_id=new_plan_id(),
        created_at=format_time(now),
        intent=intent,
        host=this_host(cfg),
        changes=tuple(changes),
        configure_order=(),
        command_preview=(),
        repositories=(),
        config=ConfigEvidence("", "", ()),
        provenance=tuple(prov),
        findings=(),
        vulnerabilities=(),
        vulndb_date=None,
        rollback=(),
        signals=(*_signals(arts, have), *created),
        package_state_hash=state_hash,
        content_inspected=True,
        failure=failure,
        ecosystem=EcosystemEvidence(
            "pip",
            intent.location or "",
            index,
            version,
            tuple(f"{n}=={v}" for n, v in sorted(have.items())),
            arts,
            owner=owner,
        ),
    )
    return plan
