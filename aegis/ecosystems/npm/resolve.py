"""Plan an npm install read-only: ``npm install --package-lock-only --ignore-scripts``.

npm runs in a scratch copy of the project's ``package.json`` and ``package-lock.json`` with a
private cache and ``HOME``, no user or global configuration (``--userconfig``/
``--globalconfig`` are ``/dev/null``) and one explicit ``--registry``: the project's own
``.npmrc`` is not copied, so it cannot add registries or scripts. The new lockfile is the
resolved set; each package whose entry changed is compared with the old lockfile, its
tarball downloaded (bounded) and checked against the lockfile's ``integrity``, and its
``package.json`` read from the tarball: lifecycle install scripts (scanned with the same
script rules as Debian maintainer scripts), ``bin`` entries, the resolved URL's registry.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from aegis.analyze.lookalike import lookalike_signals
from aegis.analyze.stamps import format_time, new_plan_id, this_host
from aegis.canonical import canonical_hash
from aegis.early.npm_tool import PROJECT_FILES, Files, Resolution
from aegis.early.npm_tool import read_project_file as _read
from aegis.ecosystems import idle
from aegis.ecosystems.npm.names import GLOBAL_SEED, check_targets, is_global, project_dir
from aegis.errors import InputError
from aegis.model import (
    PLAN_SCHEMA,
    Action,
    AnalysisFailure,
    Artifact,
    ConfigEvidence,
    EcosystemEvidence,
    Finding,
    Intent,
    Operation,
    PackageChange,
    Plan,
    ProjectFile,
    Provenance,
    Signal,
)

# What only the work after npm has started needs (tarfile, urllib, threads) is imported
# there: npm starts first, and those imports overlap its resolution. The script scanner
# (bashlex builds its parser tables at import, ~0.1 s of CPU) loads only for a package
# that has install scripts to scan.

INSTALL_HOOKS = ("preinstall", "install", "postinstall")
POPULAR = frozenset(
    {
        "lodash", "react", "react-dom", "express", "axios", "chalk", "commander", "debug",
        "moment", "request", "typescript", "webpack", "vue", "jquery", "underscore",
        "left-pad", "uuid", "dotenv", "yargs", "minimist", "colors", "cross-env", "eslint",
        "prettier", "jest", "mocha", "async", "bluebird", "classnames", "body-parser",
    }
)  # fmt: skip
SHADOWED = frozenset(
    {
        "sudo", "su", "ls", "cp", "mv", "rm", "sh", "bash", "ssh", "scp", "curl", "wget",
        "node", "npm", "npx", "python3", "apt", "apt-get", "dpkg", "systemctl", "git", "gpg",
        "tar", "chmod", "chown", "passwd", "env", "aegis", "aegisctl", "aegisd",
    }
)  # fmt: skip


def lock_packages(text: str | None) -> dict[str, dict[str, Any]]:
    """Install path (``node_modules/...`` key without its first prefix) -> lockfile entry."""
    if not text:
        return {}
    try:
        doc = json.loads(text)
    except ValueError:
        return {}
    packages = doc.get("packages") if isinstance(doc, dict) else None
    out: dict[str, dict[str, Any]] = {}
    for key, entry in (packages or {}).items():
        if key.startswith("node_modules/") and isinstance(entry, dict) and not entry.get("link"):
            out[key[len("node_modules/") :]] = entry
    return out


def _pkg_name(path: str) -> str:
    return path.rsplit("node_modules/", 1)[-1]


@dataclass(frozen=True)
class _Tarball:
    integrity_ok: bool
    scripts: dict[str, str]
    bins: tuple[str, ...]
    problem: str = ""


def _sri_ok(integrity: str, data: bytes) -> bool:
    algo, _, digest = integrity.partition("-")
    if algo != "sha512":
        return False  # sha1 (shasum) alone is not integrity
    return base64.b64encode(hashlib.sha512(data).digest()).decode() == digest


def _inspect(entry: dict[str, Any], ahead: dict[str, bytes]) -> _Tarball:
    """The tarball's facts; its bytes from ``ahead`` (fetched while npm resolved) or fetched."""
    import tarfile  # noqa: PLC0415 - see the note on imports at the top

    from aegis.ecosystems import prefetch  # noqa: PLC0415 - see the note on imports at the top

    url = str(entry.get("resolved", ""))
    try:
        data = ahead.get(url) or prefetch.get(url)
    except (OSError, ValueError) as e:
        return _Tarball(False, {}, (), f"download failed: {e}")
    ok = _sri_ok(str(entry.get("integrity", "")), data)
    try:
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tf:
            member = tf.extractfile("package/package.json")
            manifest = json.loads(member.read(1024 * 1024)) if member else {}
    except (tarfile.TarError, KeyError, ValueError, OSError) as e:
        return _Tarball(ok, {}, (), f"unreadable tarball: {e}")
    scripts = manifest.get("scripts") or {}
    hooks = {k: str(scripts[k]) for k in INSTALL_HOOKS if isinstance(scripts.get(k), str)}
    raw_bin = manifest.get("bin")
    if isinstance(raw_bin, str):
        bins: tuple[str, ...] = (str(manifest.get("name", "")).split("/")[-1],)
    elif isinstance(raw_bin, dict):
        bins = tuple(sorted(str(k) for k in raw_bin))
    else:
        bins = ()
    return _Tarball(ok, hooks, bins)


