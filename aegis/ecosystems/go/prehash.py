"""Reading what a plan needs while ``go get`` still runs: module zips and version lists.

``go get`` prints ``go: downloading MODULE VERSION`` as it starts fetching a module's zip.
From that line on, a thread of the plan's own waits for the zip to appear in the scratch
module cache (go writes each cache file under a temporary name and renames it into place,
so a zip under its final name is whole), hashes its members, and reads the module's
``@v/list`` from the proxy (for retractions). All of it would otherwise be done one after
the other once go has exited.

Nothing here decides anything. The results are only used by
:func:`aegis.ecosystems.go.modcache.sums` and ``retracted`` for the modules the new go.mod
changed, a zip's digests only while the file at that path is still the one hashed (device,
inode, size, mtime); whatever is missing is read there as before.
"""

from __future__ import annotations

import os
import queue
import re
import threading

from aegis.ecosystems.go import modcache
from aegis.ecosystems.go.names import PATH_RE

_DOWNLOADING = re.compile(r"go: downloading (\S{1,500}) (v[0-9A-Za-z.+-]{1,100})")
_POLL_S = 0.0005


class Prehash:
    """One plan's reader thread; :meth:`line` feeds it go's stderr, :meth:`finish` ends it."""

    def __init__(self, modcache_dir: str, proxy: str) -> None:
        self.modcache = modcache_dir
        self.proxy = proxy
        self.todo: queue.SimpleQueue[tuple[str, str] | None] = queue.SimpleQueue()
        self.exited = threading.Event()
        self.early = modcache.Early()
        self.thread: threading.Thread | None = None

    def line(self, text: str) -> None:
        """One stderr line of go; a download announced is queued for the thread."""
        m = _DOWNLOADING.fullmatch(text)
        if m is None or PATH_RE.match(m.group(1)) is None:
            return  # only plain module paths name files to read (no '..', no odd bytes)
        if self.thread is None:
            self.thread = threading.Thread(target=self._run, name="aegis-go-prehash", daemon=True)
            self.thread.start()
        self.todo.put((m.group(1), m.group(2)))

    def finish(self) -> modcache.Early:
        """Go has exited: no more waiting for zips; what was read once the thread is done."""
        self.exited.set()
        self.todo.put(None)
        if self.thread is not None:
            self.thread.join()
        return self.early

    def _run(self) -> None:
        early = self.early
        while (item := self.todo.get()) is not None:
            module, version = item
            if module not in early.lists:
                early.lists[module] = modcache.version_list(self.proxy, module)
            path = modcache.cached(self.modcache, module, version, "zip")
            while not os.path.exists(path) and not self.exited.wait(_POLL_S):
                pass
            # go fetched the go.mod before the zip (it needs it to pick versions).
            early.read_mod(modcache.cached(self.modcache, module, version, "mod"))
            early.read_zip(path)
