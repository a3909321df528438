"""``aegis guard install``: PATH shims for one agent account (root only).

What it writes (docs/guard.md):

- ``/usr/local/lib/aegis/guard-shims/<user>/`` (root:root 0755): one ``/bin/sh`` shim per
  tool of the rule table (:data:`aegis.guard.rules.RULES`) plus ``sudo`` and ``doas``,
  whose ``secure_path`` would otherwise skip the shims. Each runs
  :mod:`aegis.guard.shim` with this Python, isolated (``-I``).
- ``/var/log/aegis-guard/<user>.log`` (owned by the user, 0600, appended by the shims):
  one JSON line per refusal; the same line goes to syslog (ident ``aegis-guard``).
- A managed block in the user's ``~/.profile`` (at the end, after Debian's ``~/bin`` and
  ``~/.local/bin`` additions), ``~/.bash_profile`` if it exists, and ``~/.bashrc`` (at
  the top, before Debian's "not interactive: return", so ``ssh host cmd`` sees it too),
  putting the shim directory first on ``PATH``. The block is written by a child process
  that has dropped to the user's uid and gids: root never writes through a link the
  user planted in their home.

Running it again refreshes everything in place (idempotent). The guard keeps an agent to
the contract; it is not a sandbox: an agent that rewrites its own PATH, or calls a tool
by its absolute path, bypasses the shims (the hook of ``aegis guard check`` and the
absence of root rights remain).

Example:
    # aegis guard install --user agent
"""

from __future__ import annotations

import os
import pwd
import re
import shlex
import sys
from dataclasses import dataclass, field
from pathlib import Path

from aegis.errors import InputError
from aegis.guard.blocks import BEGIN, END, GuardInstallError
from aegis.guard.profile import edit_profiles, probe_shim_python
from aegis.guard.rules import RULES
from aegis.guard.shim import SHIM_MARKER

SHIM_MARKER_LINE = SHIM_MARKER.decode()

DEFAULT_SHIM_ROOT = Path("/usr/local/lib/aegis/guard-shims")
DEFAULT_LOG_DIR = Path("/var/log/aegis-guard")
SHIM_TOOLS: tuple[str, ...] = (*sorted(RULES), "doas", "sudo")
"""The shims written: every tool the rule table knows, and the wrappers that reset PATH."""
_SAFE_PATH = re.compile(r"/[A-Za-z0-9._+@/-]*")


@dataclass(frozen=True)
class InstallResult:
    """What ``aegis guard install`` wrote."""

    user: str
    """The agent account."""
    uid: int
    """Its uid."""
    shim_dir: str
    """The shim directory now first on the user's PATH."""
    tools: tuple[str, ...]
    """The shims in it."""
    log_file: str
    """Where refusals are appended (also sent to syslog)."""
    profile_files: tuple[str, ...]
    """The user's shell start-up files that carry the PATH block."""
    warnings: tuple[str, ...] = field(default=())
    """Anything the operator must finish by hand."""


def shim_text(tool: str, *, python: str, shim_dir: str, log_file: str, user: str) -> str:
    """The ``/bin/sh`` shim for ``tool`` (pure; the marker line identifies it)."""
    argv = shlex.join([python, "-I", "-m", "aegis.guard.shim", tool, shim_dir, log_file])
    return (
        "#!/bin/sh\n"
        f"{SHIM_MARKER_LINE} for {tool}: written by 'aegis guard install --user {user}'.\n"
        "# Read-only calls run the real tool (next on PATH); direct package changes are\n"
        "# refused with exit 3 and logged. Do not edit: rerun 'aegis guard install'.\n"
        f'exec {argv} "$@"\n'
    )


def path_block(shim_dir: str) -> str:
    """The managed block that puts ``shim_dir`` first on PATH (POSIX sh; idempotent)."""
    prefix = shlex.quote(shim_dir + ":")
    return (
        f"{BEGIN} written by 'aegis guard install'; 'aegis guard uninstall' removes it\n"
        f'case "$PATH" in {prefix}*) ;; *) PATH={prefix}"$PATH"; export PATH ;; esac\n'
        f"{END}\n"
    )


def _require_root() -> None:
    if os.geteuid() != 0:
        raise GuardInstallError(
            "aegis guard install must run as root (it writes shims under /usr/local and "
            "edits another user's shell start-up files)",
            hint="run it as the operator: sudo aegis guard install --user NAME",
        )


def _account(user: str) -> pwd.struct_passwd:
    try:
        account = pwd.getpwnam(user)
    except KeyError:
        raise InputError(f"no such user {user!r}") from None
    if account.pw_uid == 0:
        raise InputError(
            "the guard is for agent accounts, not root: root's package tools must stay real",
            hint="create an unprivileged account for the agent",
        )
    return account


