"""The built-in dpkg-state snapshot provider, and the filesystem snapshot hook.

Before a change that replaces or removes packages (and whenever policy requires
a snapshot), aegisd records under ``cfg.rollback_cache_dir/<snapshot_id>/``:

- ``manifest.json``: dpkg selections, every package's version and status, the
  replaced packages, changed conffiles, and the hook's outcome;
- the ``.deb`` of every package version being replaced, taken from apt's cache
  when it is there, else fetched with ``apt-get download`` when a configured
  repository still serves that version (apt checks it against the signed index; its
  own control fields must name the version), else rebuilt from the installed files
  with ``dpkg-repack --root`` (so a rollback works after the repository stopped
  serving the old version: security suites drop the version they replace);
- copies of conffiles the admin changed (their md5 differs from dpkg's record).

The filesystem hook is one configured argv (``snapshot_command`` in aegisd.toml,
``{snapshot_id}`` substituted), run only when policy requires a snapshot. What a
filesystem restore rewinds must exclude ``/var/lib/aegis`` and ``/var/log/aegis``
(the store, ledger and audit log): the hook receives them in
``AEGIS_SNAPSHOT_EXCLUDE`` (colon-separated).

``aegisctl rollback`` reads a manifest back with :func:`load_snapshot`.

Example:
    >>> snap = take_snapshot(cfg, "snap-ab12", changes, env=env, now="...", hook=())
    >>> [r.deb for r in snap.replaced]
    ['aegis-base_1.0_all.deb']
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from aegis.canonical import canonical_bytes, loads_strict
from aegis.codec import from_dict, to_dict
from aegis.config import Config
from aegis.ecosystems.apt import dpkg
from aegis.errors import EnvironmentFailure, InputError
from aegis.model import Action, PackageChange

SNAPSHOT_SCHEMA = "aegis.snapshot/1"
DPKG_REPACK = "/usr/bin/dpkg-repack"
APT_GET = "/usr/bin/apt-get"
DPKG_DEB = "/usr/bin/dpkg-deb"
_ID_RE = re.compile(r"\A[A-Za-z0-9][A-Za-z0-9._-]{0,127}\Z")
_REPLACING = {Action.UPGRADE, Action.DOWNGRADE, Action.REINSTALL, Action.REMOVE, Action.PURGE}


@dataclass(frozen=True)
class ReplacedPackage:
    """A package version the change replaces, kept for rollback."""

    name: str
    arch: str
    version: str
    deb: str | None
    """File name in the snapshot directory, or None when it could not be kept."""
    sha256: str | None
    obtained_from: str
    """apt-cache, repository, dpkg-repack or unavailable."""
    detail: str = ""
    size: int | None = None
    """Size in bytes of the kept .deb (manifests before it was recorded: None)."""


@dataclass(frozen=True)
class SavedConffile:
    """A conffile whose content differs from the packaged one, copied aside."""

    package: str
    path: str
    saved_as: str


@dataclass(frozen=True)
class HookOutcome:
    """What the filesystem snapshot hook did."""

    argv: tuple[str, ...]
    exit_status: int
    output_sha256: str


@dataclass(frozen=True)
class Snapshot:
    """A recorded dpkg-state snapshot (``manifest.json``)."""

    schema_version: str
    snapshot_id: str
    execution_id: str
    request_id: str | None
    created_at: str
    dpkg_root: str | None
    selections: str
    packages: dict[str, str]
    """``name:arch`` -> ``version status``."""
    replaced: tuple[ReplacedPackage, ...]
    conffiles: tuple[SavedConffile, ...]
    hook: HookOutcome | None = None
    excluded: tuple[str, ...] = ()


def snapshot_dir(cfg: Config, snapshot_id: str) -> Path:
    """Directory of a snapshot (refuses ids that are not plain tokens).

    Raises:
        InputError: the id is not a plain token.
    """
    if not _ID_RE.match(snapshot_id):
        raise InputError(f"not a snapshot id: {snapshot_id[:80]!r}")
    return cfg.rollback_cache_dir / snapshot_id


def needs_snapshot(changes: Sequence[PackageChange]) -> bool:
    """True when the delta replaces or removes an installed package."""
    return any(c.action in _REPLACING and c.current_version for c in changes)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(65536), b""):
            digest.update(block)
    return digest.hexdigest()


def _deb_name(name: str, version: str, arch: str) -> str:
    return f"{name}_{version.replace(':', '%3a')}_{arch}.deb"


def _keep_deb(
    cfg: Config, change: PackageChange, dest: Path, env: Mapping[str, str]
) -> ReplacedPackage:
    version = change.current_version or ""
    arch = change.arch
    base = cfg.dpkg_root if cfg.dpkg_root is not None else Path("/")
    cached = base / "var/cache/apt/archives" / _deb_name(change.name, version, arch)
    if cached.is_file():
        target = dest / cached.name
        shutil.copyfile(cached, target)
        return ReplacedPackage(
            change.name,
            arch,
            version,
            target.name,
            _sha256(target),
            "apt-cache",
            size=target.stat().st_size,
        )
    fetched = _from_repository(change, version, dest, env)
    if fetched is not None:
        return fetched
    argv = [DPKG_REPACK]
    if cfg.dpkg_root is not None:
        argv.append(f"--root={cfg.dpkg_root}")
    argv += ["--", change.name]
    try:
        proc = subprocess.run(
            argv, cwd=dest, env=dict(env), capture_output=True, text=True, timeout=600, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as e:
        return ReplacedPackage(change.name, arch, version, None, None, "unavailable", str(e))
    built = sorted(dest.glob(f"{change.name}_*.deb"))
    if proc.returncode != 0 or not built:
        return ReplacedPackage(
            change.name, arch, version, None, None, "unavailable", proc.stderr.strip()[-500:]
        )
    return ReplacedPackage(
        change.name,
        arch,
        version,
        built[-1].name,
        _sha256(built[-1]),
        "dpkg-repack",
        size=built[-1].stat().st_size,
    )


def _from_repository(
    change: PackageChange, version: str, dest: Path, env: Mapping[str, str]
) -> ReplacedPackage | None:
    """The replaced version as a configured repository serves it, or None.

    Much faster than dpkg-repack (one apt-get against a Perl script, tar and
    dpkg-deb per package) and as good a copy as apt's own cache: apt-get download
    refuses a file whose hash differs from the signed index's. Anything odd (no such
    version served, more than one file, control fields naming another package or
    version) falls back to dpkg-repack.
    """
    arch = change.arch
    spec = f"{change.name}={version}" if arch == "all" else f"{change.name}:{arch}={version}"
    before = set(dest.glob("*.deb"))
    try:
        proc = subprocess.run(
            [APT_GET, "-q", "download", "--", spec],
            cwd=dest,
            env=dict(env),
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    new = sorted(set(dest.glob("*.deb")) - before)
    deb = new[0] if proc.returncode == 0 and len(new) == 1 else None
    if deb is not None and not deb.is_symlink():
        shown = subprocess.run(
            [DPKG_DEB, "--show", "--showformat=${Package}\t${Version}\t${Architecture}", str(deb)],
            env=dict(env),
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        if shown.returncode == 0 and shown.stdout == f"{change.name}\t{version}\t{arch}":
            size = deb.stat().st_size
            return ReplacedPackage(
                change.name, arch, version, deb.name, _sha256(deb), "repository", size=size
            )
    for stray in new:
        stray.unlink(missing_ok=True)
    return None


def _conffiles(
    cfg: Config, names: Sequence[str], dest: Path, env: Mapping[str, str]
) -> list[SavedConffile]:
    if not names:
        return []
    argv = [dpkg.DPKG_QUERY]
    if cfg.dpkg_root is not None:
        argv.append(f"--root={cfg.dpkg_root}")
    argv += ["-W", "-f=${Package}\\n${Conffiles}\\n", "--", *names]
    proc = subprocess.run(
        argv, env=dict(env), capture_output=True, text=True, timeout=120, check=False
    )
    base = cfg.dpkg_root if cfg.dpkg_root is not None else Path("/")
    saved: list[SavedConffile] = []
    package = ""
    for line in proc.stdout.splitlines():
        if not line.startswith(" "):
            package = line.strip()
            continue
        match line.split():
            case [path, md5, *_] if path.startswith("/"):
                pass
            case _:  # not a "<path> <md5>" conffile line
                continue
        on_disk = base / path.lstrip("/")
        if not on_disk.is_file() or on_disk.is_symlink():
            continue
        if hashlib.md5(on_disk.read_bytes(), usedforsecurity=False).hexdigest() == md5:
            continue
        target = dest / "conffiles" / path.lstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(on_disk, target)
        saved.append(SavedConffile(package, path, str(target.relative_to(dest))))
    return saved


def _run_hook(
    hook: Sequence[str], snapshot_id: str, excluded: Sequence[str], env: Mapping[str, str]
) -> HookOutcome:
    argv = tuple(a.replace("{snapshot_id}", snapshot_id) for a in hook)
    child = {**env, "AEGIS_SNAPSHOT_ID": snapshot_id, "AEGIS_SNAPSHOT_EXCLUDE": ":".join(excluded)}
    try:
        proc = subprocess.run(list(argv), env=child, capture_output=True, timeout=1800, check=False)
    except (OSError, subprocess.TimeoutExpired) as e:
        raise EnvironmentFailure(f"snapshot hook {argv[0]} could not run: {e}") from e
    outcome = HookOutcome(
        argv, proc.returncode, hashlib.sha256(proc.stdout + proc.stderr).hexdigest()
    )
    if proc.returncode != 0:
        raise EnvironmentFailure(
            f"snapshot hook {argv[0]} exited {proc.returncode}: "
            f"{proc.stderr.decode('utf-8', 'replace').strip()[-500:]}"
        )
    return outcome


@dataclass(frozen=True)
class Gathered:
    """What :func:`gather_snapshot` kept: the snapshot before its hook and manifest."""

    snapshot_id: str
    dest: Path
    selections: str
    state: dpkg.PackageState
    replaced: tuple[ReplacedPackage, ...]
    conffiles: tuple[SavedConffile, ...]


def take_snapshot(
    cfg: Config,
    snapshot_id: str,
    changes: Sequence[PackageChange],
    *,
    execution_id: str,
    request_id: str | None,
    env: Mapping[str, str],
    now: str,
    hook: Sequence[str] = (),
    state: dpkg.PackageState | None = None,
) -> Snapshot:
    """Record the dpkg state and keep what a rollback needs; run the hook when given.

    ``state``: dpkg's status as the caller just read it under the same dpkg lock
    (aegisd's run), so it is not queried twice.

    Raises:
        EnvironmentFailure: dpkg cannot be queried, or the hook failed.
    """
    gathered = gather_snapshot(cfg, snapshot_id, changes, env=env, state=state)
    return finish_snapshot(
        cfg, gathered, execution_id=execution_id, request_id=request_id, env=env, now=now,
        hook=hook,
    )  # fmt: skip


def gather_snapshot(
    cfg: Config,
    snapshot_id: str,
    changes: Sequence[PackageChange],
    *,
    env: Mapping[str, str],
    state: dpkg.PackageState | None = None,
    selections: str | None = None,
) -> Gathered:
    """The read-only half of :func:`take_snapshot`: dpkg's state and the kept files.

    It changes nothing but the snapshot's own directory (which :func:`discard_snapshot`
    removes again), so aegisd runs it beside its re-derivation; the hook, which may
    act on the filesystem, runs only in :func:`finish_snapshot`. ``selections``: the
    output of ``dpkg --get-selections`` when the caller read it already.

    Raises:
        EnvironmentFailure: dpkg cannot be queried.
    """
    dest = snapshot_dir(cfg, snapshot_id)
    cfg.rollback_cache_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    if dest.exists():
        shutil.rmtree(dest)
    dest.mkdir(mode=0o700)
    if selections is None:
        selections = dpkg_selections(cfg, env)
    if state is None:
        state = dpkg.dpkg_status(cfg.dpkg_root, env)
    replaced = tuple(
        _keep_deb(cfg, c, dest, env)
        for c in changes
        if c.action in _REPLACING and c.current_version
    )
    conffiles = tuple(_conffiles(cfg, [r.name for r in replaced], dest, env))
    return Gathered(snapshot_id, dest, selections, state, replaced, conffiles)


def dpkg_selections(cfg: Config, env: Mapping[str, str]) -> str:
    """``dpkg --get-selections`` as the snapshot records it (empty when dpkg failed)."""
    argv = [dpkg.DPKG]
    if cfg.dpkg_root is not None:
        argv.append(f"--root={cfg.dpkg_root}")
    sel = subprocess.run(
        [*argv, "--get-selections"],
        env=dict(env),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    return sel.stdout


def discard_snapshot(gathered: Gathered) -> None:
    """Remove a gathered snapshot that will not be finished (its plan was refused)."""
    shutil.rmtree(gathered.dest, ignore_errors=True)


def finish_snapshot(
    cfg: Config,
    gathered: Gathered,
    *,
    execution_id: str,
    request_id: str | None,
    env: Mapping[str, str],
    now: str,
    hook: Sequence[str] = (),
) -> Snapshot:
    """Run the hook when given, then write the manifest of ``gathered`` (durably).

    Raises:
        EnvironmentFailure: the hook failed.
    """
    excluded = (str(cfg.state_dir), str(cfg.log_dir))
    snapshot_id = gathered.snapshot_id
    outcome = _run_hook(hook, snapshot_id, excluded, env) if hook else None
    snap = Snapshot(
        schema_version=SNAPSHOT_SCHEMA,
        snapshot_id=snapshot_id,
        execution_id=execution_id,
        request_id=request_id,
        created_at=now,
        dpkg_root=str(cfg.dpkg_root) if cfg.dpkg_root is not None else None,
        selections=gathered.selections,
        packages={k: f"{v} {s}" for k, (v, s) in sorted(gathered.state.items())},
        replaced=gathered.replaced,
        conffiles=gathered.conffiles,
        hook=outcome,
        excluded=excluded,
    )
    dest = gathered.dest
    tmp = dest / "manifest.json.tmp"
    with tmp.open("wb") as f:
        f.write(canonical_bytes(to_dict(snap)) + b"\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, dest / "manifest.json")
    return snap


def load_snapshot(cfg: Config, snapshot_id: str) -> Snapshot:
    """Read a snapshot manifest back strictly.

    Raises:
        InputError: unknown id or malformed manifest.
    """
    path = snapshot_dir(cfg, snapshot_id) / "manifest.json"
    try:
        raw = path.read_bytes()
    except FileNotFoundError as e:
        raise InputError(f"no snapshot {snapshot_id} in {cfg.rollback_cache_dir}") from e
    data = loads_strict(raw)
    if not isinstance(data, dict) or data.get("schema_version") != SNAPSHOT_SCHEMA:
        raise InputError(f"{path} is not an Aegis snapshot manifest")
    snap = from_dict(Snapshot, data)
    if snap.snapshot_id != snapshot_id:
        raise InputError(f"{path} names snapshot {snap.snapshot_id}, not {snapshot_id}")
    return snap


def replaced_debs(cfg: Config, snap: Snapshot) -> dict[str, Path]:
    """``name`` -> path of the kept .deb whose hash still matches the manifest."""
    out: dict[str, Path] = {}
    base = snapshot_dir(cfg, snap.snapshot_id)
    for r in snap.replaced:
        if r.deb is None or r.sha256 is None:
            continue
        p = base / r.deb
        if p.is_file() and _sha256(p) == r.sha256:
            out[r.name] = p
    return out