def _publish_times(registry: str, name: str) -> dict[str, str]:
    """Version -> publish time from the packument's ``time``; {} when the registry is silent.

    npm's abbreviated metadata, which npm itself reads, leaves ``time`` out: one more read.
    """
    from aegis.ecosystems.published import fetch_json, normal_time  # noqa: PLC0415 - see top

    try:
        _, doc = fetch_json(registry + name.replace("/", "%2f"), "application/json")
    except (OSError, ValueError):
        return {}
    times = doc.get("time") if isinstance(doc, dict) else None
    if not isinstance(times, dict):
        return {}
    return {str(v): normal_time(t) for v, t in list(times.items())[:100_000]}


def _action(old: dict[str, Any] | None, new: dict[str, Any]) -> Action:
    from packaging.version import InvalidVersion, Version  # noqa: PLC0415 - see the top

    if old is None:
        return Action.INSTALL
    try:
        up = Version(str(new.get("version"))) > Version(str(old.get("version")))
    except InvalidVersion:
        up = True
    return Action.UPGRADE if up else Action.DOWNGRADE


class _Evidence:
    """Changes, provenance, artifacts, signals and findings of the changed lockfile entries."""

    def __init__(self, registry: str, names: tuple[str, ...]) -> None:
        self.registry = registry
        self.names = names
        self.changes: list[PackageChange] = []
        self.prov: list[Provenance] = []
        self.arts: list[Artifact] = []
        self.signals: list[Signal] = []
        self.findings: list[Finding] = []

    def collect(self, changed: list[str], old: dict[str, Any], new: dict[str, Any]) -> None:
        """Download and read every changed package (four at a time)."""
        from concurrent.futures import ThreadPoolExecutor  # noqa: PLC0415 - see the top

        from aegis.ecosystems import prefetch  # noqa: PLC0415 - see the top

        registry, names = self.registry, self.names
        changes, prov, arts = self.changes, self.prov, self.arts
        signals, findings = self.signals, self.findings

        names_of = sorted({_pkg_name(p) for p in changed})
        ahead = prefetch.take()  # this thread's: what aegisd fetched while npm resolved
        with ThreadPoolExecutor(max_workers=4) as pool:
            timed = pool.map(lambda n: _publish_times(registry, n), names_of)
            facts = dict(
                zip(changed, pool.map(lambda p: _inspect(new[p], ahead), changed), strict=True)
            )
            times = dict(zip(names_of, timed, strict=True))
        for path in changed:
            entry, t = new[path], facts[path]
            version = str(entry.get("version", ""))
            url = str(entry.get("resolved", ""))
            integrity = str(entry.get("integrity", "")) if t.integrity_ok else ""
            name = _pkg_name(path)
            changes.append(PackageChange(path, "", _action(old.get(path), entry),
                                         old.get(path, {}).get("version"), version, name, version,
                                         registry, integrity=integrity))  # fmt: skip
            chain = (f"registry:{registry}", f"tarball:{integrity}") if integrity else ()
            prov.append(Provenance(path, version, "", url, url.rsplit("/", 1)[-1], 0, "", registry,
                                   chain, bool(integrity)))  # fmt: skip
            arts.append(Artifact(name=path, version=version, kind="tarball", url=url, sha256="",
                                 size=0, requested=name in names, commands=t.bins,
                                 install_scripts=tuple(f"{k}: {v}" for k, v in t.scripts.items()),
                                 integrity=integrity,
                                 published=times.get(name, {}).get(version, "")))  # fmt: skip
            if t.scripts:
                from aegis.analyze.evidence.scripts import scan_script  # noqa: PLC0415 - see top

            for hook, body in t.scripts.items():
                signals.append(Signal("npm.install-script", path, f"{hook}: {body[:200]}"))
                findings.extend(scan_script(path, hook, body.encode()))
            if entry.get("hasInstallScript") and not t.scripts:
                signals.append(Signal("npm.install-script", path, "hasInstallScript (node-gyp?)"))
            signals.extend(Signal("npm.bin-shadows", path, f"bin {b!r}") for b in t.bins
                           if b in SHADOWED)  # fmt: skip
            if not integrity:
                signals.append(
                    Signal("integrity.unverified", path, t.problem or "integrity mismatch")
                )


