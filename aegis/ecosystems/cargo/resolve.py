"""Plan a ``cargo install`` read-only: the index, the ``.crate`` files, their lockfile.

Nothing here runs cargo's resolver or any crate code. The crate's index file gives the exact
version (the one asked for, or the newest release that is not yanked), its ``cksum`` and
``yanked``; the ``.crate`` is read (bounded) and its SHA-256 compared with the cksum; its
packaged ``Cargo.lock`` is the whole set ``cargo install --locked`` builds. Every locked
dependency is looked up in the same index (its checksum must be the index's cksum) and its
crate read the same way. Each crate's build script, proc-macro flag and ``links`` are
evidence: all of them run or link at build time, which is install time here.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from aegis.analyze.lookalike import lookalike_signals
from aegis.analyze.stamps import format_time, new_plan_id, this_host
from aegis.canonical import canonical_hash
from aegis.ecosystems.cargo.argv import cargo_argv
from aegis.ecosystems.cargo.crate import CRATES_IO, CrateError, CrateFacts, inspect_crate
from aegis.ecosystems.cargo.names import (
    CRATE_RE,
    VERSION_RE,
    check_targets,
    crate_key,
    root_dir,
)
from aegis.ecosystems.cargo.source import (
    IndexEntry,
    Source,
    SourceError,
    parse_index,
    pick,
    semver_key,
)
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
    Provenance,
    Signal,
)
from aegis.safe_read import read_fd_upto

MAX_TRACKING_FILE = 4 * 1024 * 1024
POPULAR = frozenset(
    {
        "ripgrep", "fd-find", "bat", "exa", "eza", "tokei", "hyperfine", "just", "starship",
        "cargo-edit", "cargo-audit", "cargo-deny", "cargo-watch", "serde", "tokio", "rand",
        "clap", "regex", "wasm-pack", "mdbook", "sccache", "bindgen-cli", "cross", "zoxide",
    }
)  # fmt: skip
SHADOWED = frozenset(
    {
        "sudo", "su", "ls", "cp", "mv", "rm", "sh", "bash", "ssh", "scp", "curl", "wget",
        "cargo", "rustc", "rustup", "python3", "apt", "apt-get", "dpkg", "systemctl", "git",
        "gpg", "tar", "chmod", "chown", "passwd", "env", "aegis", "aegisctl", "aegisd",
    }
)  # fmt: skip


def read_installed(root: str) -> dict[str, str]:
    """Crate -> version installed in ``root``, from cargo's ``.crates2.json`` (bounded)."""
    path = os.path.join(root, ".crates2.json")
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except OSError:
        return {}
    try:
        data = read_fd_upto(fd, MAX_TRACKING_FILE + 1)
    finally:
        os.close(fd)
    try:
        installs = json.loads(data).get("installs", {}) if len(data) <= MAX_TRACKING_FILE else {}
    except (ValueError, AttributeError):
        return {}
    out: dict[str, str] = {}
    for key in installs if isinstance(installs, dict) else ():
        name, _, rest = str(key).partition(" ")
        if rest:
            out[name] = rest.split(" ", 1)[0]
    return out


_VERSIONS: dict[tuple[str, int, int, int], str] = {}


def _version_key(cargo: str) -> tuple[str, int, int, int] | None:
    try:
        st = os.stat(cargo)
    except OSError:
        return None
    return (cargo, st.st_ino, st.st_size, st.st_mtime_ns)


def known_tool_version(cargo: str) -> str:
    """What :func:`tool_version` remembers for this very binary file ("" when nothing)."""
    key = _version_key(cargo)
    return _VERSIONS.get(key, "") if key is not None else ""


