"""Artifacts a re-derivation will read, downloaded while its tool resolves.

aegisd plans the signed intent again before anything runs (docs/ecosystems.md "The seam"),
and the signed plan names the exact artifacts that resolution should give again. While
the tool resolves, an :mod:`aegis.ecosystems.idle` job downloads those URLs (four at a
time, each and all of them bounded); the planner then takes the bytes of each URL its own
resolution names from here instead of downloading them after the tool. Nothing here is
trusted: the planner checks these bytes exactly as a fresh download (npm: the lockfile's
SHA-512 integrity; pip: the SHA-256 pip reported), and a URL the resolution does not name
is never read.

Example:
    idle.queue(lambda: prefetch.fetch_ahead(urls))   # aegisd, before planning again
    ...
    ahead = prefetch.take()                          # the planner, after its tool
    data = ahead.get(url) or prefetch.get(url)
"""

from __future__ import annotations

import threading
import urllib.request
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor

MAX_ARTIFACT = 256 * 1024 * 1024
MAX_AHEAD = 64
"""At most this many artifacts are fetched ahead (the rest after the tool, as without)."""
MAX_AHEAD_BYTES = 256 * 1024 * 1024
"""At most this many bytes are held until the planner takes them (the rest: as without)."""
TIMEOUT_S = 60.0

_local = threading.local()


def get(url: str, timeout_s: float = TIMEOUT_S) -> bytes:
    """GET ``url`` (http or https only), at most :data:`MAX_ARTIFACT` bytes.

    Raises:
        OSError: unreachable, too large, or not http(s).
    """
    if not url.startswith(("http://", "https://")):
        raise OSError(f"not an http(s) URL: {url[:80]}")
    with urllib.request.urlopen(url, timeout=timeout_s) as resp:  # noqa: S310 - scheme checked
        data: bytes = resp.read(MAX_ARTIFACT + 1)
    if len(data) > MAX_ARTIFACT:
        raise OSError("artifact larger than the cap")
    return data


class _Budget:
    """The bytes held so far across the pool's threads, against :data:`MAX_AHEAD_BYTES`."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.held = 0

    def get(self, url: str) -> bytes | None:
        """The bytes of ``url`` when they fit the budget; None otherwise or on failure."""
        with self.lock:
            if self.held >= MAX_AHEAD_BYTES:
                return None
        try:
            data = get(url)
        except (OSError, ValueError):
            return None  # downloaded again (and the failure reported) where it is needed
        with self.lock:
            if self.held + len(data) > MAX_AHEAD_BYTES:
                return None
            self.held += len(data)
        return data


def fetch_ahead(urls: Iterable[str]) -> None:
    """Download ``urls`` for this thread's next :func:`take` (failures are left out)."""
    wanted = sorted({u for u in urls if u.startswith(("http://", "https://"))})[:MAX_AHEAD]
    budget = _Budget()
    with ThreadPoolExecutor(max_workers=4) as pool:
        got = dict(zip(wanted, pool.map(budget.get, wanted), strict=True))
    _local.ahead = {u: data for u, data in got.items() if data is not None}


def take() -> dict[str, bytes]:
    """URL -> bytes fetched ahead in this thread, handed over once ({} when none)."""
    ahead: dict[str, bytes] = getattr(_local, "ahead", None) or {}
    _local.ahead = {}
    return ahead


def clear() -> None:
    """Drop what was fetched ahead and not taken (the planner failed or did not look)."""
    _local.ahead = {}
