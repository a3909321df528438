"""Plan a Go change read-only: ``go get`` in a scratch module, then the evidence of each module.

``go get MODULE@QUERY`` (module change) or ``go get PACKAGE@QUERY`` in a fresh tool module
(``go install``) runs in a scratch directory holding only copies of ``go.mod`` and ``go.sum``
(never the module's sources), under :func:`aegis.ecosystems.go.gotool.planning_env`. The new
``go.mod`` and ``go.sum`` are the plan. That is the one go process of a plan: both go.mod
files are read by :mod:`aegis.ecosystems.go.modfile` (requirements, ``replace``), and every
module whose requirement changed is checked from what ``go get`` left in the private module
cache by :mod:`aegis.ecosystems.go.modcache` (the ``h1:`` sums of its zip and ``go.mod``,
compared with the new ``go.sum``; retractions from its latest ``go.mod``). Where those
readers cannot answer, go is asked as before (``go mod download -json``, ``go list -m -json
-retracted``). Mutable queries (``@latest``, branches) are recorded with the exact version
they resolved to.
"""

from __future__ import annotations

import atexit
import hashlib
import os
import shutil
import subprocess
import tempfile
import threading
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from aegis.analyze.stamps import format_time, new_plan_id, this_host
from aegis.canonical import canonical_hash
from aegis.ecosystems.go import modcache, modfile, prehash
from aegis.ecosystems.go.gotool import (
    GO,
    GoRun,
    env_signals,
    json_stream,
    known_version,
    pinned_env,
    planning_env,
    remember_version,
)
from aegis.ecosystems.go.names import (
    GOBIN_KIND,
    GOMOD_KIND,
    binary_name,
    check_targets,
    escape_path,
    gobin_dir,
    is_exact,
    is_pseudo,
    location_dir,
    split_target,
)
from aegis.errors import InputError
from aegis.model import (
    PLAN_SCHEMA,
    Action,
    AnalysisFailure,
    Artifact,
    ConfigEvidence,
    EcosystemEvidence,
    Intent,
    Operation,
    PackageChange,
    Plan,
    ProjectFile,
    Provenance,
    Signal,
)
from aegis.safe_read import read_upto

MODULE_FILES = ("go.mod", "go.sum")
MAX_FILE = 4 * 1024 * 1024
MAX_BINARY = 512 * 1024 * 1024
_SUM_WORDS = 3
TOOL_MODULE = "module aegis.invalid/goinstall\n"
"""The scratch module a ``go install`` is resolved and built in (``.invalid``: never real)."""


