"""What a plan reads itself after ``go get``: ``h1:`` sums and retractions. Read-only, bounded.

``go get`` leaves each module it fetched in the plan's private module cache
(``cache/download/PATH/@v/VERSION.mod`` and ``.zip``). Instead of a ``go mod download
-json`` and a ``go list -m -json -retracted`` after it (two more go processes, together
more than half of the raw call a plan is measured against), the sums are computed here from
those files as Go's ``dirhash.Hash1`` does, and a module's retractions are read from the
``go.mod`` of its latest version as ``go list -retracted`` does. Whatever falls outside the
simple cases below returns None and the caller asks go (:mod:`aegis.ecosystems.go.resolve`):

- a file missing from the cache (go fetched no zip for a module none of whose packages it
  loaded): ``go mod download -json``;
- retractions of a module with any ``replace``, ``+incompatible`` or short versions in its
  list, an empty or unreadable list, or a latest ``go.mod`` not already verified by go while
  the checksum database is on (go checks a fetched ``go.mod`` against it; this reader could
  not): ``go list -m -json -retracted``.

Zips are read strictly: names must be UTF-8 under ``PATH@VERSION/``, unique, without
newlines; sizes are capped as Go's module zips are (500 MiB). Anything odd yields a sum that
cannot equal go.sum's, so the plan marks the module unverified (fail closed).
"""

from __future__ import annotations

import base64
import hashlib
import os
import re
import stat
import urllib.error
import urllib.parse
import zipfile
from pathlib import Path
from typing import Any

from aegis.ecosystems.go import modfile
from aegis.ecosystems.go.names import escape_path, is_pseudo
from aegis.ecosystems.http_source import OPENER
from aegis.errors import InputError
from aegis.safe_read import read_capped, read_upto

MAX_ZIP = 500 << 20
MAX_GOMOD = 16 << 20
MAX_LIST = 4 << 20
MAX_ENTRIES = 200_000
HTTP_TIMEOUT_S = 60.0
BAD = "h1:<unreadable>"
"""A sum no go.sum line holds: what an archive this reader refuses hashes to."""


def _read(path: str, cap: int) -> bytes | None:
    """A regular file, not followed if a link, at most ``cap`` bytes; None when not so."""
    try:
        data = read_capped(Path(path), cap, "module cache file", follow=False)
    except InputError:
        return None
    return data if len(data) <= cap else None


Identity = tuple[int, int, int, int]
"""A file's (device, inode, size, mtime in ns): what tells a file read from a replaced one."""


def identity(st: os.stat_result) -> Identity:
    """The :data:`Identity` of a stat result."""
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)


class Early:
    """Cache files read while go still ran (:mod:`aegis.ecosystems.go.prehash`), by path.

    What was read from a file counts only while the file at that path is still the very
    file read (same identity); otherwise the caller reads it again.
    """

    def __init__(self) -> None:
        self.files: dict[str, tuple[Identity, Any]] = {}
        self.lists: dict[str, bytes | None] = {}

    def get(self, path: str) -> Any:
        """What was read from ``path`` (None: nothing, or the file is no longer that file)."""
        got = self.files.get(path)
        if got is None:
            return None
        try:
            same = identity(os.stat(path, follow_symlinks=False)) == got[0]
        except OSError:
            return None
        return got[1] if same else None

    def read_mod(self, path: str) -> None:
        """Keep a go.mod of the cache with its identity (as :func:`_read` reads it)."""
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
        except OSError:
            return
        with os.fdopen(fd, "rb") as f:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode) or st.st_size > MAX_GOMOD:
                return
            data = read_upto(f, MAX_GOMOD + 1)
            if len(data) <= MAX_GOMOD and identity(os.fstat(fd)) == identity(st):
                self.files[path] = (identity(st), data)

    def read_zip(self, path: str) -> None:
        """Keep a zip's member digests with its identity (as :func:`zip_digests` reads them)."""
        got = zip_digests(path)
        if got is not None:
            self.files[path] = (got[0], _Digests(got[1]))


