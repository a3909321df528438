"""A private empty directory made ahead of the tool run that names it, kept in :mod:`slot`.

``apt-get --print-uris`` needs an empty archive directory of its own on its command line
(aegis/ecosystems/apt/apt_runner.py ``download_set_args``). For the unattended pass to
start that call before the analyzer is imported (:mod:`aegis.unattended.early`), the
directory is made first and the analysis takes it over with :func:`take`, so its own
argv is exactly the started one's (:mod:`process`). Made by this very process as
``tempfile.mkdtemp`` makes one (a fresh random name, mode 0700, never through a link):
nothing else can have written in it. Not taken, it is removed when :func:`slot.discard`
runs. (Not with ``tempfile`` and ``shutil`` themselves: their imports would delay the
pass's first apt calls.)

Example::

    path = make(ARCHIVES_PREFIX)       # the pass's first moments
    process.start([..., f"Dir::Cache::Archives={path}/", ...], env)
    keep(ARCHIVES, path)
    ...
    archives = take(ARCHIVES)                   # the analysis: a ScratchDir, or None
"""

from __future__ import annotations

import contextlib
import os

from aegis.early import slot

ARCHIVES = ("scratch", "apt-archives")
"""The key of the archive directory of the unattended pass's early ``--print-uris``."""
ARCHIVES_PREFIX = "aegis-archives-"
"""The prefix of apt's archive directories, made early here or by the analysis itself."""


class ScratchDir:
    """A directory this process made; usable where a ``TemporaryDirectory`` is."""

    def __init__(self, name: str) -> None:
        self.name = name

    def cleanup(self) -> None:
        """Remove the directory and what is in it, never following a link (again: nothing)."""
        for top, dirs, files in os.walk(self.name, topdown=False):
            for name in files:
                with contextlib.suppress(OSError):
                    os.unlink(os.path.join(top, name))
            for name in dirs:
                path = os.path.join(top, name)
                with contextlib.suppress(OSError):
                    if os.path.islink(path):
                        os.unlink(path)
                    else:
                        os.rmdir(path)
        with contextlib.suppress(OSError):
            os.rmdir(self.name)

    def kill(self) -> None:
        """Remove the directory (:mod:`slot`'s name for what is not taken)."""
        self.cleanup()

    def __enter__(self) -> str:
        return self.name

    def __exit__(self, *exc: object) -> None:
        self.cleanup()


def make(prefix: str) -> str | None:
    """Make an empty private directory (mode 0700) in ``$TMPDIR`` or /tmp; its path.

    None when it cannot be made (the reader then makes its own).
    """
    # A fresh random name, made with mkdir: it fails on anything already there.
    base = os.environ.get("TMPDIR") or "/tmp"  # noqa: S108
    path = os.path.join(base, prefix + os.urandom(8).hex())
    try:
        os.mkdir(path, 0o700)
    except OSError:
        return None
    return path


def keep(key: object, path: str) -> None:
    """Keep the directory :func:`make` made for one :func:`take` with exactly ``key``.

    Kept after the run that uses it was started, so :func:`slot.discard` kills that run
    before it removes the directory.
    """
    slot.put(key, ScratchDir(path))


def take(key: object) -> ScratchDir | None:
    """The directory kept under ``key``, once; else None."""
    found = slot.claim(key)
    return found if isinstance(found, ScratchDir) else None
