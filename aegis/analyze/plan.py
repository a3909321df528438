"""Build the operation plan for an apt intent: :func:`analyze_apt`.

The analysis is read-only and deterministic: every tool runs through
:mod:`aegis.analyze.run` with Aegis's APT_CONFIG and ``LANG=C``; apt calls that do
not depend on each other run concurrently (``apt-config dump`` beside the
simulation; ``apt-cache policy``, ``apt-cache show``, ``apt-get download
--print-uris``, gpgv and the state hashing beside each other). Two analyses of the
same state give the same plan apart from ``plan_id``, ``created_at`` and the
intent's ``requested_at`` (:func:`aegis.model.reproducible_view`).

An apt failure (unknown package, broken dependencies, lock, timeout) yields a plan
whose ``failure`` is set and whose ``command_preview`` is empty; bad target names
raise :class:`InputError` before anything runs; direct paths and URLs produce a
plan with ``target.direct-path`` / ``target.url`` signals and nothing to run.

Example::

    plan = analyze_apt(cfg, Intent(Tool.APT, Operation.INSTALL, ("nginx",), "ops", now_s),
                       now=now)
"""

from __future__ import annotations

import os
import secrets
import socket
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path

from aegis.analyze import apt as aptparse
from aegis.analyze.evidence.aptconfig import assess_apt_config, read_dpkg_config
from aegis.analyze.evidence.provenance import build_provenance
from aegis.analyze.evidence.repositories import (
    ApprovalLookup,
    ReleaseFiles,
    collect_repository,
    file_sha256,
    repository_id,
)
from aegis.analyze.evidence.sources import (
    AptPaths,
    SourceEntry,
    lists_prefix,
    parse_sources,
    resolve_apt_paths,
)
from aegis.analyze.names import Target, closest_names, parse_targets
from aegis.analyze.run import RunResult, run_tool
from aegis.analyze.signals import (
    content_signals,
    package_signals,
    repository_signals,
    sort_signals,
    weak_pin_signal,
)
from aegis.analyze.snapshot_debs import RollbackSources, rollback_sources
from aegis.analyze.state import gather_state_inputs, package_state_hash, source_files
from aegis.config import Config
from aegis.model import (
    PLAN_SCHEMA,
    Action,
    AnalysisFailure,
    ConfigEvidence,
    Finding,
    Host,
    Intent,
    Operation,
    PackageChange,
    Plan,
    Provenance,
    Repository,
    RollbackRequirement,
    Signal,
    Vulnerability,
)

APT_GET = "/usr/bin/apt-get"
APT_CACHE = "/usr/bin/apt-cache"
APT_CONFIG_BIN = "/usr/bin/apt-config"
_WITH_FILE = (Action.INSTALL, Action.UPGRADE, Action.DOWNGRADE, Action.REINSTALL)
_REPLACING = (Action.UPGRADE, Action.DOWNGRADE, Action.REMOVE, Action.PURGE)


def format_time(dt: datetime) -> str:
    """UTC ISO-8601 with ``Z``, second precision (the plan's time format)."""
    return dt.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def new_plan_id() -> str:
    """A fresh, unguessable plan id."""
    return "plan-" + secrets.token_hex(10)


def this_host(cfg: Config) -> Host:
    """This machine's identity (``host_id`` overrides /etc/machine-id in tests and demo)."""
    machine_id = cfg.host_id
    if not machine_id:
        try:
            machine_id = Path("/etc/machine-id").read_text(encoding="ascii").strip()
        except OSError:
            machine_id = "unknown"
    return Host(machine_id=machine_id, hostname=socket.gethostname())


@dataclass(frozen=True)
class _PolicyLists:
    kernel: tuple[str, ...]
    sensitive: tuple[str, ...]


