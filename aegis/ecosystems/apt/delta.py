"""The package delta of a simulation: what changes, from where, and how to undo it.

:func:`collect_delta` turns apt's simulated changes into the plan's
:class:`~aegis.model.PackageChange` rows, their :class:`~aegis.model.Provenance`
(the Release -> Packages -> .deb hash chain), the rollback requirement of every
replaced package, the package descriptions and the weak-pin signals. It lives apart
from :mod:`aegis.ecosystems.apt.plan`, which orchestrates the whole analysis, because it
is the one part that reads per-package apt records (``apt-cache policy`` and
``apt-cache show``, run concurrently on the analysis's thread pool).

The provenance of a package to install is the record of the very file apt's own
resolution would download (its ``--print-uris`` download set, read beside the
simulation): one version can exist as two builds, and ``pkg=version`` names only the
version (docs/apt-trust.md, "One file from plan to install").

Records of a rollback target come from the kept .deb in the snapshot
(``local_records``), never from apt, so the delta never asks apt about a version no
repository serves.

Example::

    delta = collect_delta(
        pool, apt, sim, paths=paths, entries=entries, repos_all=repos_all, local_records={}
    )
    delta.changes[0].name
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from urllib.parse import unquote

from aegis.ecosystems.apt import parse as aptparse
from aegis.ecosystems.apt.apt_runner import APT_CACHE, AptRunner
from aegis.ecosystems.apt.evidence.provenance import build_provenance
from aegis.ecosystems.apt.evidence.release import ReleaseFiles
from aegis.ecosystems.apt.evidence.repositories import file_sha256, repository_id
from aegis.ecosystems.apt.evidence.sources import AptPaths, SourceEntry, lists_prefix
from aegis.ecosystems.apt.run import RunResult
from aegis.ecosystems.apt.signals import weak_pin_signal
from aegis.model import (
    Action,
    PackageChange,
    Provenance,
    Repository,
    RollbackRequirement,
    Signal,
    SnapshotDeb,
)

_WITH_FILE = (Action.INSTALL, Action.UPGRADE, Action.DOWNGRADE, Action.REINSTALL)
_REPLACING = (Action.UPGRADE, Action.DOWNGRADE, Action.REMOVE, Action.PURGE)

# Records (pkg=ver) above which apt-cache show is split into two concurrent calls, one
# per half; a smaller delta is read by a single call (scripts/benchmarks/apt.py times it).
_SPLIT_SHOW_ABOVE = 40

_FILE_NAME_PARTS = 3
"""apt names a downloaded file ``name_version_arch.deb``."""

_SourceKey = tuple[str, str, str]
"""(comparable URI, suite, component) of a configured source."""


@dataclass(frozen=True)
class PackageDelta:
    """The plan rows derived from one simulation."""

    changes: tuple[PackageChange, ...] = ()
    provenance: tuple[Provenance, ...] = ()
    rollback: tuple[RollbackRequirement, ...] = ()
    descriptions: dict[str, str] = field(default_factory=dict)
    """Package name -> apt's Description (untrusted text)."""
    used: frozenset[str] = frozenset()
    """Ids of the repositories a change is downloaded from."""
    signals: tuple[Signal, ...] = ()
    """Weak-pin signals found on the way."""


def _uri_key(uri: str) -> str:
    """Comparable form of a source URI (apt prints ``file:/x`` for ``file:///x``)."""
    scheme, sep, rest = uri.rstrip("/").partition(":")
    if sep and scheme in ("file", "copy", "cdrom"):
        return f"{scheme}:/{rest.lstrip('/')}"
    return uri.rstrip("/")


_Records = dict[tuple[str, str], dict[str, str]]
"""(Package, Version) -> the index record apt-cache show printed."""


def _record_map(text: str, into: _Records | None = None) -> _Records:
    """Records of ``text`` by (Package, Version), added to ``into`` when given."""
    out: _Records = {} if into is None else into
    for rec in aptparse.parse_control_records(text):
        key = (rec.get("Package", ""), rec.get("Version", ""))
        # Prefer a record from an index (it has SHA256) over the dpkg status one.
        if key not in out or ("SHA256" in rec and "SHA256" not in out[key]):
            out[key] = rec
    return out


def _deb_cache_name(name: str, version: str, arch: str) -> str:
    return f"{name}_{version.replace(':', '%3a')}_{arch}.deb"


def _source_repository(
    s: aptparse.PolicySource, by_key: dict[_SourceKey, SourceEntry]
) -> str | None:
    """Id of the configured repository apt names as a version's source, if any."""
    entry = by_key.get((_uri_key(s.uri), s.suite, s.component))
    if entry is None:
        return None
    return repository_id(entry.uri, entry.suite, entry.component)


