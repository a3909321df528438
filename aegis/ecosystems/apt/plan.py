"""Build the operation plan for an apt intent: :func:`analyze_apt`.

The analysis is read-only and deterministic: every tool runs through
:mod:`aegis.ecosystems.apt.run` with Aegis's APT_CONFIG and ``LANG=C``; apt calls that do
not depend on each other run concurrently (``apt-config dump`` beside the
simulation; ``apt-cache policy``, ``apt-cache show``, ``apt-get download
--print-uris``, gpgv and the state hashing beside each other). Two analyses of the
same state give the same plan apart from ``plan_id``, ``created_at`` and the
intent's ``requested_at`` (:func:`aegis.model.reproducible_view`).

An apt failure (unknown package, broken dependencies, lock, timeout) yields a plan
whose ``failure`` is set and whose ``command_preview`` is empty; bad target names
raise :class:`InputError` before anything runs; direct paths and URLs produce a
plan with ``target.direct-path`` / ``target.url`` signals and nothing to run.

This module orchestrates; the per-package delta (changes, provenance, rollback
requirements) is built in :mod:`aegis.ecosystems.apt.delta`, and every apt call goes
through :class:`aegis.ecosystems.apt.apt_runner.AptRunner`.

Example::

    plan = analyze_apt(cfg, Intent(Tool.APT, Operation.INSTALL, ("nginx",), "ops", now_s),
                       now=now)
"""

from __future__ import annotations

import contextlib
import importlib
import tempfile
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

from aegis.analyze.lookalike import lookalike_signals
from aegis.analyze.stamps import format_time, new_plan_id, this_host
from aegis.config import Config
from aegis.early import scratch
from aegis.early.scratch import ScratchDir
from aegis.ecosystems.apt import parse as aptparse
from aegis.ecosystems.apt.apt_runner import (
    APT_CACHE,
    APT_CONFIG_BIN,
    APT_GET,
    AptRunner,
    download_set_args,
    simulation_args,
)
from aegis.ecosystems.apt.argv import derive_argv
from aegis.ecosystems.apt.cache_warm import CacheWarmer
from aegis.ecosystems.apt.delta import (
    EarlyReads,
    PackageDelta,
    collect_delta,
    early_reads,
    with_integrity,
)
from aegis.ecosystems.apt.dpkg_status import StatusFacts, read_status_facts
from aegis.ecosystems.apt.evidence.aptconfig import (
    assess_apt_config,
    packaged_conf_texts,
    read_dpkg_config,
)
from aegis.ecosystems.apt.evidence.model_text import merged, scan_descriptions
from aegis.ecosystems.apt.evidence.release import ReleaseFiles
from aegis.ecosystems.apt.evidence.repositories import (
    ApprovalLookup,
    collect_repository,
    lists_behind_repository,
    repository_id,
)
from aegis.ecosystems.apt.evidence.sources import (
    AptPaths,
    SourceEntry,
    resolve_apt_paths,
)
from aegis.ecosystems.apt.first_seen import prepare_store, record_first_seen
from aegis.ecosystems.apt.names import Target, closest_names, parse_targets
from aegis.ecosystems.apt.run import RunResult
from aegis.ecosystems.apt.signals import (
    content_signals,
    package_signals,
    repository_signals,
    sort_signals,
)
from aegis.ecosystems.apt.snapshot_debs import RollbackSources, rollback_sources
from aegis.ecosystems.apt.state import configured_entries, gather_state_inputs, package_state_hash
from aegis.errors import EnvironmentFailure
from aegis.model import (
    PLAN_SCHEMA,
    Action,
    AnalysisFailure,
    ConfigEvidence,
    Finding,
    FirstSeen,
    Intent,
    Operation,
    PackageChange,
    Plan,
    Provenance,
    Repository,
    Signal,
    Vulnerability,
)
from aegis.policy.load import load_policy_config
from aegis.policy.rules import BUILTIN_KERNEL, BUILTIN_SENSITIVE


@dataclass(frozen=True)
class _PolicyLists:
    kernel: tuple[str, ...]
    sensitive: tuple[str, ...]