def _policy_lists(path: Path) -> tuple[_PolicyLists, ApprovalLookup]:
    """Kernel/sensitive name lists and approved sources from the policy file.

    An unusable policy file leaves the built-in lists and approves no source
    (policy itself then denies)."""
    from aegis.policy.rules import BUILTIN_KERNEL, BUILTIN_SENSITIVE

    try:
        from aegis.policy.config import load_policy_config

        pc = load_policy_config(path)
    except Exception:
        return _PolicyLists(BUILTIN_KERNEL, BUILTIN_SENSITIVE), ApprovalLookup(())
    lists = _PolicyLists(
        (*BUILTIN_KERNEL, *pc.packages.kernel),
        (*BUILTIN_SENSITIVE, *pc.packages.security_sensitive),
    )
    return lists, ApprovalLookup(pc.sources)


def _uri_key(uri: str) -> str:
    """Comparable form of a source URI (apt prints ``file:/x`` for ``file:///x``)."""
    scheme, sep, rest = uri.rstrip("/").partition(":")
    if sep and scheme in ("file", "copy", "cdrom"):
        return f"{scheme}:/{rest.lstrip('/')}"
    return uri.rstrip("/")


class _Apt:
    """Runs apt tools with the planning environment and the persistent cache."""

    def __init__(self, cfg: Config) -> None:
        self.cfg = cfg
        self.timeout = float(cfg.apt_timeout_s)
        self.cache_opts: tuple[str, ...] = ()
        if cfg.apt_config is None:
            # The host's own configuration may switch the package cache off (TESTBED
            # section 8); keep Aegis's own persistent copy, one per uid.
            cache = cfg.cache_dir / "apt"
            try:
                cache.mkdir(parents=True, exist_ok=True)
                if os.access(cache, os.W_OK):
                    uid = os.geteuid()
                    self.cache_opts = (
                        "-o",
                        f"Dir::Cache::pkgcache={cache}/pkgcache-{uid}.bin",
                        "-o",
                        f"Dir::Cache::srcpkgcache={cache}/srcpkgcache-{uid}.bin",
                    )
            except OSError:
                self.cache_opts = ()

    def run(self, tool: str, *args: str, cache: bool = True) -> RunResult:
        extra = self.cache_opts if cache else ()
        return run_tool(
            [tool, *extra, *args], apt_config=self.cfg.apt_config, timeout_s=self.timeout
        )


def _simulation_args(
    op: Operation, targets: Sequence[Target], local: dict[str, str] | None = None
) -> list[str]:
    # A rollback target taken from the snapshot is handed to apt as its .deb's path.
    operands = [(local or {}).get(t.raw) or t.apt_operand for t in targets]
    if op is Operation.UPGRADE:
        return ["-s", "upgrade"]
    if op in (Operation.REMOVE, Operation.PURGE):
        # -qq would imply -y, and apt then refuses to simulate removing an Essential
        # package; -q shows the removal so the plan (and policy) can see it.
        return ["-s", "-q", op.value, "--", *operands]
    return ["-s", "-qq", "--allow-downgrades", "install", "--", *operands]


def _record_map(text: str) -> dict[tuple[str, str], dict[str, str]]:
    out: dict[tuple[str, str], dict[str, str]] = {}
    for rec in aptparse.parse_control_records(text):
        key = (rec.get("Package", ""), rec.get("Version", ""))
        # Prefer a record from an index (it has SHA256) over the dpkg status one.
        if key not in out or ("SHA256" in rec and "SHA256" not in out[key]):
            out[key] = rec
    return out


def _deb_cache_name(name: str, version: str, arch: str) -> str:
    return f"{name}_{version.replace(':', '%3a')}_{arch}.deb"


