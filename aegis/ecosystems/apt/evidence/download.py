"""Fetching a .deb into Aegis's private cache, kept by SHA-256, verified before use.

The signed index (InRelease -> Packages) gives each package's SHA-256 and size
(:class:`aegis.model.Provenance`). A file is used only after its bytes hash to
exactly that value and have exactly that size; the cache file is named by the
hash (``<cache_dir>/debs/uid-<uid>/<sha256>.deb``), so a cached file that no longer
hashes to its name is discarded and fetched again. Planning never writes apt's own
cache and never extracts the package.

The cache directory is shared with group ``aegis`` and aegisd (root) fetches too, so
each uid writes only into its own 0700 directory, through a descriptor, with
``O_EXCL | O_NOFOLLOW`` (a planted link is replaced, never written through), and
scanners read a private copy re-hashed as it is made (:func:`private_copy`).

- ``file:`` and ``copy:`` URIs (local repositories) are copied while hashing.
- Anything else is fetched by its URI with apt's own downloader,
  ``apt-helper download-file URI FILE SHA256:HEX``, through the planning runner
  (:func:`aegis.ecosystems.apt.run.run_tool`, with Aegis's ``APT_CONFIG``: apt's proxies and
  methods) in a fresh private temporary directory; apt checks the hash too, and we
  check it again. Never ``apt-get download pkg=version``: that names a version, and
  one version can exist as two builds (docs/apt-trust.md "One file from plan to
  install").

Public API: :func:`fetch_deb` (edge), :func:`private_copy` (what scanners read),
:func:`fetched_private` (both at once, one copy fewer when the cache misses),
:func:`verified_bytes` (the same in memory, for files up to :data:`IN_MEMORY_MAX`; a local
repository's file is read in place, not cached), :func:`read_local_by_content` (a local file
apt would fetch, read before its provenance exists),
:func:`copy_verified` and :func:`private_dir` (aegisd's copies, aegis/execute/fetch.py),
:func:`cache_path` (pure), :func:`sha256_file`, :class:`DebDownloadError`.

Example:
    >>> cache_path(Path("/var/cache/aegis"), "ab" * 32).name  # doctest: +ELLIPSIS
    'abab...abab.deb'
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import secrets
import shutil
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO
from urllib.parse import unquote, urlsplit

from aegis.bounds import HEX64_RE as _SHA256
from aegis.ecosystems.apt.run import run_tool
from aegis.errors import EnvironmentFailure, InputError, TrustError
from aegis.model import Provenance
from aegis.safe_read import open_regular

MAX_DEB_BYTES = 4 * 1024 * 1024 * 1024
"""Largest .deb Aegis will fetch for inspection."""

_NAME = re.compile(r"^[a-z0-9][a-z0-9+.-]+\Z")
_VERSION = re.compile(r"^[A-Za-z0-9.+~:-]+\Z")
_ARCH = re.compile(r"^[a-z0-9-]+\Z")
# A URI apt printed: a scheme, then no whitespace or control characters (it becomes one
# argv element of apt-helper, so it must never look like an option).
_URI = re.compile(r"^[a-z][a-z0-9+.-]*:[^\x00-\x20\x7f]+\Z")
_CHUNK = 1 << 20


class DebDownloadError(EnvironmentFailure):
    """The package file could not be obtained."""


class DebHashMismatchError(TrustError):
    """The obtained file does not match the signed index (size or SHA-256)."""


def cache_path(cache_dir: Path, sha256: str, uid: int | None = None) -> Path:
    """Where the .deb with ``sha256`` lives in this uid's part of Aegis's cache. Pure."""
    return cache_dir / "debs" / f"uid-{os.geteuid() if uid is None else uid}" / f"{sha256}.deb"


@contextlib.contextmanager
def private_dir(path: Path) -> Iterator[int]:
    """A descriptor of ``path``: a directory of ours, mode 0700, created when missing.

    The cache is shared with group ``aegis``; root fetching into a directory a member
    controls could be made to write through a planted link. Every write below goes
    through this descriptor (``dir_fd``) with ``O_EXCL | O_NOFOLLOW``, so renaming the
    directory or planting links cannot redirect it.

    Raises:
        DebDownloadError: it cannot be created, or is not ours and private.
    """
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(FileExistsError):
            path.mkdir(mode=0o700)
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError as e:
        raise DebDownloadError(f"cannot use the package cache {path}: {e.strerror}") from e
    try:
        st = os.fstat(fd)
        if st.st_uid != os.geteuid() or st.st_mode & 0o077:
            raise DebDownloadError(
                f"the package cache {path} is not private to this user (owner {st.st_uid}, "
                f"mode {stat.S_IMODE(st.st_mode):o})",
                hint="move it aside; Aegis recreates it with mode 0700",
            )
        yield fd
    finally:
        os.close(fd)


def _store_in_cache(source: Path, dir_fd: int, name: str) -> None:
    """Copy the verified private ``source`` to ``name`` in the cache, atomically."""
    tmp = f".{name}.{secrets.token_hex(8)}.tmp"
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    try:
        out = os.open(tmp, flags, 0o644, dir_fd=dir_fd)
        with source.open("rb") as src, os.fdopen(out, "wb") as dst:
            shutil.copyfileobj(src, dst, _CHUNK)
        os.replace(tmp, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
    except OSError as e:
        with contextlib.suppress(OSError):
            os.unlink(tmp, dir_fd=dir_fd)
        raise DebDownloadError(f"cannot store {name} in the package cache: {e.strerror}") from e


def copy_verified(source: Path, prov: Provenance, dir_fd: int, name: str) -> None:
    """Copy ``source`` to ``name`` in the directory ``dir_fd``, hashing while copying.

    The file appears under ``name`` (atomically, replacing any old one) only when its
    bytes are exactly ``prov``'s size and SHA-256; written with ``O_EXCL | O_NOFOLLOW``.

    Raises:
        DebHashMismatchError: the bytes are not ``prov``'s file.
        DebDownloadError: ``source`` cannot be read or the copy cannot be written.
    """
    tmp = f".{name}.{secrets.token_hex(8)}.tmp"
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    digest = hashlib.sha256()
    size = 0
    try:
        out = os.open(tmp, flags, 0o644, dir_fd=dir_fd)
        with _open_regular(source) as src, os.fdopen(out, "wb") as dst:
            while chunk := src.read(_CHUNK):
                size += len(chunk)
                if size > prov.size:
                    break
                digest.update(chunk)
                dst.write(chunk)
        if size != prov.size or digest.hexdigest() != prov.sha256:
            raise DebHashMismatchError(
                f"{prov.package} {prov.version}: {source} is not the planned file "
                f"(size {size} vs {prov.size}, or another SHA-256)"
            )
        os.replace(tmp, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
    except OSError as e:
        raise DebDownloadError(f"cannot copy {source} to {name}: {e.strerror}") from e
    finally:
        with contextlib.suppress(OSError):
            os.unlink(tmp, dir_fd=dir_fd)


def _open_regular(path: Path) -> BinaryIO:
    """Open a file someone else may have planted: never wait on a FIFO, only regular files.

    Raises:
        DebDownloadError: unreadable, or not a regular file.
    """
    try:
        return open_regular(path, "package file")
    except InputError as e:
        raise DebDownloadError(e.message) from e


def sha256_file(path: Path, limit: int = MAX_DEB_BYTES) -> tuple[str, int]:
    """SHA-256 hex and size of ``path``, reading at most ``limit + 1`` bytes."""
    digest = hashlib.sha256()
    size = 0
    with _open_regular(path) as fh:
        while chunk := fh.read(_CHUNK):
            digest.update(chunk)
            size += len(chunk)
            if size > limit:
                break
    return digest.hexdigest(), size


def _check_provenance(prov: Provenance) -> None:
    if not _SHA256.match(prov.sha256):
        raise InputError(f"{prov.package}: index SHA-256 {prov.sha256!r} is not 64 hex digits")
    if not 0 < prov.size <= MAX_DEB_BYTES:
        raise InputError(f"{prov.package}: index size {prov.size} is out of range")
    if not (_NAME.match(prov.package) and _VERSION.match(prov.version) and _ARCH.match(prov.arch)):
        raise InputError(f"refusing to fetch malformed package {prov.package!r} {prov.version!r}")
    if not _URI.match(prov.uri):
        raise InputError(f"{prov.package}: refusing to fetch from malformed URI {prov.uri[:200]!r}")


def _matches(path: Path, prov: Provenance) -> bool:
    sha, size = sha256_file(path, prov.size)
    return size == prov.size and sha == prov.sha256


def _copy_local(source: Path, dest: Path, prov: Provenance) -> None:
    digest = hashlib.sha256()
    size = 0
    try:
        with _open_regular(source) as src, dest.open("wb") as out:
            while chunk := src.read(_CHUNK):
                size += len(chunk)
                if size > prov.size:
                    break
                digest.update(chunk)
                out.write(chunk)
    except OSError as e:
        raise DebDownloadError(f"cannot copy {source}: {e.strerror}") from e
    if size != prov.size or digest.hexdigest() != prov.sha256:
        raise DebHashMismatchError(
            f"{prov.package} {prov.version}: {source} does not match the signed index "
            f"(size {size} vs {prov.size})"
        )


@contextlib.contextmanager
def private_copy(deb: Path, prov: Provenance, work_dir: Path | None = None) -> Iterator[Path]:
    """A copy of the cached ``deb`` in a fresh directory of our own, hashed while copied.

    With ``work_dir`` (a private directory of the caller's, mode 0700), the copy is a new
    file there instead.

    The cache is shared with group ``aegis``, so the file :func:`fetch_deb` verified could
    be swapped before a scanner opens it by name (hiding a hostile script from aegisd's
    re-derivation). What is scanned is this private copy, and its bytes are the ones
    that matched the signed index.

    Raises:
        DebHashMismatchError: the cached file no longer matches the index.
        DebDownloadError: it cannot be read, or is not a regular file.
    """
    if work_dir is not None:  # a new name in the caller's private directory
        copy = work_dir / f"{prov.sha256}.{secrets.token_hex(8)}.deb"
        try:
            _copy_local(deb, copy, prov)
            yield copy
        finally:
            copy.unlink(missing_ok=True)
        return
    work = Path(tempfile.mkdtemp(prefix="aegis-deb-"))
    try:
        copy = work / f"{prov.sha256}.deb"
        _copy_local(deb, copy, prov)
        yield copy
    finally:
        shutil.rmtree(work, ignore_errors=True)


APT_HELPER = "/usr/lib/apt/apt-helper"


def _apt_download(work: Path, prov: Provenance, apt_config: Path | None, timeout_s: float) -> Path:

    dest = work / "pkg.deb"
    result = run_tool(
        [APT_HELPER, "download-file", prov.uri, str(dest), f"SHA256:{prov.sha256}"],
        apt_config=apt_config,
        timeout_s=timeout_s,
        cwd=work,
    )
    if not result.ok:
        what = "timed out" if result.timed_out else f"exited {result.returncode}"
        output = (result.stdout + result.stderr).strip()[-1000:]
        if "Hash Sum mismatch" in output:
            raise DebHashMismatchError(
                f"{prov.package} {prov.version}: {prov.uri} does not match the signed index"
            )
        raise DebDownloadError(f"apt-helper download-file {prov.uri} {what}: {output}")
    return dest


def fetch_deb(
    prov: Provenance,
    *,
    cache_dir: Path,
    apt_config: Path | None,
    timeout_s: float = 300,
    via_apt: bool = False,
    work_dir: Path | None = None,
) -> Path:
    """Return the verified .deb for ``prov`` in Aegis's cache, fetching it when needed.

    Args:
        prov: the package's provenance from the signed index (SHA-256, size, URI).
        cache_dir: Aegis's private cache (``cfg.cache_dir``); files go to ``debs/``.
        apt_config: ``APT_CONFIG`` for ``apt-get download``.
        timeout_s: limit for the download.
        via_apt: use apt's downloader even for ``file:``/``copy:`` URIs.
        work_dir: a private directory (mode 0700) of the caller's for the fetch's
            temporary files; None: the system's temp dir.

    Raises:
        InputError: the provenance is malformed (no usable hash or name).
        DebHashMismatchError: the obtained bytes differ from the signed index (exit 4).
        DebDownloadError: the file could not be obtained (exit 7).
    """
    _check_provenance(prov)
    target = cache_path(cache_dir, prov.sha256)
    with private_dir(target.parent) as dir_fd:
        if _cached(target, prov, dir_fd):
            return target
        fetched = _fetch_private(prov, apt_config, timeout_s, via_apt, work_dir)
        try:
            _store_in_cache(fetched, dir_fd, target.name)
        finally:
            _discard(fetched, work_dir)
    return target


@contextlib.contextmanager
def fetched_private(
    prov: Provenance,
    *,
    cache_dir: Path,
    apt_config: Path | None,
    work_dir: Path,
    timeout_s: float = 300,
    cache_fd: int | None = None,
) -> Iterator[Path]:
    """A private copy of the verified .deb for ``prov`` in ``work_dir``, cached on the way.

    What :func:`fetch_deb` then :func:`private_copy` give, with one copy and one hash
    fewer when the cache misses: the file just fetched into the caller's private
    directory (mode 0700) was verified while it was made and never was in the shared
    cache, so it is scanned as it is; the cache gets a copy of it. ``cache_fd``: the
    caller's descriptor of this uid's cache directory from :func:`private_dir` (one open
    for a whole plan instead of one per package).

    Raises:
        the errors of :func:`fetch_deb` and :func:`private_copy`.
    """
    _check_provenance(prov)
    target = cache_path(cache_dir, prov.sha256)
    fetched: Path | None = None
    opened = (
        contextlib.nullcontext(cache_fd) if cache_fd is not None else private_dir(target.parent)
    )
    with opened as dir_fd:
        if not _cached(target, prov, dir_fd):
            fetched = _fetch_private(prov, apt_config, timeout_s, False, work_dir)
            try:
                _store_in_cache(fetched, dir_fd, target.name)
            except BaseException:
                _discard(fetched, work_dir)
                raise
    if fetched is None:
        with private_copy(target, prov, work_dir) as own:
            yield own
        return
    try:
        yield fetched
    finally:
        _discard(fetched, work_dir)


IN_MEMORY_MAX = 32 * 1024 * 1024
"""Largest .deb :func:`verified_bytes` keeps in memory (larger ones go through files)."""


def _read_verified(source: Path, prov: Provenance) -> bytes:
    """The bytes of ``source``, read once and hashed while read: exactly ``prov``'s file.

    Raises:
        DebHashMismatchError: size or SHA-256 differ from ``prov``.
        DebDownloadError: unreadable, or not a regular file.
    """
    try:
        with _open_regular(source) as src:
            data = src.read(prov.size + 1)
    except OSError as e:
        raise DebDownloadError(f"cannot read {source}: {e.strerror}") from e
    if len(data) != prov.size or hashlib.sha256(data).hexdigest() != prov.sha256:
        raise DebHashMismatchError(
            f"{prov.package} {prov.version}: {source} does not match the signed index "
            f"(size {len(data)} vs {prov.size}, or another SHA-256)"
        )
    return data


def _store_bytes(data: bytes, dir_fd: int, name: str) -> None:
    """Write verified ``data`` to ``name`` in the cache, atomically (O_EXCL | O_NOFOLLOW)."""
    tmp = f".{name}.{secrets.token_hex(8)}.tmp"
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    try:
        with os.fdopen(os.open(tmp, flags, 0o644, dir_fd=dir_fd), "wb") as dst:
            dst.write(data)
        os.replace(tmp, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
    except OSError as e:
        with contextlib.suppress(OSError):
            os.unlink(tmp, dir_fd=dir_fd)
        raise DebDownloadError(f"cannot store {name} in the package cache: {e.strerror}") from e


def verified_bytes(
    prov: Provenance,
    *,
    cache_dir: Path,
    apt_config: Path | None,
    work_dir: Path | None = None,
    timeout_s: float = 300,
    cache_fd: int | None = None,
    early: bytes | None = None,
) -> bytes:
    """The verified .deb for ``prov`` as bytes in memory; a remote file is cached on the way.

    What :func:`fetched_private` gives, for a file of at most :data:`IN_MEMORY_MAX`
    bytes, without a private copy on disk: the bytes are read once, hashed as read,
    and are what the scanners see (no one can swap memory). A local repository's file
    (``file:``, ``copy:``) is read where it is and not copied into the cache: reading
    the copy later would cost what reading the source does, and creating it was most of
    the inspection's cost (one file per package). A remote file is stored in the cache
    (the only file created). A cache entry that does not match is removed and the file
    fetched again, as in :func:`_cached`.

    ``early``: bytes read before the provenance existed (:mod:`aegis.ecosystems.apt.cache_warm`),
    used only when their size and SHA-256, computed here, are ``prov``'s. ``work_dir``: a
    private directory (mode 0700) of the caller's for a remote fetch; None: a fresh one
    in the system's temp dir.

    Raises:
        InputError: malformed provenance, or a file over :data:`IN_MEMORY_MAX`.
        the errors of :func:`fetch_deb`.
    """
    _check_provenance(prov)
    if prov.size > IN_MEMORY_MAX:
        raise InputError(f"{prov.package}: {prov.size} bytes is too large to read into memory")
    if (
        early is not None
        and len(early) == prov.size
        and hashlib.sha256(early).hexdigest() == prov.sha256
    ):
        return early
    target = cache_path(cache_dir, prov.sha256)
    opened = (
        contextlib.nullcontext(cache_fd) if cache_fd is not None else private_dir(target.parent)
    )
    with opened as dir_fd:
        if target.exists() or target.is_symlink():
            with contextlib.suppress(DebDownloadError, DebHashMismatchError):
                return _read_verified(target, prov)
            with contextlib.suppress(FileNotFoundError):
                os.unlink(target.name, dir_fd=dir_fd)  # never used, fetched again
        parts = urlsplit(prov.uri)
        if parts.scheme in ("file", "copy"):
            return _read_verified(Path(unquote(parts.path)), prov)
        # apt checks the hash as it fetches; the one read here checks it again
        work = Path(tempfile.mkdtemp(prefix="aegis-fetch-", dir=work_dir))
        try:
            data = _read_verified(_apt_download(work, prov, apt_config, timeout_s), prov)
        finally:
            shutil.rmtree(work, ignore_errors=True)
        _store_bytes(data, dir_fd, target.name)
    return data


def read_local_by_content(uri: str, size: int) -> tuple[str, bytes] | None:
    """Read the local (``file:``/``copy:``) file at ``uri`` early: its SHA-256 and bytes.

    For :mod:`aegis.ecosystems.apt.cache_warm`: ``uri`` and ``size`` come from apt's download
    set, read before the plan's provenance exists. Nothing is trusted here: the bytes
    are named by the SHA-256 of what was read, and :func:`verified_bytes` uses them only
    for a provenance with that size and SHA-256 (hashing them again). Returns None when
    nothing was read (not local, too large, unreadable, another size).
    """
    parts = urlsplit(uri)
    if parts.scheme not in ("file", "copy") or not 0 < size <= IN_MEMORY_MAX:
        return None
    try:
        with _open_regular(Path(unquote(parts.path))) as src:
            data = src.read(size + 1)
    except (OSError, DebDownloadError):
        return None
    if len(data) != size:
        return None
    return hashlib.sha256(data).hexdigest(), data


def _cached(target: Path, prov: Provenance, dir_fd: int) -> bool:
    """True when the cache holds ``prov``'s bytes; a wrong entry is removed."""
    if not (target.exists() or target.is_symlink()):
        return False
    try:
        if _matches(target, prov):
            return True
    except DebDownloadError:
        pass  # not a regular file: discarded like any tampered entry
    with contextlib.suppress(FileNotFoundError):
        os.unlink(target.name, dir_fd=dir_fd)  # never used, fetched again
    return False


def _discard(fetched: Path, work_dir: Path | None) -> None:
    """Remove what :func:`_fetch_private` made: the file, or its own directory."""
    if fetched.parent == work_dir:
        fetched.unlink(missing_ok=True)
    else:
        shutil.rmtree(fetched.parent, ignore_errors=True)


def _fetch_private(
    prov: Provenance,
    apt_config: Path | None,
    timeout_s: float,
    via_apt: bool,
    work_dir: Path | None = None,
) -> Path:
    """Fetch and verify the .deb in a fresh private place; the caller removes it.

    A local file is copied to a new name in ``work_dir`` (a private directory of the
    caller's) when given; otherwise, and for apt downloads, into a fresh private
    directory (under ``work_dir``, or the system's temp dir) that is the file's parent.
    """
    parts = urlsplit(prov.uri)
    local = parts.scheme in ("file", "copy") and not via_apt
    if local and work_dir is not None:
        # A file, not a directory per package: removing hundreds of directories cost
        # more than copying and scanning the packages.
        fetched = work_dir / f"fetch-{secrets.token_hex(8)}.deb"
        try:
            _copy_local(Path(unquote(parts.path)), fetched, prov)
        except BaseException:
            fetched.unlink(missing_ok=True)
            raise
        return fetched
    work = Path(tempfile.mkdtemp(prefix="aegis-fetch-", dir=work_dir))
    try:
        if local:
            fetched = work / "pkg.deb"
            _copy_local(Path(unquote(parts.path)), fetched, prov)
        else:
            fetched = _apt_download(work, prov, apt_config, timeout_s)
            if not _matches(fetched, prov):
                raise DebHashMismatchError(
                    f"{prov.package} {prov.version}: downloaded file does not match the "
                    "signed index"
                )
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    return fetched