def tool_version(cargo: str) -> str:
    """``cargo --version`` of the configured binary ("" when it does not run).

    Remembered per binary file (inode, size, mtime): aegisd re-plans in one long-lived
    process, and a replaced binary is asked again.
    """
    key = _version_key(cargo)
    if key is None:
        return ""
    if key in _VERSIONS:
        return _VERSIONS[key]
    env = {"PATH": f"{os.path.dirname(cargo)}:/usr/bin:/bin", "LANG": "C"}
    try:
        out = subprocess.run([cargo, "--version"], env=env, capture_output=True, timeout=30,
                             check=False, stdin=subprocess.DEVNULL)  # fmt: skip
    except (OSError, subprocess.TimeoutExpired):
        return ""
    text = out.stdout.decode("utf-8", "replace").strip()[:200] if out.returncode == 0 else ""
    if text:
        _VERSIONS[key] = text
    return text


@dataclass
class _Crate:
    entry: IndexEntry
    url: str
    sha256: str
    """The bytes' SHA-256 when it is the index cksum; "" otherwise."""
    size: int
    facts: CrateFacts
    problem: str = ""
    """Why the bytes are unverified ("" when they matched)."""
    archive_problem: str = ""
    """Why the strict reader refused the archive ("" when it read it)."""


def _read_crate(src: Source, entry: IndexEntry, *, top: bool = False) -> _Crate:
    try:
        url = src.crate_url(entry.name, entry.version)
        data = src.crate(entry.name, entry.version)
    except SourceError as e:
        return _Crate(entry, "", "", 0, CrateFacts(), f"unreadable: {e}")
    digest = hashlib.sha256(data).hexdigest()
    ok = digest == entry.cksum
    problem = "" if ok else f"sha256 {digest} is not the index cksum {entry.cksum}"
    try:
        facts = inspect_crate(data, entry.name, entry.version, top=top)
    except CrateError as e:
        return _Crate(entry, url, digest if ok else "", len(data), CrateFacts(), problem, str(e))
    return _Crate(entry, url, digest if ok else "", len(data), facts, problem)


class _Index:
    """Index files read once per crate name."""

    def __init__(self, src: Source) -> None:
        self.src = src
        self.cache: dict[str, list[IndexEntry] | None] = {}

    def entries(self, name: str) -> list[IndexEntry] | None:
        if name not in self.cache:
            data = self.src.index_file(name)
            self.cache[name] = parse_index(data, name) if data is not None else None
        return self.cache[name]


def _crate_signals(c: _Crate, requested: bool) -> tuple[list[Signal], list[Finding]]:
    name, f = c.entry.name, c.facts
    signals: list[Signal] = []
    findings: list[Finding] = []
    if c.problem:
        signals.append(Signal("integrity.unverified", name, c.problem[:300]))
    if c.archive_problem:
        signals.append(Signal("cargo.archive-refused", name, c.archive_problem[:300]))
    if c.entry.yanked:
        who = "the requested version" if requested else "a locked dependency"
        signals.append(Signal("cargo.yanked", name, f"{c.entry.version} is yanked ({who})"))
    if f.build_script:
        signals.append(Signal("cargo.build-script", name, f.build_script))
    if f.build_commands:  # the script rules compile many patterns: only when needed
        from aegis.analyze.evidence.scripts import scan_script  # noqa: PLC0415 - see above
        from aegis.ecosystems.cargo.crate import shell_texts  # noqa: PLC0415 - see above
    for cmd in f.build_commands:
        signals.append(Signal("cargo.build-command", name, cmd[:300]))
        for text in shell_texts(cmd):
            findings.extend(scan_script(name, f.build_script, text.encode()))
    if f.proc_macro:
        signals.append(Signal("cargo.proc-macro", name, "runs at compile time"))
    links = f.links or c.entry.links
    if links:
        signals.append(Signal("cargo.native", name, f"links = {links!r}"))
    if requested:
        signals.extend(Signal("cargo.bin-shadows", name, f"bin {b!r}") for b in f.bins
                       if b in SHADOWED)  # fmt: skip
    return signals, findings