def analyze_apt(
    cfg: Config | Intent,
    intent: Intent | Config,
    now: datetime | None = None,
    *,
    inspect_contents: bool = True,
    plan_id: str | None = None,
) -> Plan:
    """Analyze an apt intent into a :class:`Plan` (read-only).

    Accepts ``(cfg, intent)`` or ``(intent, cfg)``.

    Args:
        cfg: Aegis configuration (apt_config, policy path, timeouts, cache dir).
        intent: what was asked.
        now: analysis time (defaults to the clock); decides expiry and freeze.
        inspect_contents: download the .debs into Aegis's cache and scan them.
        plan_id: fixed id (tests); default a fresh random id.

    Raises:
        InputError: a target outside the name grammar (nothing ran).
        EnvironmentFailure: the configured apt configuration is not a regular file.
    """
    if isinstance(cfg, Intent) and isinstance(intent, Config):
        cfg, intent = intent, cfg
    assert isinstance(cfg, Config)
    assert isinstance(intent, Intent)
    now = now or datetime.now(UTC)
    targets = parse_targets(intent.targets)
    if cfg.apt_config is not None and not cfg.apt_config.is_file():
        # apt only warns and then reads the host's own configuration when APT_CONFIG
        # names no regular file: that would be a plan of another system. Fail closed.
        from aegis.errors import EnvironmentFailure

        raise EnvironmentFailure(
            f"the configured apt configuration {cfg.apt_config} is not a regular file",
            hint="point AEGIS_APT_CONFIG (apt_config) at an existing apt.conf",
        )
    return _Analysis(cfg, intent, now, targets, inspect_contents).build(plan_id or new_plan_id())