class _Digests:
    """A zip's member digests (a box: ``None`` inside means refused, not missing)."""

    def __init__(self, lines: list[tuple[str, str]] | None) -> None:
        self.lines = lines


def _read_mod(path: str, early: Early | None) -> bytes | None:
    got = early.get(path) if early is not None else None
    return got if isinstance(got, bytes) else _read(path, MAX_GOMOD)


def _h1(lines: list[tuple[str, str]]) -> str:
    summary = "".join(f"{digest}  {name}\n" for name, digest in sorted(lines))
    return "h1:" + base64.b64encode(hashlib.sha256(summary.encode()).digest()).decode()


def mod_sum(data: bytes) -> str:
    """The ``h1:`` sum of a ``go.mod`` (go.sum's ``/go.mod`` line)."""
    return _h1([("go.mod", hashlib.sha256(data).hexdigest())])


def _zip_name(info: zipfile.ZipInfo) -> str | None:
    name = info.orig_filename
    if not info.flag_bits & 0x800:  # no UTF-8 flag: zipfile decoded cp437; Go keeps the bytes
        try:
            name = name.encode("cp437").decode("utf-8")
        except UnicodeError:
            return None
    return name


Digests = tuple[Identity, list[tuple[str, str]] | None]
"""A zip's identity and each member's ``(name, SHA-256)`` (None: the zip is refused)."""


def zip_digests(path: str) -> Digests | None:
    """Each member's name and SHA-256 of a module zip, read strictly; None when absent."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        return None
    with os.fdopen(fd, "rb") as f:
        st = os.fstat(fd)
        ident = identity(st)
        if not stat.S_ISREG(st.st_mode) or st.st_size > MAX_ZIP:
            return ident, None
        try:
            with zipfile.ZipFile(f) as z:
                infos = z.infolist()
                if len(infos) > MAX_ENTRIES or sum(i.file_size for i in infos) > MAX_ZIP:
                    return ident, None
                lines: list[tuple[str, str]] = []
                for info in infos:
                    name = _zip_name(info)
                    if name is None or "\n" in name:
                        return ident, None
                    digest = hashlib.sha256()
                    with z.open(info) as member:
                        for block in iter(lambda m=member: m.read(1 << 20), b""):  # type: ignore[misc]
                            digest.update(block)
                    lines.append((name, digest.hexdigest()))
        except (zipfile.BadZipFile, OSError, ValueError, EOFError, NotImplementedError):
            return ident, None
        if identity(os.fstat(fd)) != ident:
            return ident, None  # written while read: never a sum
    return ident, lines


def digests_sum(lines: list[tuple[str, str]] | None, module: str, version: str) -> str:
    """The ``h1:`` sum of a zip's member digests; :data:`BAD` when refused or misnamed."""
    prefix = f"{module}@{version}/"
    if lines is None or any(not n.startswith(prefix) for n, _ in lines):
        return BAD
    if len({n for n, _ in lines}) != len(lines):
        return BAD
    return _h1(lines)


def zip_sum(path: str, module: str, version: str) -> str | None:
    """The ``h1:`` sum of a module zip in the cache (:data:`BAD` when refused); None if absent."""
    got = zip_digests(path)
    return None if got is None else digests_sum(got[1], module, version)


def cached(modcache: str, module: str, version: str, ext: str) -> str:
    """Where ``go`` keeps ``MODULE@VERSION.ext`` in the module cache."""
    return os.path.join(
        modcache, "cache", "download", escape_path(module), "@v", f"{escape_path(version)}.{ext}"
    )