def _policies(
    apt: AptRunner, names: Sequence[str]
) -> tuple[bool, dict[str, aptparse.PackagePolicy]]:
    """apt-cache policy of ``names``, parsed (whatever it printed, and whether it exited 0)."""
    res = apt.run(APT_CACHE, "policy", "--", *names)
    return res.ok, aptparse.parse_apt_policy(res.stdout)


def _records(apt: AptRunner, wanted: Sequence[str]) -> tuple[bool, _Records]:
    """apt-cache show of ``wanted`` (``name=version``), parsed (and whether it exited 0)."""
    res = apt.run(APT_CACHE, "show", "--no-all-versions", "--", *wanted)
    return res.ok, _record_map(res.stdout)


@dataclass(frozen=True)
class EarlyReads:
    """``apt-cache policy`` and ``show`` started from apt's download set (see :func:`early_reads`).

    Only what these calls were asked for is taken from them; whatever the simulation
    needs beyond it is read afterwards (:func:`_read_apt`).
    """

    names: frozenset[str]
    wanted: frozenset[str]
    """``name=version`` of every record asked for."""
    policy: Future[tuple[bool, dict[str, aptparse.PackagePolicy]]]
    show: Future[tuple[bool, _Records]]


def _download_keys(downloads: Sequence[aptparse.DownloadUri]) -> dict[str, str]:
    """Package name -> version of each file apt names ``name_version_arch.deb``."""
    out: dict[str, str] = {}
    for d in downloads:
        stem, dot, ext = d.filename.rpartition(".")
        parts = stem.split("_")
        if dot and ext == "deb" and len(parts) == _FILE_NAME_PARTS and all(parts):
            out[parts[0]] = unquote(parts[1])  # apt writes ':' as %3a
    return out


def early_reads(
    pool: ThreadPoolExecutor, apt: AptRunner, f_uris: Future[RunResult]
) -> EarlyReads | None:
    """Start the delta's apt-cache reads from apt's download set, before the simulation ends.

    The download set (``--print-uris``) is known long before the simulation is, and
    for an upgrade it names nearly every package the delta reads. apt's answer for one
    package does not depend on the others asked with it, so what is read here is what
    :func:`_read_apt` would have read; it reads the rest itself. The answers are parsed
    as they arrive, still beside the simulation, and the records are read by one call
    (no one waits on it yet: one process fewer than two halves). Never waits on a task
    queued after it: run it on ``pool`` only after ``f_uris``.
    """
    res = f_uris.result()
    if not res.ok:
        return None
    keys = _download_keys(aptparse.parse_print_uris(res.stdout))
    if not keys:
        return None
    names = sorted(keys)
    wanted = sorted(f"{n}={v}" for n, v in keys.items())
    return EarlyReads(
        frozenset(names),
        frozenset(wanted),
        pool.submit(_policies, apt, names),
        pool.submit(_records, apt, wanted),
    )


def _read_apt(
    pool: ThreadPoolExecutor,
    apt: AptRunner,
    sim: aptparse.Simulation,
    names: Sequence[str],
    local_records: _Records,
    *,
    early: EarlyReads | None = None,
) -> tuple[dict[str, aptparse.PackagePolicy], _Records]:
    """Policies of ``names`` and index records of ``sim``.

    Records of a kept rollback .deb (``local_records``) are not asked of apt. With
    ``early`` reads that both succeeded, only what they did not ask for is read here.
    """
    # One record per package: the candidate for what gets installed, the installed
    # version for removals (apt-cache show decompresses indexes: keep the set small).
    wanted = sorted(
        {
            f"{c.name}={c.candidate_version if c.action in _WITH_FILE else c.current_version}"
            for c in sim.changes
            if c.action is not Action.HELD_BACK
            and (c.candidate_version if c.action in _WITH_FILE else c.current_version)
            and (c.name, c.candidate_version) not in local_records
        }
    )
    policies: dict[str, aptparse.PackagePolicy] = {}
    records: _Records = {}
    if early is not None:
        (pol_ok, early_policies), (show_ok, early_records) = (
            early.policy.result(),
            early.show.result(),
        )
        if pol_ok and show_ok:
            policies.update(early_policies)
            records.update(early_records)
            names = [n for n in names if n not in early.names]
            wanted = [w for w in wanted if w not in early.wanted]
    f_pol = pool.submit(_policies, apt, names) if names else None
    # Large deltas: two concurrent apt-cache show calls (records are read, not the cache).
    half = (len(wanted) + 1) // 2 if len(wanted) > _SPLIT_SHOW_ABOVE else len(wanted)
    f_shows = [
        pool.submit(apt.run, APT_CACHE, "show", "--no-all-versions", "--", *chunk)
        for chunk in (wanted[:half], wanted[half:])
        if chunk
    ]
    if f_pol is not None:
        policies.update(f_pol.result()[1])
    for f in f_shows:
        _record_map(f.result().stdout, records)
    return policies, records