def _locked_deps(
    index: _Index, root: IndexEntry, lock: tuple[tuple[str, str, str, str], ...]
) -> tuple[list[IndexEntry], list[Signal]]:
    """The lockfile's registry packages as index entries; signals for what does not match."""
    deps: list[IndexEntry] = []
    signals: list[Signal] = []
    for name, version, source, checksum in lock:
        if crate_key(name) == crate_key(root.name) and version == root.version and not source:
            continue
        label = f"{name} {version}"[:120]
        if not (CRATE_RE.match(name) and VERSION_RE.match(version)):
            # Lockfile text is the publisher's: never a path or URL part unchecked.
            signals.append(Signal("cargo.lock-source", name[:64], f"{label!r} is not a crate"))
            continue
        if source not in CRATES_IO:
            signals.append(Signal("cargo.lock-source", name,
                                  f"{label} from {source[:120] or 'a path'}"))  # fmt: skip
            continue
        try:
            found = index.entries(name)
        except SourceError as e:
            signals.append(Signal("integrity.unverified", name, f"{label}: {e}"))
            continue
        entry = pick(found or [], version)
        if entry is None:
            signals.append(Signal("cargo.lock-source", name, f"{label} is not in the registry"))
        elif entry.cksum != checksum:
            why = f"{label}: Cargo.lock checksum is not the index cksum"
            signals.append(Signal("integrity.unverified", name, why))
        else:
            deps.append(entry)
    return deps, signals


def _action(current: str | None, new: str) -> Action:
    if current is None:
        return Action.INSTALL
    try:
        up = semver_key(new) > semver_key(current)
    except ValueError:
        up = True
    return Action.UPGRADE if up else Action.DOWNGRADE


def _plan_shell(cfg: Any, intent: Intent, now: datetime, **kw: Any) -> Plan:
    return Plan(
        schema_version=PLAN_SCHEMA, plan_id=new_plan_id(), created_at=format_time(now),
        intent=intent, host=this_host(cfg), configure_order=(), repositories=(),
        config=ConfigEvidence("", "", ()), vulnerabilities=(), vulndb_date=None, rollback=(),
        content_inspected=True, **kw,
    )  # fmt: skip


def _read_set(
    index: _Index, name: str, version: str | None
) -> tuple[list[_Crate], list[Signal], AnalysisFailure | None]:
    """The requested crate and its locked dependencies, read and checked (four at a time).

    Threads only for two dependencies or more: starting a pool costs more than reading a
    small crate.
    """
    registry = index.src.registry
    try:
        entry = pick(index.entries(name) or [], version)
        if entry is None:
            asked = f"{name}@{version}" if version else name
            return (
                [],
                [],
                AnalysisFailure(
                    "unknown-package",
                    f"{asked} is not in {registry} (or only yanked or pre-release versions are)",
                ),
            )
        first = _read_crate(index.src, entry, top=True)
        signals: list[Signal] = []
        failure = None
        if first.facts.lock is None:
            signals.append(Signal("cargo.unlocked", name, "the crate ships no Cargo.lock"))
        if not first.facts.bins and not (first.problem or first.archive_problem):
            failure = AnalysisFailure("unknown-package", f"{name} has no binary to install")
        deps, dep_signals = _locked_deps(index, entry, first.facts.lock or ())
        signals.extend(dep_signals)
        if len(deps) > 1:
            with ThreadPoolExecutor(max_workers=4) as pool:
                more = list(pool.map(lambda e: _read_crate(index.src, e), deps))
        else:
            more = [_read_crate(index.src, e) for e in deps]
        return [first, *more], signals, failure
    except SourceError as e:
        return [], [], AnalysisFailure("tool-failed", f"cannot read the registry: {e}")