def sums(
    modcache: str, module: str, version: str, early: Early | None = None
) -> tuple[str, str] | None:
    """``(zip sum, go.mod sum)`` from the cache; None when go left either file out.

    ``early``: files read while go ran, used only while each is still the file read.
    """
    mod = _read_mod(cached(modcache, module, version, "mod"), early)
    if mod is None:
        return None
    path = cached(modcache, module, version, "zip")
    box = early.get(path) if early is not None else None
    if isinstance(box, _Digests):
        lines = box.lines
    else:
        got = zip_digests(path)
        if got is None:
            return None
        lines = got[1]
    return digests_sum(lines, module, version), mod_sum(mod)


def proxy_get(proxy: str, rel: str, cap: int) -> bytes | None:
    """``proxy + rel`` (``file://`` or http(s)), bounded; None when missing or unreadable."""
    if proxy.startswith("file://"):  # go reads the URL's decoded path
        return _read(urllib.parse.unquote(proxy[len("file://") :]) + rel, cap)
    try:
        with OPENER.open(proxy + rel, timeout=HTTP_TIMEOUT_S) as resp:
            data: bytes = resp.read(cap + 1)
    except (OSError, ValueError):
        return None
    return data if len(data) <= cap else None


def _major_fits(module: str, version: str) -> bool:
    last = module.rsplit("/", 1)[-1]
    major = int(version[1:].split(".", 1)[0])
    if module.startswith("gopkg.in/"):
        return False  # gopkg.in's .vN suffixes: go's own rules
    if re.fullmatch(r"v[2-9][0-9]*", last) and "/" in module:
        return major == int(last[1:])
    return major <= 1


def version_list(proxy: str, module: str) -> bytes | None:
    """The proxy's ``@v/list`` of ``module`` (bounded); None when missing or unreadable."""
    return proxy_get(proxy, f"{escape_path(module)}/@v/list", MAX_LIST)


def _latest(listed: bytes | None) -> str | None:
    """The latest version of a ``@v/list`` as go picks it; None: go's own rules apply."""
    if listed is None:
        return None
    versions = []
    for line in listed.decode("utf-8", "replace").split("\n"):
        words = line.split()
        if words and modfile.is_valid(words[0]) and not is_pseudo(words[0]):
            if modfile.canonical(words[0]) != words[0] or "+" in words[0]:
                return None  # short forms, +incompatible: go's own rules
            versions.append(words[0])
    if not versions:
        return None  # go would ask @latest
    releases = [v for v in versions if "-" not in v]
    return max(releases or versions, key=modfile.sort_key)


def retracted(
    module: str, version: str, *, replaced: bool, proxy: str, modcache: str, sumdb_on: bool,
    early: Early | None = None,
) -> list[str] | None:  # fmt: skip
    """The rationales retracting ``module@version`` (``[]``: not retracted); None: ask go.

    As ``go list -m -retracted``: the go.mod of the latest version (the highest release,
    else the highest pre-release, retracted or not) lists the retracted intervals.
    ``early``: the proxy's version list and cache files when read already (while go ran).
    """
    if replaced:
        return None
    listed = early.lists.get(module) if early is not None else None
    latest = _latest(version_list(proxy, module) if listed is None else listed)
    if latest is None or not _major_fits(module, latest):
        return None  # go's Stat refuses it (or go's own rules): what go then does is go's
    data = _read_mod(cached(modcache, module, latest, "mod"), early)
    if data is None:
        if sumdb_on:
            return None
        data = proxy_get(proxy, f"{escape_path(module)}/@v/{escape_path(latest)}.mod", MAX_GOMOD)
    if data is None:
        return None
    try:
        mf = modfile.parse(data.decode("utf-8"), strict=False)
    except (UnicodeDecodeError, modfile.ModFileError):
        return None
    hits = [
        r for r in mf.retract
        if modfile.compare(r.low, version) <= 0 <= modfile.compare(r.high, version)
    ]  # fmt: skip
    if not hits:
        return []
    return [r.rationale for r in hits if r.rationale] or ["retracted by module author"]