def _exact_records(
    apt: AptRunner,
    sim: aptparse.Simulation,
    records: dict[tuple[str, str], dict[str, str]],
    downloads: dict[str, aptparse.DownloadUri],
) -> tuple[dict[tuple[str, str], dict[str, str]], list[Signal]]:
    """The index record of the very build apt would download for each package to install.

    ``apt-cache show pkg=version`` names a version, and one version can exist as two
    builds (same version string, different files: a rebuild in another suite); apt then
    shows the first build it knows while its policy may install the other. The build
    apt installs is the file in its download set, so a record counts only when it
    describes that file (:func:`aegis.ecosystems.apt.parse.download_matches`, with the hash apt
    printed). When the first record does not, or no hash could be compared, every build
    of the package is read and exactly one distinct file must match; none or several is
    ``provenance.build-ambiguous``, never a guess.
    """
    exact: dict[tuple[str, str], dict[str, str]] = {}
    again: dict[tuple[str, str], aptparse.DownloadUri] = {}
    for c in sim.changes:
        version = c.candidate_version or ""
        if c.action not in _WITH_FILE or (c.name, version) not in records:
            continue
        dl = downloads.get(_deb_cache_name(c.name, version, c.arch or "all"))
        if dl is None:
            continue  # apt would fetch nothing we can name: no provenance (policy denies)
        rec = records[(c.name, version)]
        if aptparse.download_matches(dl, rec) and aptparse.download_hash_compared(dl, rec):
            exact[(c.name, version)] = rec
        else:  # another build, or one we cannot tell from another of the same size
            again[(c.name, version)] = dl
    signals: list[Signal] = []
    if not again:
        return exact, signals
    res = apt.run(APT_CACHE, "show", "--", *sorted({n for n, _ in again}))
    every = aptparse.parse_control_records(res.stdout) if res.ok else []
    for (name, version), dl in sorted(again.items()):
        build, problem = aptparse.pick_build(dl, every, name, version)
        if build is not None:
            exact[(name, version)] = build
        else:
            signals.append(Signal("provenance.build-ambiguous", name, problem))
    return exact, signals


def collect_delta(
    pool: ThreadPoolExecutor,
    apt: AptRunner,
    sim: aptparse.Simulation,
    *,
    paths: AptPaths,
    entries: Sequence[SourceEntry],
    repos_all: dict[str, tuple[Repository, ReleaseFiles]],
    local_records: dict[tuple[str, str], dict[str, str]],
    downloads: Sequence[aptparse.DownloadUri] = (),
    early: EarlyReads | None = None,
) -> PackageDelta:
    """Build the delta rows of ``sim``.

    Args:
        pool: the analysis's thread pool (apt calls run concurrently on it).
        apt: the runner with the planning environment.
        sim: the parsed simulation.
        paths: apt's directories from ``apt-config dump``.
        entries: the configured sources, one per repository id.
        repos_all: repository id -> its evidence and Release files.
        local_records: (name, version) -> control fields of kept rollback .debs.
        downloads: apt's download set for the same resolution (``--print-uris``): a
            package to install gets provenance only from the record of that very file.
        early: the apt-cache reads :func:`early_reads` started from that download set.
    """
    names = sorted({c.name for c in sim.changes})
    if not names:
        return PackageDelta()
    policies, records = _read_apt(pool, apt, sim, names, local_records, early=early)
    by_file = {d.filename: d for d in downloads}
    exact, signals = _exact_records(apt, sim, records, by_file)
    by_key = {(_uri_key(e.uri), e.suite, e.component): e for e in entries}
    chains = _Chains(paths)
    archived = _ArchivedDebs(Path(paths.archives))
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
        key = (sc.name, version or "")
        exact_rec = exact.get(key) if sc.action in _WITH_FILE else None
        rec = exact_rec or records.get(key) or local_records.get(key, {})
        arch = sc.arch or rec.get("Architecture") or "all"
        src_name, src_ver = aptparse.parse_source_field(sc.name, version, rec.get("Source"))
        dl = by_file.get(_deb_cache_name(sc.name, version or "", arch))
        repo_id: str | None = None
        psrc = None
        if sc.action in _WITH_FILE and pol is not None and candidate:
            for s in _sources_of(pol.versions.get(candidate, ()), dl):
                repo_id = _source_repository(s, by_key)
                if repo_id is not None:
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
            chain = chains.of(repo_id, files, repo, psrc.arch)
            # Provenance only from the record of the file apt would download.
            prov = (
                build_provenance(
                    sc.name,
                    candidate,
                    arch,
                    record=exact_rec,
                    download=dl,
                    repository=repo_id,
                    base_uri=repo.uri,
                    index_chain=chain,
                )
                if exact_rec is not None
                else None
            )
            if prov is not None:
                provenance.append(prov)
            sig = weak_pin_signal(change, repo, _offers(pol, by_key, repos_all))
            if sig is not None:
                signals.append(sig)
        if sc.action in _REPLACING and current:
            rollback.append(_rollback(sc.name, current, arch, pol, archived))
    return PackageDelta(
        changes=tuple(changes),
        provenance=tuple(provenance),
        rollback=tuple(rollback),
        descriptions=descriptions,
        used=frozenset(used),
        signals=tuple(signals),
    )