def read_file(path: Path) -> str | None:
    """A module file without following a link; None when missing.

    Raises:
        OSError: a link, not a regular file, too large, or not UTF-8.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except FileNotFoundError:
        return None
    with os.fdopen(fd, "rb") as f:
        data = read_upto(f, MAX_FILE + 1)
    if len(data) > MAX_FILE:
        raise OSError(f"{path} is larger than {MAX_FILE} bytes")
    return data.decode("utf-8")


def module_files(module: Path) -> dict[str, str | None]:
    """The module's ``go.mod`` and ``go.sum`` (a user's files: bounded, no links, UTF-8).

    Raises:
        InputError: one is a link, too large or not text.
    """
    try:
        return {n: read_file(module / n) for n in MODULE_FILES}
    except (OSError, UnicodeDecodeError) as e:
        raise InputError(f"cannot read the module files in {module}: {e}") from e


def binary_state(path: Path) -> str | None:
    """``sha256:HEX`` of an installed binary (not followed if a link), or None."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except (FileNotFoundError, OSError):
        return None
    digest = hashlib.sha256()
    with os.fdopen(fd, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return "sha256:" + digest.hexdigest()


def binary_version(path: Path, env: dict[str, str]) -> str | None:
    """The module version ``go version -m`` reads from an installed binary's build info."""
    if binary_state(path) is None:
        return None
    code, out, _ = GoRun(["version", "-m", str(path)], "/", env).wait()
    for line in out.splitlines() if code == 0 else ():
        words = line.split()
        if len(words) >= _SUM_WORDS and words[0] == "mod" and is_exact(words[2]):
            return words[2]
    return None


def _semver_key(v: str) -> tuple[Any, ...]:
    core, _, pre = v.lstrip("v").split("+")[0].partition("-")
    nums = tuple(int(x) for x in core.split(".") if x.isdigit())
    ids = (
        tuple((0, int(p), "") if p.isdigit() else (1, 0, p) for p in pre.split(".")) if pre else ()
    )
    return (nums, 1 if not pre else 0, ids)


def _action(old: str | None, new: str) -> Action:
    if old is None:
        return Action.INSTALL
    return Action.UPGRADE if _semver_key(new) > _semver_key(old) else Action.DOWNGRADE


def _sums(text: str | None) -> dict[str, str]:
    """``"path version"`` / ``"path version/go.mod"`` -> ``h1:...`` from a go.sum."""
    out: dict[str, str] = {}
    for line in (text or "").splitlines():
        words = line.split()
        if len(words) == _SUM_WORDS:
            out[f"{words[0]} {words[1]}"] = words[2]
    return out


def _replace_signals(mf: modfile.ModFile | None) -> list[Signal]:
    out: list[Signal] = []
    for r in mf.replace if mf else ():
        old, new = r["Old"], r["New"]
        target = f"{new.get('Path', '')}{'@' + new['Version'] if new.get('Version') else ''}"
        detail = f"replace {old.get('Path', '')} => {target}"[:300]
        local = str(new.get("Path", "")).startswith(("./", "../", "/")) or not new.get("Version")
        out.append(Signal("go.replace-path" if local else "go.replace", old.get("Path"), detail))
    return out


class _Scratch:
    """The scratch module: copies of the module files, go started at once."""

    def __init__(self, files: dict[str, str | None], proxy: str) -> None:
        self.root = tempfile.mkdtemp(prefix="aegis-go-")
        self.work = Path(self.root) / "mod"
        self.work.mkdir()
        for name, text in files.items():
            if text is not None:
                (self.work / name).write_text(text)
        self.env = planning_env(self.root, proxy)

    def go(self, *args: str) -> GoRun:
        return GoRun(list(args), str(self.work), self.env)

    def cleanup(self) -> None:
        """Remove the scratch directory in the remover thread (see :func:`settle`)."""
        _REMOVER.submit(self.root)


def _remove(root: str) -> None:
    # The module cache is read-only (go's own choice); make it removable first.
    for dirpath, dirnames, _ in os.walk(root):
        for d in dirnames:
            os.chmod(os.path.join(dirpath, d), 0o755)  # noqa: S103 - our scratch dir
    shutil.rmtree(root, ignore_errors=True)


class _Remover:
    """One thread per process removing scratch directories, in order; :meth:`settle` waits.

    On this disk removing a module cache costs more than the whole ``go get``, and nothing a
    plan returns depends on it. One long-lived thread, because starting a thread per plan
    cost milliseconds under load; started again in a forked child (threads do not survive a
    fork). The thread is a daemon so it never holds the interpreter open, and an ``atexit``
    hook waits for its queue, so a CLI run still leaves no scratch directory behind.
    """

    def __init__(self) -> None:
        self.cond = threading.Condition()
        self.queue: list[str] = []
        self.busy = 0
        self.pid = 0

    def submit(self, root: str) -> None:
        with self.cond:
            if self.pid != os.getpid():
                self.pid, self.queue, self.busy = os.getpid(), [], 0
                threading.Thread(target=self._run, name="aegis-go-scratch", daemon=True).start()
            self.queue.append(root)
            self.busy += 1
            self.cond.notify_all()

    def _run(self) -> None:
        while True:
            with self.cond:
                while not self.queue:
                    self.cond.wait()
                root = self.queue.pop(0)
            try:
                _remove(root)
            finally:
                with self.cond:
                    self.busy -= 1
                    self.cond.notify_all()

    def settle(self) -> None:
        with self.cond:
            while self.busy and self.pid == os.getpid():
                self.cond.wait()


_REMOVER = _Remover()
atexit.register(_REMOVER.settle)


def settle() -> None:
    """Wait until every scratch directory of this process's plans is removed.

    The bench waits here between rounds so a removal never overlaps what it measures.
    """
    _REMOVER.settle()


def _module_of(path: str, mods: dict[str, str]) -> str | None:
    """The longest module path of ``mods`` that ``path`` is in."""
    best = None
    for m in mods:
        if (path == m or path.startswith(m + "/")) and (best is None or len(m) > len(best)):
            best = m
    return best


def _inputs(intent: Intent) -> tuple[bool, dict[str, str | None], tuple[str, ...]]:
    """(install?, the module files planning starts from, the ``go get`` operands)."""
    install = (intent.location or "").startswith(GOBIN_KIND)
    rollback = intent.operation is Operation.ROLLBACK
    if install:
        location_dir(intent.location, GOBIN_KIND)
        check_targets(intent.targets, install=True)
        return True, {"go.mod": TOOL_MODULE, "go.sum": None}, intent.targets
    module = Path(location_dir(intent.location, GOMOD_KIND))
    if rollback:
        restore = {f.name: f.after for f in intent.files if f.name in MODULE_FILES}
        if intent.targets or "go.mod" not in restore:
            raise InputError("a go rollback restores go.mod (and go.sum) only")
        return False, {"go.mod": restore["go.mod"], "go.sum": restore.get("go.sum")}, ()
    check_targets(intent.targets)
    return False, module_files(module), intent.targets


@dataclass
class _Resolved:
    """What go said: the new files, the old and new requirements, each module's facts."""

    failure: AnalysisFailure | None
    after: dict[str, str | None]
    before_mod: modfile.ModFile | None
    after_mod: modfile.ModFile | None
    old: dict[str, str]
    new: dict[str, str]
    infos: dict[str, dict[str, Any]]
    listed: dict[str, dict[str, Any]]
    goenv: dict[str, Any]


def _failure(code: int, err: str, what: str) -> AnalysisFailure:
    missing = "not found" in err or "no matching" in err or "unknown revision" in err
    return AnalysisFailure("unknown-package" if missing else "tool-failed",
                           err.strip()[-2000:] or f"{what} exited {code}")  # fmt: skip


def _parse(text: str | None, what: str) -> tuple[modfile.ModFile | None, AnalysisFailure | None]:
    if text is None:
        return None, None
    try:
        return modfile.parse(text), None
    except modfile.ModFileError as e:
        return None, AnalysisFailure("tool-failed", f"cannot read {what}: {e}"[:2000])


def _sums_of(
    s: _Scratch, wanted: list[str], early: modcache.Early | None = None
) -> tuple[dict[str, dict[str, Any]], list[str]]:
    """Each module's sums from the cache; the ones go left out (no zip) to download."""
    infos: dict[str, dict[str, Any]] = {}
    missing = []
    for key in wanted:
        mod, _, version = key.partition("@")
        got = modcache.sums(s.env["GOMODCACHE"], mod, version, early)
        if got is None:
            missing.append(key)
        else:
            infos[key] = {"Sum": got[0], "GoModSum": got[1]}
    return infos, missing


def _retractions(
    s: _Scratch, wanted: list[str], after: modfile.ModFile | None, early: modcache.Early
) -> tuple[dict[str, dict[str, Any]], list[str]]:
    """Each module's retractions read from its latest go.mod; the ones go must answer."""
    replaced = {r["Old"]["Path"] for r in after.replace} if after else set()
    listed: dict[str, dict[str, Any]] = {}
    ask = []
    for key in wanted:
        mod, _, version = key.partition("@")
        why = modcache.retracted(mod, version, replaced=mod in replaced, proxy=s.env["GOPROXY"],
                                 modcache=s.env["GOMODCACHE"],
                                 sumdb_on=s.env["GOSUMDB"] != "off",
                                 early=early)  # fmt: skip
        if why is None:
            ask.append(key)
        else:
            listed[key] = {"Retracted": why} if why else {}
    return listed, ask


def _resolve(s: _Scratch, operands: tuple[str, ...], before_text: str | None) -> _Resolved:
    """``go get`` in the scratch module; the rest read here (go asked only where needed)."""
    version_run = None if known_version() else s.go("env", "GOVERSION")
    get = s.go("get", "--", *operands) if operands else None
    # While go get runs: the module's current go.mod; each zip go fetches, as it lands.
    reader = prehash.Prehash(s.env["GOMODCACHE"], s.env["GOPROXY"])
    before_mod, failure = _parse(before_text, "the module's go.mod")
    early = modcache.Early()
    if get is not None:
        try:
            code, _, err = get.wait(reader.line)
        finally:
            early = reader.finish()
        if code != 0:
            failure = _failure(code, err, "go get")
    after = {n: read_file(s.work / n) for n in MODULE_FILES}
    after_mod = None
    if failure is None:
        after_mod, failure = _parse(after["go.mod"], "the new go.mod")
        if after_mod is None and failure is None:
            failure = AnalysisFailure("tool-failed", "go get left no go.mod")
    old = dict(before_mod.require) if before_mod else {}
    new = dict(after_mod.require) if after_mod else {}
    wanted = [f"{m}@{v}" for m, v in sorted(new.items()) if old.get(m) != v]
    infos, missing = _sums_of(s, wanted, early)
    if missing:
        code, _, err = s.go("mod", "download", "-json", *missing).wait()
        if code != 0 and failure is None:
            failure = _failure(code, err, "go mod download")
        got, _ = _sums_of(s, missing)
        infos.update(got)
    listed, ask = _retractions(s, wanted, after_mod, early)
    if ask:
        _, lout, _ = s.go("list", "-m", "-json", "-retracted", *ask).wait()
        listed.update({f"{d.get('Path')}@{d.get('Version')}": d for d in json_stream(lout)})
    goenv = pinned_env(s.env)
    version = known_version()
    if version_run is not None:
        code, vout, _ = version_run.wait()
        version = remember_version(vout) if code == 0 else ""
    if version:
        goenv["GOVERSION"] = version
    return _Resolved(failure, after, before_mod, after_mod, old, new, infos, listed, goenv)


def plan_go(cfg: Any, intent: Intent, now: datetime) -> Plan:
    """Resolve ``intent`` against its proxy, read-only for the module and the system."""
    install, start, operands = _inputs(intent)
    proxy = intent.registry or ""
    before: dict[str, str | None] = {"go.mod": None, "go.sum": None}
    if intent.operation is Operation.ROLLBACK and not install:
        module = Path(location_dir(intent.location, GOMOD_KIND))
        before = module_files(module)
    elif not install:
        before = dict(start)
    s = _Scratch(start, proxy)
    try:
        r = _resolve(s, operands, before["go.mod"])
        return _record(cfg, intent, now, r, before=before, operands=operands)
    finally:
        s.cleanup()  # once the plan is made: the removal never competes with the record


def _record(
    cfg: Any, intent: Intent, now: datetime, r: _Resolved, *,
    before: dict[str, str | None], operands: tuple[str, ...],
) -> Plan:  # fmt: skip
    """The plan of what go resolved."""
    install = (intent.location or "").startswith(GOBIN_KIND)
    proxy = intent.registry or ""
    ev = _Evidence(proxy, r)
    ev.collect(operands)
    changes, installed = ev.changes, tuple(f"{m}@{v}" for m, v in sorted(r.old.items()))
    state: dict[str, Any] = {"ecosystem": "go", "location": intent.location}
    if install:
        changes, installed, state = _install_view(cfg, intent, changes, r.new, state)
    else:
        state["files"] = sorted((k, v or "") for k, v in before.items())
    files = () if r.failure is not None else tuple(
        ProjectFile(n, before[n], r.after[n] or "") for n in MODULE_FILES
    )  # fmt: skip
    plan = Plan(
        schema_version=PLAN_SCHEMA, plan_id=new_plan_id(), created_at=format_time(now),
        intent=intent, host=this_host(cfg), changes=tuple(changes), configure_order=(),
        command_preview=(), repositories=(), config=ConfigEvidence("", "", ()),
        provenance=tuple(ev.prov), findings=(), vulnerabilities=(), vulndb_date=None,
        rollback=(), signals=tuple(ev.signals), package_state_hash=canonical_hash(state),
        content_inspected=True, failure=r.failure,
        ecosystem=EcosystemEvidence("go", intent.location or "", proxy,
                                    str(r.goenv.get("GOVERSION", "go")), installed,
                                    tuple(ev.arts), files),
    )  # fmt: skip
    return plan


class _Evidence:
    """Changes, provenance, artifacts and signals of the modules whose requirement changed."""

    def __init__(self, proxy: str, r: _Resolved) -> None:
        self.proxy = proxy
        self.r = r
        self.changes: list[PackageChange] = []
        self.prov: list[Provenance] = []
        self.arts: list[Artifact] = []
        self.signals: list[Signal] = [Signal(n, None, d) for n, d in env_signals(r.goenv, proxy)]
        # The directives of the go.mod that will be in place (the old one if go failed).
        self.signals.extend(_replace_signals(r.after_mod or r.before_mod))

    def collect(self, operands: tuple[str, ...]) -> None:
        """Every changed module (in path order), then every removed one."""
        r = self.r
        if r.failure is not None:
            return
        requested: dict[str, str] = {}  # module -> the query its target gave
        for t in operands:
            path, query = split_target(t)
            mod = _module_of(path, r.new)
            if mod is not None:
                requested[mod] = query or "upgrade"
        sums = _sums(r.after["go.sum"])
        for mod in sorted(m for m in r.new if r.old.get(m) != r.new[m]):
            self._module(mod, r.new[mod], sums, requested.get(mod))
        for mod in sorted(set(r.old) - set(r.new)):
            v = r.old[mod]
            self.changes.append(PackageChange(mod, "", Action.REMOVE, v, None, mod, v, None))

    def _module(self, mod: str, version: str, sums: dict[str, str], query: str | None) -> None:
        proxy, key = self.proxy, f"{mod}@{version}"
        info, lst = self.r.infos.get(key, {}), self.r.listed.get(key, {})
        zsum, msum = str(info.get("Sum", "")), str(info.get("GoModSum", ""))
        ok = bool(zsum) and sums.get(f"{mod} {version}") == zsum and (
            sums.get(f"{mod} {version}/go.mod") == msum)  # fmt: skip
        url = f"{proxy}{escape_path(mod)}/@v/{version}.zip"
        old = self.r.old.get(mod)
        self.changes.append(PackageChange(mod, "", _action(old, version), old, version, mod,
                                          version, proxy,
                                          integrity=zsum if ok else ""))  # fmt: skip
        chain = (f"proxy:{proxy}", f"zip:{zsum}", f"go.mod:{msum}") if ok else ()
        self.prov.append(Provenance(mod, version, "", url, f"{version}.zip", 0, "", proxy, chain,
                                    ok))  # fmt: skip
        self.arts.append(Artifact(name=mod, version=version, kind="module", url=url, sha256="",
                                  size=0, requested=query is not None,
                                  yanked=bool(lst.get("Retracted")),
                                  integrity=zsum if ok else ""))  # fmt: skip
        sig = self.signals
        if not ok:
            sig.append(Signal("integrity.unverified", mod, "go.sum and go mod download differ"))
        if lst.get("Retracted"):
            why = "; ".join(str(x) for x in lst["Retracted"])[:300]
            sig.append(Signal("go.retracted", mod, f"{version} retracted: {why}"))
        if is_pseudo(version):
            sig.append(Signal("go.pseudo-version", mod, f"{version} is a commit, not a release"))
        if query is not None and query != version:
            sig.append(Signal("go.mutable-query", mod, f"@{query} resolved to {version}"))


def _install_view(
    cfg: Any, intent: Intent, changes: list[PackageChange], new: dict[str, str],
    state: dict[str, Any],
) -> tuple[list[PackageChange], tuple[str, ...], dict[str, Any]]:  # fmt: skip
    """``go install``: one change, the binary (named by its package), at its module's version.

    The modules of the build are evidence (artifacts and the tool module's go.sum); what is
    installed before is the binary's SHA-256 and the version its build info names.
    """
    pkg, _ = split_target(intent.targets[0])
    mod = _module_of(pkg, new)
    gobin = Path(gobin_dir(cfg))
    binary = gobin / binary_name(pkg)
    current = binary_state(binary)
    prev = binary_version(binary, planning_env(tempfile.gettempdir(), "off")) if current else None
    state = {**state, "binary": str(binary), "sha256": current}
    installed = (f"{pkg}@{prev or 'unknown'} {current}",) if current else ()
    if mod is None or not changes:
        return [], installed, state
    version = new[mod]
    if prev == version:
        return [], installed, state
    # The binary's integrity is its module's h1: sum (the build's go.sum pins it).
    integrity = next((c.integrity for c in changes if c.name == mod), "")
    return [PackageChange(pkg, "", _action(prev, version) if prev else Action.INSTALL, prev,
                          version, mod, version, intent.registry,
                          integrity=integrity)], installed, state  # fmt: skip


def raw_download_argv(target: str) -> list[str]:
    """The bench's baseline: ``go mod download -json TARGET`` (in a scratch module)."""
    return ["mod", "download", "-json", target]


def raw_run(args: list[str], cwd: str, env: dict[str, str]) -> int:
    """Run go directly (the bench's raw tool calls)."""
    return subprocess.run([GO, *args], cwd=cwd, env=env, capture_output=True, check=False,
                          timeout=300).returncode  # fmt: skip