def _policy_lists(path: Path) -> tuple[_PolicyLists, ApprovalLookup]:
    """Kernel/sensitive name lists and approved sources from the policy file.

    An unusable policy file leaves the built-in lists and approves no source
    (policy itself then denies).
    """
    try:
        pc = load_policy_config(path)
    except Exception:
        return _PolicyLists(BUILTIN_KERNEL, BUILTIN_SENSITIVE), ApprovalLookup(())
    lists = _PolicyLists(
        (*BUILTIN_KERNEL, *pc.packages.kernel),
        (*BUILTIN_SENSITIVE, *pc.packages.security_sensitive),
    )
    return lists, ApprovalLookup(
        pc.sources,
        clock_skew=timedelta(seconds=pc.thresholds.clock_skew_s),
        freeze_after_s=pc.thresholds.freeze_after_s,
    )


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

        raise EnvironmentFailure(
            f"the configured apt configuration {cfg.apt_config} is not a regular file",
            hint="point AEGIS_APT_CONFIG (apt_config) at an existing apt.conf",
        )
    return _Analysis(cfg, intent, now, targets, inspect_contents).build(plan_id or new_plan_id())


def _archives_dir() -> tempfile.TemporaryDirectory[str] | ScratchDir:
    """A new empty directory for apt's download set to be printed in.

    Or the one the unattended pass made for the ``--print-uris`` it started before this
    module was imported (aegis/unattended/early.py): with it, this analysis's call is that
    very command, which it then takes over (aegis/early/process.py). Taken once.
    """
    return scratch.take(scratch.ARCHIVES) or tempfile.TemporaryDirectory(
        prefix=scratch.ARCHIVES_PREFIX
    )


def _remove_quietly(directory: tempfile.TemporaryDirectory[str] | ScratchDir) -> None:
    """Remove ``directory`` now (its context's exit then finds nothing to do)."""
    with contextlib.suppress(OSError):
        directory.cleanup()


