"""Copy the local .debs of apt's download set into Aegis's cache while planning runs.

With contents inspected, every package file is copied into this uid's cache before it
is scanned, and creating those files is most of the inspection's cost on a loaded disk
(one file per package; the kernel serialises the creations in one directory). The
download set (``apt-get --print-uris``) is known long before the provenance is (that
waits for the simulation, ``apt-cache policy`` and ``show``), so one thread copies the
local files as soon as it is, and the inspection of each package waits only for its
own file (:meth:`CacheWarmer.wait`), scanning the first packages while later ones
are still being copied.

This never decides anything: the cache is addressed by content
(:func:`aegis.analyze.evidence.download.store_local_by_content`), and the inspection
still reads every file and checks it against its signed provenance. A file that was
not copied is fetched by the inspection as before. Remote files are not touched here
(their fetch needs the provenance's hash).

Example::

    warmer = CacheWarmer(cfg.cache_dir, timeout_s=300)
    warmer.start(f_uris)                   # Future of apt-get --print-uris
    ...
    inspect_contents(..., wait_for=warmer.wait)
    warmer.join()
"""

from __future__ import annotations

import threading
from concurrent.futures import Future
from pathlib import Path

from aegis.analyze import apt as aptparse
from aegis.analyze.run import RunResult


class CacheWarmer:
    """Copies local download-set files into the cache; per-URI completion events."""

    def __init__(self, cache_dir: Path, timeout_s: float) -> None:
        self.cache_dir = cache_dir
        self.timeout_s = timeout_s
        self._ready = threading.Event()
        self._done: dict[str, threading.Event] = {}
        self._thread: threading.Thread | None = None
        self.stored = 0

    def start(self, f_uris: Future[RunResult]) -> None:
        """Run :meth:`run` on a thread of its own (joined by :meth:`join`)."""
        self._thread = threading.Thread(target=self.run, args=(f_uris,), name="aegis-cache-warm")
        self._thread.start()

    def join(self) -> None:
        """Wait for the copying thread, if started."""
        if self._thread is not None:
            self._thread.join()

    def run(self, f_uris: Future[RunResult]) -> int:
        """Copy every local file of the download set, in the set's order."""
        from aegis.analyze.evidence.download import (
            cache_path,
            private_dir,
            store_local_by_content,
        )
        from aegis.errors import AegisError

        files: list[tuple[str, int]] = []
        try:
            res = f_uris.result()
            if res.ok:
                files = [(d.uri, d.size) for d in aptparse.parse_print_uris(res.stdout)]
        finally:
            self._done = {uri: threading.Event() for uri, _ in files}
            self._ready.set()
        try:
            with private_dir(cache_path(self.cache_dir, "0" * 64).parent) as dir_fd:
                for uri, size in files:
                    try:
                        self.stored += store_local_by_content(uri, size, dir_fd)
                    finally:
                        self._done[uri].set()
        except AegisError:
            pass  # no usable cache: the inspection says so per package
        finally:
            for event in self._done.values():
                event.set()
        return self.stored

    def wait(self, uri: str) -> None:
        """Return once ``uri``'s file was copied (or skipped); at once for others.

        Never longer than the analysis timeout: the inspection then fetches the file
        itself, as it does for every file not copied here.
        """
        if not self._ready.wait(self.timeout_s):
            return
        event = self._done.get(uri)
        if event is not None:
            event.wait(self.timeout_s)
