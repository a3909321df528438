"""Copy and read the local .debs of apt's download set while planning runs.

With contents inspected, every package file is copied into this uid's cache and
parsed before it is scanned; creating those files is most of the inspection's cost on
a loaded disk (one per package; the kernel serialises creations in one directory), and
parsing them most of the rest. The download set (``apt-get --print-uris``) is known
long before the provenance is (that waits for the simulation, ``apt-cache policy`` and
``show``), so two threads copy and parse the local files as soon as it is, and the
inspection of each package waits only for its own file (:meth:`CacheWarmer.wait`).

This never decides anything. The cache is addressed by content
(:func:`aegis.ecosystems.apt.evidence.download.store_local_by_content`), and the inspection
still reads every file and checks it against its signed provenance; a parse is kept
by the SHA-256 of the bytes parsed and used only for a file whose verified bytes have
that SHA-256 (the parse is a pure function of the bytes, with the default bounds).
A file not handled here is fetched and parsed by the inspection as before. Remote
files are not touched (their fetch needs the provenance's hash).

Example::

    warmer = CacheWarmer(cfg.cache_dir, timeout_s=300)
    warmer.start(f_uris)                   # Future of apt-get --print-uris
    ...
    inspect_contents(..., wait_for=warmer.wait, parsed=warmer.parsed)
    warmer.join()
"""

from __future__ import annotations

import contextlib
import io
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING

from aegis.ecosystems.apt import parse as aptparse
from aegis.ecosystems.apt.evidence.debfile import read_deb_stream
from aegis.ecosystems.apt.evidence.download import cache_path, private_dir, store_local_by_content
from aegis.ecosystems.apt.run import RunResult
from aegis.errors import AegisError

if TYPE_CHECKING:
    from aegis.ecosystems.apt.evidence.debfile import DebContents


class CacheWarmer:
    """Copies and parses local download-set files; per-URI completion events."""

    def __init__(self, cache_dir: Path, timeout_s: float) -> None:
        self.cache_dir = cache_dir
        self.timeout_s = timeout_s
        self._ready = threading.Event()
        self._done: dict[str, threading.Event] = {}
        self._parsed: dict[str, DebContents] = {}
        self._thread: threading.Thread | None = None

    def start(self, f_uris: Future[RunResult]) -> None:
        """Run :meth:`run` on a thread of its own (joined by :meth:`join`)."""
        self._thread = threading.Thread(target=self.run, args=(f_uris,), name="aegis-cache-warm")
        self._thread.start()

    def join(self) -> None:
        """Wait for the copying threads, if started."""
        if self._thread is not None:
            self._thread.join()

    def run(self, f_uris: Future[RunResult]) -> None:
        """Copy and parse every local file of the download set, in the set's order."""
        files: list[tuple[str, int]] = []
        try:
            res = f_uris.result()
            if res.ok:
                files = [(d.uri, d.size) for d in aptparse.parse_print_uris(res.stdout)]
        finally:
            self._done = {uri: threading.Event() for uri, _ in files}
            self._ready.set()
        try:
            with (
                private_dir(cache_path(self.cache_dir, "0" * 64).parent) as dir_fd,
                ThreadPoolExecutor(max_workers=2) as pool,
            ):
                # Two threads: one can parse (holding the GIL) while the other waits
                # on the kernel creating a cache file.
                list(pool.map(lambda f: self._one(f[0], f[1], dir_fd), files))
        except AegisError:
            pass  # no usable cache: the inspection says so per package
        finally:
            for event in self._done.values():
                event.set()

    def _one(self, uri: str, size: int, dir_fd: int) -> None:
        try:
            read = store_local_by_content(uri, size, dir_fd)
            if read is not None:
                sha, data = read
                # A file that cannot be parsed is parsed again by the inspection, which
                # reports it (content.malformed).
                with contextlib.suppress(Exception):
                    self._parsed[sha] = read_deb_stream(io.BytesIO(data))
        finally:
            self._done[uri].set()

    def wait(self, uri: str) -> None:
        """Return once ``uri``'s file was handled (or skipped); at once for others.

        Never longer than the analysis timeout: the inspection then fetches the file
        itself, as it does for every file not handled here.
        """
        if not self._ready.wait(self.timeout_s):
            return
        event = self._done.get(uri)
        if event is not None:
            event.wait(self.timeout_s)

    def parsed(self, sha256: str) -> DebContents | None:
        """The parse of the file with ``sha256``, if it was parsed here."""
        return self._parsed.get(sha256)
