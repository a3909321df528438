"""Read and parse the local .debs of apt's download set while planning runs.

With contents inspected, every package file is read, hashed and parsed before it is
scanned; on a loaded machine that is most of the inspection's cost. The download set
(``apt-get --print-uris``) is known long before the provenance is (that waits for the
simulation, ``apt-cache policy`` and ``show``), so the local files are read and parsed
as soon as it is (by two threads when they are large enough for decompression to
dominate, else one), and the inspection of each package waits only for its own file
(:meth:`CacheWarmer.wait`).

This never decides anything. What was read is kept by the SHA-256 of its own bytes
(:func:`aegis.ecosystems.apt.evidence.download.read_local_by_content`); the inspection hands
those bytes to :func:`~aegis.ecosystems.apt.evidence.download.verified_bytes`, which uses them
only when their size and SHA-256, computed again, are the signed provenance's, and a
parse is used only for verified bytes with that SHA-256 (the parse is a pure function of
the bytes, with the default bounds). Bytes are kept up to :data:`KEEP_BYTES` in all and
given up once taken. A file not handled here is read and parsed by the inspection as
before. Remote files are not touched (their fetch needs the provenance's hash).

Example::

    warmer = CacheWarmer(timeout_s=300)
    warmer.start(f_uris)                   # Future of apt-get --print-uris
    ...
    inspect_contents(..., wait_for=warmer.wait, parsed=warmer.parsed, early=warmer.take)
    warmer.join()
"""

from __future__ import annotations

import contextlib
import io
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TYPE_CHECKING

from aegis.ecosystems.apt import parse as aptparse
from aegis.ecosystems.apt.evidence.debfile import read_deb_stream
from aegis.ecosystems.apt.evidence.download import read_local_by_content
from aegis.ecosystems.apt.run import RunResult

if TYPE_CHECKING:
    from aegis.ecosystems.apt.evidence.debfile import DebContents

KEEP_BYTES = 256 * 1024 * 1024
"""Most bytes kept for the inspection at once (beyond it, the inspection reads the file)."""
TWO_THREADS_FROM = 64 * 1024
"""Mean file size from which two threads read and parse (below it, one)."""


class CacheWarmer:
    """Reads and parses local download-set files; per-URI completion events."""

    def __init__(self, timeout_s: float) -> None:
        self.timeout_s = timeout_s
        self._ready = threading.Event()
        self._done: dict[str, threading.Event] = {}
        self._parsed: dict[str, DebContents] = {}
        self._bytes: dict[str, bytes] = {}
        self._kept = 0
        self._lock = threading.Lock()
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
        """Read and parse every local file of the download set, in the set's order."""
        files: list[tuple[str, int]] = []
        try:
            res = f_uris.result()
            if res.ok:
                files = [(d.uri, d.size) for d in aptparse.parse_print_uris(res.stdout)]
        finally:
            self._done = {uri: threading.Event() for uri, _ in files}
            self._ready.set()
        try:
            if sum(size for _, size in files) < TWO_THREADS_FROM * len(files):
                # Small files are mostly parsing, which holds the interpreter lock: a
                # second thread only made each file read wait for it.
                for uri, size in files:
                    self._one(uri, size)
            else:
                # Two threads: hashing, zlib/lzma/zstd and large file reads release the
                # lock, so one can parse while the other waits on them.
                with ThreadPoolExecutor(max_workers=2) as pool:
                    list(pool.map(lambda f: self._one(f[0], f[1]), files))
        finally:
            for event in self._done.values():
                event.set()

    def _one(self, uri: str, size: int) -> None:
        try:
            read = read_local_by_content(uri, size)
            if read is not None:
                sha, data = read
                with self._lock:
                    if self._kept + len(data) <= KEEP_BYTES:
                        self._bytes[sha] = data
                        self._kept += len(data)
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

    def take(self, sha256: str) -> bytes | None:
        """The bytes read here whose SHA-256 was ``sha256`` (given up: asked for once)."""
        with self._lock:
            data = self._bytes.pop(sha256, None)
            if data is not None:
                self._kept -= len(data)
        return data
