"""One cargo source: a local registry directory or a sparse HTTP index. Read-only, bounded.

Both have the same shape: an index file per crate (one JSON line per version, at cargo's
prefix path ``1/a``, ``2/ab``, ``3/a/abc``, ``ab/cd/abcd``) and ``NAME-VERSION.crate``
files. A local registry keeps the crates next to ``index/``; a sparse index names its
download URL in ``config.json`` (``dl``; ``{crate}``/``{version}`` markers or the default
``/{crate}/{version}/download`` suffix). Everything read is untrusted: sizes are capped and
the JSON parsed strictly.
"""

from __future__ import annotations

import json
import os
import stat
import urllib.error
import urllib.parse
from dataclasses import dataclass
from typing import Any

from aegis.bounds import HEX64_RE as _HEX64
from aegis.ecosystems.cargo.crate import MAX_CRATE
from aegis.ecosystems.cargo.names import CRATE_RE, VERSION_RE, source_dir
from aegis.ecosystems.http_source import OPENER
from aegis.safe_read import read_fd_upto

MAX_INDEX_FILE = 8 * 1024 * 1024
HTTP_TIMEOUT_S = 60.0


class SourceError(OSError):
    """The source could not be read, or served something malformed."""


@dataclass(frozen=True)
class IndexEntry:
    """One version line of a crate's index file."""

    name: str
    version: str
    cksum: str
    yanked: bool
    links: str
    deps: int
    line: bytes
    """The line as served (aegisd writes it into its private local registry)."""


def index_path(name: str) -> str:
    """Cargo's index path of ``name`` (lower case)."""
    n = name.lower()
    short = {1: f"1/{n}", 2: f"2/{n}", 3: f"3/{n[:1]}/{n}"}
    return short.get(len(n), f"{n[:2]}/{n[2:4]}/{n}")


def _read_file(path: str, cap: int) -> bytes | None:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except FileNotFoundError:
        return None
    except OSError as e:
        raise SourceError(f"cannot read {path}: {e.strerror}") from e
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):  # a FIFO or device would block or lie
            raise SourceError(f"{path} is not a regular file")
        data = read_fd_upto(fd, cap + 1)
    finally:
        os.close(fd)
    if len(data) > cap:
        raise SourceError(f"{path} is larger than {cap} bytes")
    return data


def _http(url: str, cap: int) -> bytes | None:
    if not url.startswith(("http://", "https://")):
        raise SourceError("not an http(s) URL")
    try:
        with OPENER.open(url, timeout=HTTP_TIMEOUT_S) as resp:
            data: bytes = resp.read(cap + 1)
    except urllib.error.HTTPError as e:
        if e.code in (404, 410, 451):
            return None
        raise SourceError(f"{url}: HTTP {e.code}") from e
    except (OSError, ValueError) as e:
        raise SourceError(f"{url}: {e}") from e
    if len(data) > cap:
        raise SourceError(f"{url} is larger than {cap} bytes")
    return data


class Source:
    """Read index files and crates from the plan's registry URL."""

    def __init__(self, registry: str) -> None:
        """``registry``: ``file:///dir/`` (local registry) or ``http(s)://.../`` (sparse)."""
        self.registry = registry
        self.dir = source_dir(registry)
        self._dl: str | None = None

    def index_file(self, name: str) -> bytes | None:
        """The crate's index file; None when the source has no such crate."""
        if self.dir is not None:
            return _read_file(os.path.join(self.dir, "index", index_path(name)), MAX_INDEX_FILE)
        return _http(self.registry + index_path(name), MAX_INDEX_FILE)

    def _download_template(self) -> str:
        if self._dl is None:
            raw = _http(self.registry + "config.json", 64 * 1024)
            try:
                dl = json.loads(raw or b"")["dl"]
            except (ValueError, KeyError, TypeError) as e:
                raise SourceError("the index's config.json names no dl URL") from e
            if not isinstance(dl, str) or not dl.startswith(("http://", "https://")):
                raise SourceError("the index's dl is not an http(s) URL")
            self._dl = dl
        return self._dl

    def crate_url(self, name: str, version: str) -> str:
        """Where the ``.crate`` is read from (recorded in the plan)."""
        if self.dir is not None:
            return f"{self.registry}{name}-{version}.crate"
        dl = self._download_template()
        if "{" not in dl:
            return f"{dl.rstrip('/')}/{name}/{version}/download"
        q = urllib.parse.quote
        return (dl.replace("{crate}", q(name)).replace("{version}", q(version))
                .replace("{prefix}", index_path(name).rsplit("/", 1)[0])
                .replace("{lowerprefix}", index_path(name).rsplit("/", 1)[0]))  # fmt: skip

    def crate(self, name: str, version: str) -> bytes:
        """The ``.crate`` bytes (bounded)."""
        if self.dir is not None:
            data = _read_file(os.path.join(self.dir, f"{name}-{version}.crate"), MAX_CRATE)
        else:
            data = _http(self.crate_url(name, version), MAX_CRATE)
        if data is None:
            raise SourceError(f"{name}-{version}.crate is not in the registry")
        return data


def parse_index(data: bytes, name: str) -> list[IndexEntry]:
    """Every well-formed version line of ``name``'s index file.

    Raises:
        SourceError: a line that is not a JSON object of this crate with a sha256 cksum.
    """
    out: list[IndexEntry] = []
    for raw in data.splitlines()[:10000]:
        if not raw.strip():
            continue
        try:
            doc: Any = json.loads(raw)
        except ValueError as e:
            raise SourceError(f"index of {name}: a line is not JSON") from e
        if not isinstance(doc, dict):
            raise SourceError(f"index of {name}: a line is not an object")
        n, v, ck = doc.get("name"), doc.get("vers"), doc.get("cksum")
        if not (isinstance(n, str) and CRATE_RE.match(n) and n.lower() == name.lower()):
            raise SourceError(f"index of {name}: a line names another crate")
        if not (isinstance(v, str) and VERSION_RE.match(v)):
            raise SourceError(f"index of {name}: bad version {str(v)[:40]!r}")
        if not (isinstance(ck, str) and _HEX64.match(ck)):
            raise SourceError(f"index of {name} {v}: cksum is not a sha256")
        deps = doc.get("deps")
        links = doc.get("links")
        out.append(IndexEntry(n, v, ck, doc.get("yanked") is True,
                              links if isinstance(links, str) else "",
                              len(deps) if isinstance(deps, list) else 0, raw))  # fmt: skip
    return out


def semver_key(version: str) -> tuple[int, int, int, int, str]:
    """Order versions: release above its pre-releases (enough for picking the newest)."""
    core = version.split("+", 1)[0]
    main, _, pre = core.partition("-")
    a, b, c = (int(x) for x in main.split("."))
    return a, b, c, 0 if pre else 1, pre


def pick(entries: list[IndexEntry], version: str | None) -> IndexEntry | None:
    """The exact version asked for (even yanked: policy judges), or the newest release."""
    if version is not None:
        same = [e for e in entries if e.version == version]
        return same[0] if same else None
    releases = [e for e in entries if not e.yanked and "-" not in e.version.split("+")[0]]
    return max(releases, key=lambda e: semver_key(e.version)) if releases else None