def _artifact(c: _Crate, requested: bool) -> Artifact:
    f = c.facts
    links = f.links or c.entry.links
    scripts = tuple(f"{f.build_script}: {x}" for x in f.build_commands)
    return Artifact(
        name=c.entry.name, version=c.entry.version, kind="crate", url=c.url, sha256=c.sha256,
        size=c.size, requested=requested, yanked=c.entry.yanked,
        native_modules=(f"links={links}",) if links else (),
        commands=f.bins if requested else (),
        install_scripts=scripts or ((f.build_script,) if f.build_script else ()),
    )  # fmt: skip


def _change(
    crates: list[_Crate], current: str | None, registry: str
) -> tuple[tuple[PackageChange, ...], tuple[Provenance, ...]]:
    if not crates or crates[0].entry.version == current:
        return (), ()
    top = crates[0]
    name, v = top.entry.name, top.entry.version
    chain = (f"index:{registry}", f"cksum:{top.sha256}") if top.sha256 else ()
    fname = top.url.rsplit("/", 1)[-1]
    return (
        (PackageChange(name, "", _action(current, v), current, v, name, v, registry,
                       integrity=f"sha256:{top.sha256}" if top.sha256 else ""),),
        (Provenance(name, v, "", top.url, fname, top.size, top.sha256, registry, chain,
                    bool(top.sha256)),),
    )  # fmt: skip


def plan_cargo(cfg: Any, intent: Intent, now: datetime) -> Plan:
    """Resolve ``intent`` against its registry for the managed root (read-only)."""
    root = root_dir(intent.location)
    if root != str(cfg.cargo_root):
        raise InputError(f"cargo installs only into the Aegis-managed root {cfg.cargo_root}")
    registry = intent.registry or ""
    ((name, version),) = check_targets(intent.targets)
    # A thread only when cargo must be asked: starting one cost more than the whole index
    # read (scripts/bench --only cargo), and aegisd re-plans with it remembered.
    known = known_tool_version(cfg.cargo)
    asker = None if known else ThreadPoolExecutor(max_workers=1)
    try:
        tool = asker.submit(tool_version, cfg.cargo) if asker is not None else None
        installed = read_installed(root)
        current = installed.get(name)
        if intent.operation is Operation.REMOVE:
            crates: list[_Crate] = []
            signals: list[Signal] = []
            failure = None
            changes: tuple[PackageChange, ...] = (
                (PackageChange(name, "", Action.REMOVE, current, None, name, current, None),)
                if current else ()
            )  # fmt: skip
            prov: tuple[Provenance, ...] = ()
        else:
            crates, signals, failure = _read_set(_Index(Source(registry)), name, version)
            changes, prov = _change(crates, current, registry) if failure is None else ((), ())
        tool_text = known or (tool.result() if tool is not None else "")
    finally:
        if asker is not None:
            asker.shutdown()
    findings: list[Finding] = []
    for i, c in enumerate(crates):
        s, f = _crate_signals(c, requested=i == 0)
        signals.extend(s)
        findings.extend(f)
    if not tool_text and failure is None:
        failure = AnalysisFailure("tool-failed", f"{cfg.cargo} --version did not run")
    if current is None and intent.operation is not Operation.REMOVE:
        signals.extend(lookalike_signals([name], set(POPULAR) | set(installed)))
    arts = tuple(_artifact(c, i == 0) for i, c in enumerate(crates)) if failure is None else ()
    state_hash = canonical_hash({"ecosystem": "cargo", "location": intent.location,
                                 "installed": sorted(installed.items())})  # fmt: skip
    have = tuple(f"{k}@{v}" for k, v in sorted(installed.items()))
    eco = EcosystemEvidence("cargo", intent.location or "", registry, tool_text, have, arts)
    return _plan_shell(
        cfg, intent, now, changes=changes, provenance=prov, findings=tuple(findings),
        signals=tuple(signals), failure=failure, package_state_hash=state_hash, ecosystem=eco,
        command_preview=cargo_argv(cfg, intent, failure, changes, eco),
    )  # fmt: skip