def _start(intent: Intent, registry: str, restore: Files, before: Files) -> Resolution:
    """The npm run the CLI started for exactly this resolution of exactly these files, or now."""
    from aegis.early import slot as early  # noqa: PLC0415 - see the note on imports at the top

    key = ("npm", intent.location, registry, intent.targets, tuple(sorted(restore.items())))
    started = early.claim(key)
    early.discard()  # a run the CLI started for other words or files: never read
    if isinstance(started, Resolution):
        if started.copied == before:
            return started
        started.kill()  # the project changed since: resolve what is there now
    project = Path(project_dir(intent.location))
    return Resolution(project, registry, intent.targets, restore)


def plan_npm(cfg: Any, intent: Intent, now: datetime) -> Plan:
    """Resolve ``intent`` against its registry for its project (read-only)."""
    restore: Files = {f.name: f.after for f in intent.files if f.name in PROJECT_FILES}
    if intent.operation is Operation.ROLLBACK:
        if intent.targets or "package.json" not in restore:
            raise InputError("an npm rollback restores package.json (and its lockfile) only")
        names: tuple[str, ...] = ()
    else:
        names = check_targets(intent.targets)
    project = Path(project_dir(intent.location))
    registry = intent.registry or ""
    before = {n: _read(project / n) for n in PROJECT_FILES}
    if is_global(intent.location) and not restore and before["package.json"] is None:
        restore = {"package.json": GLOBAL_SEED}  # the managed prefix's first change
    resolution = _start(intent, registry, restore, before)
    # While npm resolves: the imports.
    import tarfile  # noqa: F401, PLC0415 - loaded now, used by _inspect's threads
    from concurrent.futures import ThreadPoolExecutor  # noqa: F401, PLC0415 - loaded now, for collect

    from aegis.ecosystems import prefetch, published  # noqa: F401, PLC0415 - loaded now, for collect
    from packaging import version  # noqa: F401, PLC0415 - loaded now, for _action

    old = lock_packages(before["package-lock.json"])
    files_before = sorted((k, v or "") for k, v in before.items())
    state_hash = canonical_hash(
        {"ecosystem": "npm", "location": intent.location, "files": files_before}
    )
    idle.run_queued()  # what the caller does next, while the tool still runs
    code, err, after = resolution.wait()
    failure = None
    if code != 0 or not after.get("package-lock.json") or not after.get("package.json"):
        kind = "unknown-package" if "E404" in err or "ETARGET" in err else "tool-failed"
        failure = AnalysisFailure(kind, err.strip()[-2000:] or f"npm exited {code}")
    new = lock_packages(after.get("package-lock.json")) if failure is None else {}
    changed = sorted(p for p in new if old.get(p, {}).get("integrity") != new[p].get("integrity")
                     or old.get(p, {}).get("version") != new[p].get("version"))  # fmt: skip
    ev = _Evidence(registry, names)
    ev.collect(changed, old, new)
    changes, prov, arts, signals, findings = (ev.changes, ev.prov, ev.arts, ev.signals, ev.findings)
    removed = sorted(set(old) - set(new)) if failure is None else []
    for path in removed:
        v = old[path].get("version")
        changes.append(PackageChange(path, "", Action.REMOVE, v, None, _pkg_name(path), v, None))
    new_names = [n for n in names if not any(_pkg_name(p) == n for p in old)]
    signals.extend(lookalike_signals(new_names, set(POPULAR) | {_pkg_name(p) for p in old}))
    files = () if failure is not None else tuple(
        ProjectFile(n, before[n], after[n] or "") for n in ("package.json", "package-lock.json")
    )  # fmt: skip
    plan = Plan(
        schema_version=PLAN_SCHEMA, plan_id=new_plan_id(), created_at=format_time(now),
        intent=intent, host=this_host(cfg), changes=tuple(changes), configure_order=(),
        command_preview=(), repositories=(), config=ConfigEvidence("", "", ()),
        provenance=tuple(prov), findings=tuple(findings), vulnerabilities=(), vulndb_date=None,
        rollback=(), signals=tuple(signals), package_state_hash=state_hash,
        content_inspected=True, failure=failure,
        ecosystem=EcosystemEvidence(
            "npm", intent.location or "", registry, "npm",
            tuple(f"{p}@{e.get('version')}" for p, e in sorted(old.items())), tuple(arts),
            files,
        ),
    )  # fmt: skip
    return plan