def with_integrity(
    changes: Sequence[PackageChange],
    provenance: Sequence[Provenance],
    snapshot_debs: Sequence[SnapshotDeb] = (),
) -> tuple[PackageChange, ...]:
    """``changes`` with apt's integrity filled: ``sha256:<hex>`` of the exact .deb installed.

    The file is the one the provenance names (the signed index's record of what apt
    downloads) or the kept .deb of a rollback snapshot; a change with neither, and every
    removal, keeps "" (docs/ecosystems.md "The plan: core and evidence").
    """
    files = {(p.package, p.arch, p.version): p.sha256 for p in provenance}
    for d in snapshot_debs:
        files.setdefault((d.package, d.arch, d.version), d.sha256)
    out: list[PackageChange] = []
    for c in changes:
        digest = files.get((c.name, c.arch, c.candidate_version or ""))
        out.append(
            replace(c, integrity=f"sha256:{digest}") if c.action in _WITH_FILE and digest else c
        )
    return tuple(out)


def _sources_of(
    sources: Sequence[aptparse.PolicySource], dl: aptparse.DownloadUri | None
) -> list[aptparse.PolicySource]:
    """The sources of a version that serve the file apt would download.

    ``apt-cache policy`` lists two builds of one version under the same version string;
    only a source whose URI the downloaded file lives under supplies the build apt
    picked. Without a download line every source of the version is returned.
    """
    if dl is None:
        return list(sources)
    where = _uri_key(dl.uri)
    return [s for s in sources if where.startswith(_uri_key(s.uri) + "/")]


class _Chains:
    """Index chains of a delta: one per repository and architecture, not one per package."""

    def __init__(self, paths: AptPaths) -> None:
        self._paths = paths
        self._hashes: dict[str, str] = {}
        self._chains: dict[tuple[str, str], tuple[str, ...]] = {}

    def of(self, repo_id: str, files: ReleaseFiles, repo: Repository, arch: str) -> tuple[str, ...]:
        """The chain of ``repo_id``'s index for ``arch`` (the same files for each package)."""
        key = (repo_id, arch)
        if key not in self._chains:
            self._chains[key] = _index_chain(files, repo, arch, self._paths, self._hashes)
        return self._chains[key]


def _index_chain(
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
    prefix = lists_prefix(repo.uri, repo.suite) + (f"{repo.component}_" if repo.component else "")
    for p in sorted(Path(paths.lists).glob(f"{prefix}binary-{arch}_Packages*")):
        key = str(p)
        if key not in cache:
            cache[key] = file_sha256(p)
        chain.append(f"Packages:{cache[key]}")
        break
    return tuple(chain)


def _offers(
    pol: aptparse.PackagePolicy | None,
    by_key: dict[_SourceKey, SourceEntry],
    repos_all: dict[str, tuple[Repository, ReleaseFiles]],
) -> list[tuple[str, Repository]]:
    """(version, repository) for every configured source offering the package."""
    out: list[tuple[str, Repository]] = []
    for ver, srcs in pol.versions.items() if pol else ():
        for s in srcs:
            rid = _source_repository(s, by_key)
            if rid is not None:
                out.append((ver, repos_all[rid][0]))
    return out


class _ArchivedDebs:
    """The regular files in apt's archive cache, listed once per delta (not once per package)."""

    def __init__(self, archives: Path) -> None:
        self._dir = archives
        self._names: frozenset[str] | None = None

    def __contains__(self, name: str) -> bool:
        if self._names is None:
            try:
                with os.scandir(self._dir) as it:
                    # is_file() follows a symlink, as Path.is_file does.
                    self._names = frozenset(e.name for e in it if e.is_file())
            except OSError:
                self._names = frozenset()
        return name in self._names


def _rollback(
    name: str,
    version: str,
    arch: str,
    pol: aptparse.PackagePolicy | None,
    archived: _ArchivedDebs,
) -> RollbackRequirement:
    if _deb_cache_name(name, version, arch) in archived:
        return RollbackRequirement(name, version, "apt-cache")
    if pol is not None and pol.versions.get(version):
        return RollbackRequirement(name, version, "repository")
    return RollbackRequirement(name, version, "dpkg-repack")
