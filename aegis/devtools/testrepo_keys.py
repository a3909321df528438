"""Throwaway signing keys for test repositories, and the per-process cache and tool runner.

Part of :mod:`aegis.devtools.testrepo` (which re-exports :class:`Key` and
:func:`get_key`). Keys are ed25519, generated once per process per name in a
temporary directory that also holds the built .debs and is removed at exit (after
each key's gpg-agent is stopped). Tools run with argv lists and a minimal
environment (``PATH``, ``LANG=C``), docs/testing.md "Test repository".

Example::

    key = get_key("default")
    run_tool(["gpg", "--batch", "--list-secret-keys"], env={"GNUPGHOME": str(key.gnupg_home)})
"""

from __future__ import annotations

import atexit
import functools
import hashlib
import os
import shutil
import subprocess
import tempfile
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

CHILD_ENV_KEEP = ("PATH",)
"""Variables of our own environment a child tool inherits (everything else is set)."""


@dataclass(frozen=True)
class Key:
    """A throwaway signing key in its own GNUPGHOME."""

    name: str
    gnupg_home: Path
    fingerprint: str
    keyring: Path
    """Binary keyring (``gpg --export``)."""
    armored: Path
    """ASCII-armoured export (``.asc``)."""


# --- process-wide caches ----------------------------------------------------------

_LOCK = threading.Lock()
_KEYS: dict[str, Key] = {}


@functools.cache
def cache_dir() -> Path:
    """One temporary directory per process for keys and built .debs, removed at exit.

    Returns:
        The directory (created on first call).
    """
    path = Path(tempfile.mkdtemp(prefix="aegis-testrepo-"))
    atexit.register(_cleanup, path)
    return path


def _cleanup(path: Path) -> None:
    for key in list(_KEYS.values()):
        subprocess.run(
            ["gpgconf", "--homedir", str(key.gnupg_home), "--kill", "all"],
            capture_output=True,
            check=False,
        )
    shutil.rmtree(path, ignore_errors=True)


def run_tool(
    argv: Sequence[str],
    *,
    cwd: Path | None = None,
    env: Mapping[str, str] | None = None,
    stdout_path: Path | None = None,
) -> str:
    """Run a build tool with a minimal environment and return its stdout.

    Args:
        argv: the command (no shell).
        cwd: working directory.
        env: variables added to ``PATH``, ``LANG=C`` and ``LC_ALL=C``.
        stdout_path: when given, stdout is also written to this file.

    Returns:
        The tool's standard output.

    Raises:
        RuntimeError: the tool exited non-zero (the message carries its stderr).
    """
    full_env = {k: os.environ[k] for k in CHILD_ENV_KEEP if k in os.environ}
    full_env.update({"LANG": "C", "LC_ALL": "C"})
    if env:
        full_env.update(env)
    proc = subprocess.run(
        list(argv), cwd=cwd, env=full_env, capture_output=True, text=True, check=False
    )
    if proc.returncode != 0:
        raise RuntimeError(f"{argv[0]} failed ({proc.returncode}): {proc.stderr.strip()}")
    if stdout_path is not None:
        stdout_path.write_text(proc.stdout)
    return proc.stdout


def get_key(name: str = "default", *, gnupg_home: Path | None = None) -> Key:
    """Return a throwaway signing key, generated once per process per name.

    Args:
        name: the key's name (each name is a different key).
        gnupg_home: an existing GNUPGHOME whose first secret key is reused instead.

    Returns:
        The key, with its binary and armoured exports in the process cache.

    Raises:
        RuntimeError: gpg failed or ``gnupg_home`` holds no secret key.
    """
    with _LOCK:
        cache_name = f"{name}@{gnupg_home}" if gnupg_home else name
        if cache_name in _KEYS:
            return _KEYS[cache_name]
        home = gnupg_home or (cache_dir() / f"gnupg-{name}")
        home.mkdir(mode=0o700, parents=True, exist_ok=True)
        env = {"GNUPGHOME": str(home)}
        if gnupg_home is None:
            run_tool(
                [
                    "gpg",
                    "--batch",
                    "--passphrase",
                    "",
                    "--quick-gen-key",
                    f"Aegis Test Repo {name} <repo-{name}@example.invalid>",
                    "ed25519",
                    "sign",
                    "never",
                ],
                env=env,
            )
        listing = run_tool(["gpg", "--batch", "--with-colons", "--list-secret-keys"], env=env)
        fprs = [ln.split(":")[9] for ln in listing.splitlines() if ln.startswith("fpr:")]
        if not fprs:
            raise RuntimeError(f"no secret key in {home}")
        fpr = fprs[0]
        out = cache_dir() / f"key-{hashlib.sha256(cache_name.encode()).hexdigest()[:12]}"
        out.mkdir(exist_ok=True)
        keyring = out / f"{name}.gpg"
        armored = out / f"{name}.asc"
        keyring.write_bytes(
            subprocess.run(
                ["gpg", "--batch", "--export", fpr],
                env={**os.environ, **env},
                capture_output=True,
                check=True,
            ).stdout
        )
        run_tool(["gpg", "--batch", "--armor", "--export", fpr], env=env, stdout_path=armored)
        key = Key(name, home, fpr, keyring, armored)
        _KEYS[cache_name] = key
        return key