def _checked_dir(value: Path | None, default: Path, what: str) -> Path:
    path = value if value is not None else default
    if not path.is_absolute() or not _SAFE_PATH.fullmatch(str(path)):
        raise InputError(
            f"{what} {str(path)!r} must be an absolute path of letters, digits and ._+@/- "
            "(it goes on PATH and into shell start-up files)"
        )
    return path


def _write_root_file(path: Path, text: str, mode: int) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.unlink(missing_ok=True)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, mode)
    try:
        os.write(fd, text.encode())
        os.fchmod(fd, mode)
    finally:
        os.close(fd)
    os.replace(tmp, path)


def _write_shims(shim_dir: Path, *, python: str, log_file: str, user: str) -> None:
    shim_dir.mkdir(mode=0o755, parents=True, exist_ok=True)
    st = shim_dir.lstat()
    if not shim_dir.is_dir() or shim_dir.is_symlink() or st.st_uid != 0 or st.st_mode & 0o022:
        raise GuardInstallError(
            f"{shim_dir} must be a root-owned directory writable only by root",
            hint="remove it, or pass another --dir",
        )
    for tool in SHIM_TOOLS:
        text = shim_text(tool, python=python, shim_dir=str(shim_dir), log_file=log_file, user=user)
        _write_root_file(shim_dir / tool, text, 0o755)
    for entry in shim_dir.iterdir():  # shims of tools no longer in the table
        stale = entry.name not in SHIM_TOOLS and entry.is_file() and not entry.is_symlink()
        if stale and SHIM_MARKER_LINE.encode() in entry.read_bytes()[:512]:
            entry.unlink()


def _prepare_log(log_file: Path, account: pwd.struct_passwd) -> None:
    log_file.parent.mkdir(mode=0o755, parents=True, exist_ok=True)
    flags = os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_NOFOLLOW | os.O_CLOEXEC
    fd = os.open(log_file, flags, 0o600)
    try:
        os.fchown(fd, account.pw_uid, 0)
        os.fchmod(fd, 0o600)
    finally:
        os.close(fd)


def install_guard(
    user: str,
    *,
    shim_dir: Path | None = None,
    home: Path | None = None,
    log_file: Path | None = None,
    python: str | None = None,
) -> InstallResult:
    """Write the shims, the refusal log and the PATH block for ``user``.

    Args:
        user: the agent's account name (not root).
        shim_dir: the shim directory (default ``/usr/local/lib/aegis/guard-shims/<user>``).
        home: the user's home (default: from the password database).
        log_file: the refusal log (default ``/var/log/aegis-guard/<user>.log``).
        python: the Python the shims run (default: this one, which has Aegis installed).

    Returns:
        What was written.

    Raises:
        GuardInstallError: not root, or a file could not be written (exit 7).
        InputError: unknown user, root, or an unusable path (exit 3).
    """
    _require_root()
    account = _account(user)
    shims = _checked_dir(shim_dir, DEFAULT_SHIM_ROOT / user, "--dir")
    log = _checked_dir(log_file, DEFAULT_LOG_DIR / f"{user}.log", "--log-file")
    interpreter = python or sys.executable
    if not os.path.isabs(interpreter):
        raise InputError(f"--python {interpreter!r} must be an absolute path")
    probe_shim_python(account, interpreter)  # before writing anything
    try:
        _prepare_log(log, account)
        _write_shims(shims, python=interpreter, log_file=str(log), user=user)
    except OSError as e:
        raise GuardInstallError(f"cannot write the guard for {user!r}: {e}") from e
    home_dir = home if home is not None else Path(account.pw_dir)
    files, warnings = edit_profiles(account, home_dir, path_block(str(shims)))
    return InstallResult(
        user=user,
        uid=account.pw_uid,
        shim_dir=str(shims),
        tools=SHIM_TOOLS,
        log_file=str(log),
        profile_files=tuple(files),
        warnings=tuple(warnings),
    )


def uninstall_guard(
    user: str, *, shim_dir: Path | None = None, home: Path | None = None
) -> InstallResult:
    """Remove ``user``'s shims and PATH blocks (the refusal log is kept).

    Raises:
        GuardInstallError: not root (exit 7).
        InputError: unknown user or an unusable path (exit 3).
    """
    _require_root()
    account = _account(user)
    shims = _checked_dir(shim_dir, DEFAULT_SHIM_ROOT / user, "--dir")
    if shims.is_dir() and not shims.is_symlink():
        for entry in shims.iterdir():
            if entry.is_file() and SHIM_MARKER_LINE.encode() in entry.read_bytes()[:512]:
                entry.unlink()
        if not any(shims.iterdir()):
            shims.rmdir()
    home_dir = home if home is not None else Path(account.pw_dir)
    files, warnings = edit_profiles(account, home_dir, None)
    return InstallResult(
        user=user,
        uid=account.pw_uid,
        shim_dir=str(shims),
        tools=(),
        log_file="",
        profile_files=tuple(files),
        warnings=tuple(warnings),
    )