class _Analysis:
    def __init__(
        self,
        cfg: Config,
        intent: Intent,
        now: datetime,
        targets: tuple[Target, ...],
        inspect_contents: bool,
    ) -> None:
        self.cfg, self.intent, self.now, self.targets = cfg, intent, now, targets
        self.inspect = inspect_contents
        self.apt = _Apt(cfg)
        self.op = intent.operation
        self.lists, self.approval = _policy_lists(cfg.policy_path)
        self.signals: list[Signal] = []
        self.failure: AnalysisFailure | None = None
        self.inspected = False
        self.local = RollbackSources()

    # -- orchestration -----------------------------------------------------------

    def build(self, plan_id: str) -> Plan:
        direct = [t for t in self.targets if t.kind != "package"]
        for t in direct:
            self.signals.append(Signal(f"target.{t.kind}", None, t.raw))
        if direct:
            self.failure = AnalysisFailure(
                "bad-target",
                "direct path or URL targets are not analyzed: " + ", ".join(t.raw for t in direct),
            )
        if not direct:
            self.local = rollback_sources(self.cfg, self.intent, self.targets, self.apt.run)
        if self.local.failure is not None:
            self.failure = AnalysisFailure(self.local.failure_kind or "", self.local.failure)
            bad = [(sd.package, sd.problem) for sd in self.local.debs if sd.problem]
            unnamed: list[tuple[str | None, str]] = [(None, self.local.failure)]
            for package, problem in bad or unnamed:
                self.signals.append(Signal("rollback.snapshot-mismatch", package, problem))
        simulate = self.failure is None and self.op not in (Operation.UPDATE, Operation.RECOVER)
        with ThreadPoolExecutor(max_workers=4) as pool:
            f_dump = pool.submit(self.apt.run, APT_CONFIG_BIN, "dump", cache=False)
            f_sim = (
                pool.submit(
                    self.apt.run,
                    APT_GET,
                    *_simulation_args(self.op, self.targets, self.local.operands),
                )
                if simulate
                else None
            )
            dump = f_dump.result()
            if not dump.ok:
                return self._tool_failure_plan(plan_id, dump)
            paths = resolve_apt_paths(aptparse.parse_apt_config_dump(dump.stdout))
            entries = self._entries(paths)
            config = assess_apt_config(
                dump.stdout,
                read_dpkg_config(self.cfg.dpkg_root),
                trusted_yes=any(e.trusted_yes for e in entries),
            )
            f_state = pool.submit(
                gather_state_inputs, paths, entries, config.apt_config_hash, config.dpkg_config_hash
            )
            f_repos = {
                repository_id(e.uri, e.suite, e.component): pool.submit(
                    collect_repository,
                    e,
                    paths,
                    self.now,
                    self.approval,
                    timeout_s=self.apt.timeout,
                    prefer_repository=self.op is Operation.UPDATE,
                )
                for e in entries
            }
            sim = self._simulate(f_sim) if f_sim is not None else None
            changes: list[PackageChange] = []
            configure: tuple[str, ...] = ()
            provenance: list[Provenance] = []
            rollback: list[RollbackRequirement] = []
            descriptions: dict[str, str] = {}
            repos_all = {rid: f.result() for rid, f in f_repos.items()}
            used: set[str] = set()
            if sim is not None:
                configure = sim.configure_order
                changes, provenance, rollback, descriptions, used = self._delta(
                    pool, sim, paths, entries, repos_all
                )
            state = package_state_hash(f_state.result())
        if self.op is Operation.UPDATE:
            used = set(repos_all)
        repositories = tuple(sorted((repos_all[r][0] for r in used), key=lambda r: r.id))
        findings, vulns, vulndb_date, provenance_t = self._contents(
            tuple(changes), tuple(provenance), Path(paths.status).parent / "info"
        )
        self.signals += package_signals(
            changes, kernel=self.lists.kernel, sensitive=self.lists.sensitive
        )
        self.signals += repository_signals(repositories)
        self.signals += content_signals(findings, vulns)
        if self.failure is not None:
            self.signals.append(
                Signal("analysis.failed", None, f"{self.failure.kind}: {self.failure.message}")
            )
        plan = Plan(
            schema_version=PLAN_SCHEMA,
            plan_id=plan_id,
            created_at=format_time(self.now),
            intent=self.intent,
            host=this_host(self.cfg),
            changes=tuple(changes),
            configure_order=configure,
            command_preview=(),
            repositories=repositories,
            config=config,
            provenance=provenance_t,
            findings=findings,
            vulnerabilities=vulns,
            vulndb_date=vulndb_date,
            rollback=tuple(rollback),
            signals=sort_signals(self.signals),
            package_state_hash=state,
            content_inspected=self.inspected,
            failure=self.failure,
            descriptions=descriptions,
            snapshot_debs=self.local.debs,
        )
        from aegis.execute.argv import derive_argv

        return replace(plan, command_preview=derive_argv(plan))

    def _entries(self, paths: AptPaths) -> list[SourceEntry]:
        files: list[tuple[str, str]] = []
        for p in source_files(paths):
            if not p.is_file():
                continue  # a FIFO would block this read for ever; apt skips such files too
            try:
                files.append((str(p), p.read_text(errors="replace")))
            except OSError:
                continue
        seen: set[str] = set()
        out: list[SourceEntry] = []
        for e in parse_sources(files):
            rid = repository_id(e.uri, e.suite, e.component)
            if rid not in seen:
                seen.add(rid)
                out.append(e)
        return out

    def _tool_failure_plan(self, plan_id: str, res: RunResult) -> Plan:
        kind = "timeout" if res.timed_out else "tool-failed"
        self.failure = AnalysisFailure(kind, f"apt-config dump: {res.stderr.strip()[-500:]}")
        self.signals.append(Signal("analysis.failed", None, f"{kind}: apt-config dump failed"))
        return Plan(
            schema_version=PLAN_SCHEMA,
            plan_id=plan_id,
            created_at=format_time(self.now),
            intent=self.intent,
            host=this_host(self.cfg),
            changes=(),
            configure_order=(),
            command_preview=(),
            repositories=(),
            config=ConfigEvidence("", "", ()),
            provenance=(),
            findings=(),
            vulnerabilities=(),
            vulndb_date=None,
            rollback=(),
            signals=sort_signals(self.signals),
            package_state_hash="",
            content_inspected=False,
            failure=self.failure,
        )

    def _simulate(self, fut: Future[RunResult]) -> aptparse.Simulation | None:
        res = fut.result()
        if res.timed_out:
            self.failure = AnalysisFailure(
                "timeout", f"apt-get simulation timed out after {self.apt.timeout} s"
            )
            return None
        if res.returncode != 0:
            kind, message = aptparse.parse_apt_error(res.stderr)
            self.failure = AnalysisFailure(kind, message)
            if kind == "unknown-package":
                self._unknown_targets(
                    aptparse.unknown_names(res.stderr)
                    or tuple(t.name for t in self.targets if t.name)
                )
            return None
        try:
            return aptparse.parse_apt_simulation(res.stdout)
        except Exception as exc:
            self.failure = AnalysisFailure("tool-failed", str(exc))
            return None

    def _unknown_targets(self, names: Sequence[str]) -> None:
        for name in names:
            res = self.apt.run(APT_CACHE, "pkgnames", name[:1])
            known = sorted(set(res.stdout.split())) if res.ok else []
            close = closest_names(name, known)
            detail = f"closest known: {', '.join(close)}" if close else "no similar name known"
            self.signals.append(Signal("target.unknown", name, detail))

    # -- the delta ----------------------------------------------------------------

    def _delta(
        self,
        pool: ThreadPoolExecutor,
        sim: aptparse.Simulation,
        paths: AptPaths,
        entries: Sequence[SourceEntry],
        repos_all: dict[str, tuple[Repository, ReleaseFiles]],
    ) -> tuple[
        list[PackageChange], list[Provenance], list[RollbackRequirement], dict[str, str], set[str]
    ]:
        names = sorted({c.name for c in sim.changes})
        if not names:
            return [], [], [], {}, set()
        local = self.local.records
        # One record per package: the candidate for what gets installed, the installed
        # version for removals (apt-cache show decompresses indexes: keep the set small).
        wanted = sorted(
            {
                f"{c.name}={c.candidate_version if c.action in _WITH_FILE else c.current_version}"
                for c in sim.changes
                if c.action is not Action.HELD_BACK
                and (c.candidate_version if c.action in _WITH_FILE else c.current_version)
                and (c.name, c.candidate_version) not in local
            }
        )
        fetch = sorted(
            {
                f"{c.name}={c.candidate_version}"
                for c in sim.changes
                if c.action in _WITH_FILE
                and c.candidate_version
                and (c.name, c.candidate_version) not in local
            }
        )
        f_pol = pool.submit(self.apt.run, APT_CACHE, "policy", "--", *names)
        # Large deltas: two concurrent apt-cache show calls (records are read, not the cache).
        half = (len(wanted) + 1) // 2 if len(wanted) > 40 else len(wanted)
        f_shows = [
            pool.submit(self.apt.run, APT_CACHE, "show", "--no-all-versions", "--", *chunk)
            for chunk in (wanted[:half], wanted[half:])
            if chunk
        ]
        f_uris = (
            pool.submit(self.apt.run, APT_GET, "download", "--print-uris", "--", *fetch)
            if fetch
            else None
        )
        policies = aptparse.parse_apt_policy(f_pol.result().stdout)
        records = _record_map("\n\n".join(f.result().stdout for f in f_shows))
        uris = (
            {d.filename: d for d in aptparse.parse_print_uris(f_uris.result().stdout)}
            if f_uris is not None
            else {}
        )
        by_key = {(_uri_key(e.uri), e.suite, e.component): e for e in entries}
        pkg_hash_cache: dict[str, str] = {}
        changes: list[PackageChange] = []
        provenance: list[Provenance] = []
        rollback: list[RollbackRequirement] = []
        descriptions: dict[str, str] = {}
        used: set[str] = set()
        for sc in sim.changes:
            pol = policies.get(sc.name)
            current, candidate = sc.current_version, sc.candidate_version
            if sc.action is Action.HELD_BACK and pol is not None:
                current, candidate = pol.installed, pol.candidate
            version = candidate if sc.action in _WITH_FILE else current
            rec = records.get((sc.name, version or "")) or local.get((sc.name, version or ""), {})
            arch = sc.arch or rec.get("Architecture") or "all"
            src_name, src_ver = aptparse.parse_source_field(sc.name, version, rec.get("Source"))
            repo_id: str | None = None
            psrc = None
            if sc.action in _WITH_FILE and pol is not None and candidate:
                for s in pol.versions.get(candidate, ()):
                    entry = by_key.get((_uri_key(s.uri), s.suite, s.component))
                    if entry is not None:
                        repo_id = repository_id(entry.uri, entry.suite, entry.component)
                        psrc = s
                        break
            change = PackageChange(
                name=sc.name,
                arch=arch,
                action=sc.action,
                current_version=current,
                candidate_version=candidate,
                source_package=src_name,
                source_version=src_ver,
                repository=repo_id,
                essential=rec.get("Essential", "").lower() == "yes",
            )
            changes.append(change)
            if rec.get("Description") and sc.action is not Action.HELD_BACK:
                descriptions[sc.name] = rec["Description"]
            if repo_id is not None and psrc is not None and candidate:
                used.add(repo_id)
                repo, files = repos_all[repo_id]
                chain = self._index_chain(files, repo, psrc.arch, paths, pkg_hash_cache)
                fname = Path(rec.get("Filename", "")).name
                prov = build_provenance(
                    sc.name, candidate, arch, rec, uris.get(fname), repo_id, repo.uri, chain
                )
                if prov is not None:
                    provenance.append(prov)
                offers = self._offers(pol, by_key, repos_all)
                sig = weak_pin_signal(change, repo, offers)
                if sig is not None:
                    self.signals.append(sig)
            if sc.action in _REPLACING and current:
                rollback.append(self._rollback(sc.name, current, arch, pol, paths))
        return changes, provenance, rollback, descriptions, used

    def _index_chain(
        self,
        files: ReleaseFiles,
        repo: Repository,
        arch: str,
        paths: AptPaths,
        cache: dict[str, str],
    ) -> tuple[str, ...]:
        chain: list[str] = []
        rel = files.inrelease or files.release
        if rel is not None:
            key = str(rel)
            if key not in cache:
                cache[key] = file_sha256(rel)
            chain.append(f"{'InRelease' if files.inrelease else 'Release'}:{cache[key]}")
        prefix = lists_prefix(repo.uri, repo.suite) + (
            f"{repo.component}_" if repo.component else ""
        )
        for p in sorted(Path(paths.lists).glob(f"{prefix}binary-{arch}_Packages*")):
            key = str(p)
            if key not in cache:
                cache[key] = file_sha256(p)
            chain.append(f"Packages:{cache[key]}")
            break
        return tuple(chain)

    @staticmethod
    def _offers(
        pol: aptparse.PackagePolicy | None,
        by_key: dict[tuple[str, str, str], SourceEntry],
        repos_all: dict[str, tuple[Repository, ReleaseFiles]],
    ) -> list[tuple[str, Repository]]:
        """(version, repository) for every configured source offering the package."""
        out: list[tuple[str, Repository]] = []
        for ver, srcs in pol.versions.items() if pol else ():
            for s in srcs:
                entry = by_key.get((_uri_key(s.uri), s.suite, s.component))
                if entry is not None:
                    rid = repository_id(entry.uri, entry.suite, entry.component)
                    out.append((ver, repos_all[rid][0]))
        return out

    def _rollback(
        self,
        name: str,
        version: str,
        arch: str,
        pol: aptparse.PackagePolicy | None,
        paths: AptPaths,
    ) -> RollbackRequirement:
        cached = Path(paths.archives) / _deb_cache_name(name, version, arch)
        if cached.is_file():
            return RollbackRequirement(name, version, "apt-cache")
        if pol is not None and pol.versions.get(version):
            return RollbackRequirement(name, version, "repository")
        return RollbackRequirement(name, version, "dpkg-repack")

    # -- contents and vulnerabilities (CONTENTS engineer's modules) -------------------

    def _contents(
        self,
        changes: tuple[PackageChange, ...],
        provenance: tuple[Provenance, ...],
        info_dir: Path,
    ) -> tuple[tuple[Finding, ...], tuple[Vulnerability, ...], str | None, tuple[Provenance, ...]]:
        from aegis.analyze.inspect import inspect_contents, match_vulnerabilities

        findings: tuple[Finding, ...] = ()
        prov = provenance
        if self.inspect and prov and self.failure is None:
            res = inspect_contents(self.cfg, changes, prov, info_dir, timeout_s=self.apt.timeout)
            findings, prov = res.findings, res.provenance
            self.signals.extend(res.signals)
            self.inspected = True
        vres = match_vulnerabilities(self.cfg, changes)
        self.signals.extend(vres.signals)
        return findings, vres.vulnerabilities, vres.db_date, prov