def _warm_content_modules() -> None:
    """Import what the analysis uses later (a failure here resurfaces where it is used).

    In the order the analysis needs them: python-debian's deb822 (a ``.sources`` file is
    parsed as soon as ``apt-config dump`` answers; its import is slower than that call),
    then the content scanners.
    """
    for name in (
        "debian.deb822",
        "aegis.ecosystems.apt.inspect",
        "aegis.ecosystems.apt.evidence.contents",
        "aegis.ecosystems.apt.evidence.download",
        "aegis.analyze.evidence.vulndb",
        "aegis.analyze.evidence.vulnerabilities",
    ):
        importlib.import_module(name)


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
        self.apt = AptRunner(cfg)
        self.op = intent.operation
        self.lists, self.approval = _policy_lists(cfg.policy_path)
        self.signals: list[Signal] = []
        self.failure: AnalysisFailure | None = None
        self.inspected = False
        self.local = RollbackSources()
        self.warmer: CacheWarmer | None = None
        self.store_ready: Future[None] | None = None

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
        archives = _archives_dir()
        with ThreadPoolExecutor(max_workers=7) as pool, archives:
            f_dump = self._start(pool, simulate)
            f_sim = (
                pool.submit(
                    self.apt.run,
                    APT_GET,
                    *simulation_args(self.op, self.targets, self.local.operands),
                )
                if simulate
                else None
            )
            f_uris, f_early = self._start_download_set(pool, archives) if simulate else (None, None)
            dump = f_dump.result()
            if not dump.ok:
                return self._tool_failure_plan(plan_id, dump)
            paths = resolve_apt_paths(aptparse.parse_apt_config_dump(dump.stdout))
            entries = configured_entries(paths)
            config = assess_apt_config(
                dump.stdout,
                read_dpkg_config(self.cfg.dpkg_root),
                trusted_yes=any(e.trusted_yes for e in entries),
                packaged=packaged_conf_texts(paths.conf_parts, paths.status),
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
            configure: tuple[str, ...] = ()
            repos_all = {rid: f.result() for rid, f in f_repos.items()}
            delta = PackageDelta()
            if sim is not None:
                configure = sim.configure_order
                delta = collect_delta(
                    pool,
                    self.apt,
                    sim,
                    paths=paths,
                    entries=entries,
                    repos_all=repos_all,
                    local_records=self.local.records,
                    downloads=self._download_set(f_uris),
                    early=self._early(f_early),
                )
                self.signals += delta.signals
            state = package_state_hash(f_state.result())
        changes = delta.changes
        used = set(repos_all) if self.op is Operation.UPDATE else delta.used
        repositories = tuple(sorted((repos_all[r][0] for r in used), key=lambda r: r.id))
        # The sightings are a store write (two commits, each synced): on a thread of its
        # own while the contents are inspected, which reads nothing it writes.
        with ThreadPoolExecutor(max_workers=1) as seen_pool:
            f_seen = seen_pool.submit(
                self._record_first_seen,
                changes,
                {rid: found[0] for rid, found in repos_all.items()},
            )
            others = self._other_sources(entries, paths, repos_all, used)
            findings, vulns, vulndb_date, provenance_t = self._contents(
                changes, delta.provenance, Path(paths.status).parent / "info"
            )
            first_seen = f_seen.result()

        # Descriptions come from the signed indexes, inspected or not: text in them that
        # addresses a model is a finding (content.model-directed-text).
        findings = merged(findings, scan_descriptions(delta.descriptions))
        status = read_status_facts(Path(paths.status))
        self.signals += package_signals(
            changes, kernel=self.lists.kernel, sensitive=self.lists.sensitive, holds=status.holds
        )
        self.signals += self._lookalikes(changes, status)
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
            changes=with_integrity(changes, provenance_t, self.local.debs),
            configure_order=configure,
            command_preview=(),
            repositories=repositories,
            config=config,
            provenance=provenance_t,
            findings=findings,
            vulnerabilities=vulns,
            vulndb_date=vulndb_date,
            rollback=delta.rollback,
            signals=sort_signals(self.signals),
            package_state_hash=state,
            content_inspected=self.inspected,
            failure=self.failure,
            descriptions=delta.descriptions,
            snapshot_debs=self.local.debs,
            first_seen=first_seen,
            other_sources=others,
            deb_dir=str(self.cfg.deb_dir),
        )

        return replace(plan, command_preview=derive_argv(plan))

    def _record_first_seen(
        self, changes: tuple[PackageChange, ...], repositories: dict[str, Repository]
    ) -> tuple[FirstSeen, ...]:
        """:func:`record_first_seen`, once an early creation of the store has finished."""
        if self.store_ready is not None:
            with contextlib.suppress(Exception):
                self.store_ready.result()
        return record_first_seen(self.cfg, changes, repositories, self.now)

    def _prepare_store(self, f_uris: Future[RunResult]) -> None:
        """Create an absent store while apt simulates, when apt's download set names files."""
        res = f_uris.result()
        if res.ok and aptparse.parse_print_uris(res.stdout):
            prepare_store(self.cfg)

    def _other_sources(
        self,
        entries: Sequence[SourceEntry],
        paths: AptPaths,
        repos_all: dict[str, tuple[Repository, ReleaseFiles]],
        used: set[str] | frozenset[str],
    ) -> tuple[Repository, ...]:
        """Evidence for the sources the delta does not use (none for update plans).

        A local repository whose Release has moved past apt's lists is judged as the
        next update would judge it, so the plan says why apt did not follow.
        """
        if self.op is Operation.UPDATE:
            return ()
        out: list[Repository] = []
        for e in entries:
            rid = repository_id(e.uri, e.suite, e.component)
            if rid in used or rid not in repos_all:
                continue
            repo = repos_all[rid][0]
            if lists_behind_repository(e, paths):
                ahead, _ = collect_repository(
                    e, paths, self.now, self.approval, timeout_s=self.apt.timeout,
                    prefer_repository=True,
                )  # fmt: skip
                repo = replace(ahead, problems=("lists-stale", *ahead.problems))
            out.append(repo)
        return tuple(sorted(out, key=lambda r: r.id))

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

    @staticmethod
    def _early(fut: Future[EarlyReads | None] | None) -> EarlyReads | None:
        """The early apt-cache reads, or None (the delta then reads everything itself)."""
        if fut is None:
            return None
        try:
            return fut.result()
        except Exception:
            return None

    @staticmethod
    def _download_set(fut: Future[RunResult] | None) -> tuple[aptparse.DownloadUri, ...]:
        """The download set apt printed (empty when that failed: no provenance then)."""
        if fut is None:
            return ()
        res = fut.result()
        return aptparse.parse_print_uris(res.stdout) if res.ok else ()

    def _start_download_set(
        self, pool: ThreadPoolExecutor, archives: tempfile.TemporaryDirectory[str] | ScratchDir
    ) -> tuple[Future[RunResult] | None, Future[EarlyReads | None] | None]:
        """Start ``apt-get --print-uris`` beside the simulation, and what follows from it.

        apt's own download set for the same resolution names the exact build (URI, size,
        hash) of every package apt would fetch. From it, still while apt simulates: the
        delta's apt-cache reads (:func:`aegis.ecosystems.apt.delta.early_reads`, queued
        after the set's call, which it waits for); with contents inspected, the local
        files are read and parsed on threads of their own
        (:mod:`aegis.ecosystems.apt.cache_warm`; joined by :meth:`_contents`; nothing is
        trusted from them: the inspection checks every file against its signed
        provenance); an absent store is created (:func:`prepare_store`).
        """
        uri_args = download_set_args(
            self.op, self.targets, self.local.operands, Path(archives.name)
        )
        if not uri_args:
            return None, None
        f_uris = pool.submit(self.apt.run, APT_GET, *uri_args)
        # apt needs the empty archive directory only while it prints the set: removed
        # then, not on the way out.
        f_uris.add_done_callback(lambda _: _remove_quietly(archives))
        if self.inspect:
            self.warmer = CacheWarmer(self.apt.timeout)
            self.warmer.start(f_uris)
        f_early = pool.submit(early_reads, pool, self.apt, f_uris)
        self.store_ready = pool.submit(self._prepare_store, f_uris)
        return f_uris, f_early

    def _start(self, pool: ThreadPoolExecutor, simulate: bool) -> Future[RunResult]:
        """Start ``apt-config dump``; with contents inspected, warm the scanners' imports."""
        if self.inspect and simulate:
            # The content scanners' modules are a large part of a fresh process's
            # imports: they load while apt runs instead of after it.
            pool.submit(_warm_content_modules)
        return pool.submit(self.apt.run, APT_CONFIG_BIN, "dump", cache=False)

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

    def _lookalikes(self, changes: tuple[PackageChange, ...], facts: StatusFacts) -> list[Signal]:
        """``name.lookalike`` for requested packages this plan newly installs."""
        # Only what was asked for: a typosquat works on the name someone types.
        asked = {t.name for t in self.targets if t.kind == "package" and t.name}
        new = [c.name for c in changes if c.action is Action.INSTALL and c.name in asked]
        return lookalike_signals(new, facts.references) if new else []

    # -- contents and vulnerabilities (CONTENTS engineer's modules) -------------------

    def _contents(
        self,
        changes: tuple[PackageChange, ...],
        provenance: tuple[Provenance, ...],
        info_dir: Path,
    ) -> tuple[tuple[Finding, ...], tuple[Vulnerability, ...], str | None, tuple[Provenance, ...]]:
        try:
            return self._inspect(changes, provenance, info_dir)
        finally:
            if self.warmer is not None:
                self.warmer.join()

    def _inspect(
        self,
        changes: tuple[PackageChange, ...],
        provenance: tuple[Provenance, ...],
        info_dir: Path,
    ) -> tuple[tuple[Finding, ...], tuple[Vulnerability, ...], str | None, tuple[Provenance, ...]]:
        # The scanners (bashlex, the rule tables) load on the pool while apt runs
        # (_warm_content_modules), not before the first apt call.
        from aegis.ecosystems.apt import inspect as inspection  # noqa: PLC0415 - see above
        from aegis.ecosystems.apt.evidence.contents import InstalledInfo  # noqa: PLC0415

        findings: tuple[Finding, ...] = ()
        prov = provenance
        # Read once for both: the scripts compared with the new ones and those that run.
        installed = InstalledInfo(info_dir, len(changes))
        if self.inspect and prov and self.failure is None:
            res = inspection.inspect_contents(
                self.cfg,
                changes,
                prov,
                info_dir,
                timeout_s=self.apt.timeout,
                wait_for=self.warmer.wait if self.warmer is not None else None,
                parsed=self.warmer.parsed if self.warmer is not None else None,
                early=self.warmer.take if self.warmer is not None else None,
                installed=installed,
            )
            findings, prov = res.findings, res.provenance
            self.signals.extend(res.signals)
            self.inspected = True
        if self.failure is None:
            # What the old version runs on its way out is read whether or not the new
            # .debs are inspected: it is local, and a removal has no .deb to inspect.
            findings = tuple(
                sorted(
                    findings + inspection.installed_script_findings(changes, info_dir, installed),
                    key=lambda f: (f.package, f.file, f.line, f.rule),
                )
            )
        vres = inspection.match_vulnerabilities(self.cfg, changes)
        self.signals.extend(vres.signals)
        return findings, vres.vulnerabilities, vres.db_date, prov
