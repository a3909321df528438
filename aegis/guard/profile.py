"""Editing another user's shell start-up files, as that user.

Root must not write into a home directory the user controls: a planted symlink
(``~/.bashrc -> /etc/shadow``) would make root write where the user cannot. So a forked
child drops to the user's uid and gids first, then edits ``~/.profile`` (block at the
end), ``~/.bash_profile`` (only if it exists: bash then skips ``~/.profile``) and
``~/.bashrc`` (block at the top). A symlinked file is edited at its target, which the
user could write anyway. Errors in the child come back through a pipe.

Example:
    files, warnings = edit_profiles(pwd.getpwnam("agent"), Path("/home/agent"), block)
    probe_shim_python(pwd.getpwnam("agent"), "/opt/aegis/venv/bin/python3")
"""

from __future__ import annotations

import os
import pwd
import subprocess
from collections.abc import Callable
from pathlib import Path

from aegis.guard.blocks import GuardInstallError, with_block

_FILES: tuple[tuple[str, bool, bool], ...] = (
    (".profile", False, True),
    (".bash_profile", False, False),
    (".bashrc", True, True),
)
"""(name, block at the top, create when missing)."""


def _edit_one(path: Path, block: str | None, *, at_top: bool, create: bool) -> bool:
    """Runs as the user. Returns True when ``path`` carries (or no longer carries) the block."""
    target = Path(os.path.realpath(path))
    try:
        text = target.read_text(encoding="utf-8", errors="surrogateescape")
        mode = target.stat().st_mode & 0o7777
    except FileNotFoundError:
        if not create or block is None:
            return False
        text, mode = "", 0o644
    new = with_block(text, block, at_top=at_top)
    if new != text:
        tmp = target.with_name(f".{target.name}.aegis-guard.tmp")
        tmp.unlink(missing_ok=True)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, mode)
        with os.fdopen(fd, "w", encoding="utf-8", errors="surrogateescape") as f:
            f.write(new)
        os.replace(tmp, target)
    return True


def _drop_to(account: pwd.struct_passwd) -> None:
    os.setgroups(os.getgrouplist(account.pw_name, account.pw_gid))
    os.setresgid(account.pw_gid, account.pw_gid, account.pw_gid)
    os.setresuid(account.pw_uid, account.pw_uid, account.pw_uid)


def run_as(account: pwd.struct_passwd, work: Callable[[], str], what: str) -> str:
    """Run ``work`` in a forked child that has dropped to ``account``; return its text.

    Args:
        account: the user to become (uid, gid and supplementary groups).
        work: runs in the child only; its return value comes back through a pipe.
        what: what the work is, for the error message.

    Raises:
        GuardInstallError: the work raised or the child died (exit 7).
    """
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never returns into the caller's code
        os.close(read_end)
        try:
            _drop_to(account)
            answer = "ok\n" + work()
            code = 0
        except BaseException as e:
            answer, code = f"error\n{type(e).__name__}: {e}", 1
        try:
            os.write(write_end, answer.encode(errors="replace")[:65536])
        finally:
            os._exit(code)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as f:
        answer = f.read(65536).decode(errors="replace")
    _, status = os.waitpid(pid, 0)
    kind, _, rest = answer.partition("\n")
    if os.waitstatus_to_exitcode(status) != 0 or kind != "ok":
        raise GuardInstallError(
            f"cannot {what} as {account.pw_name!r}: {rest or 'the child process failed'}"
        )
    return rest


def edit_profiles(
    account: pwd.struct_passwd, home: Path, block: str | None
) -> tuple[list[str], list[str]]:
    """Put ``block`` into (or, when None, remove it from) the user's start-up files.

    Args:
        account: the user, from the password database.
        home: their home directory.
        block: the managed PATH block, or None to remove it.

    Returns:
        (files that carry the block or had it removed, warnings for the operator).

    Raises:
        GuardInstallError: the child failed to edit a file (exit 7).
    """
    if not home.is_dir():
        return [], [
            f"{home} is not a directory: no start-up file changed; put the shim directory "
            "first on PATH in the agent's service or runtime configuration"
        ]

    def edit() -> str:
        return "\n".join(
            name
            for name, at_top, create in _FILES
            if _edit_one(home / name, block, at_top=at_top, create=create)
        )

    edited = run_as(account, edit, f"edit the start-up files in {home}")
    return [str(home / name) for name in edited.split("\n") if name], []


def probe_shim_python(account: pwd.struct_passwd, python: str) -> None:
    """Fail unless ``account`` can run ``python -I`` and import the guard from it.

    A shim the agent cannot run would break every package tool it wraps (dpkg -l too).

    Raises:
        GuardInstallError: the user cannot run it (exit 7).
    """

    def probe() -> str:
        proc = subprocess.run(
            [python, "-I", "-c", "import aegis.guard.shim"],
            capture_output=True,
            text=True,
            check=False,
            env={"PATH": "/usr/bin:/bin", "LC_ALL": "C.UTF-8"},
            cwd="/",
            timeout=60,
        )
        if proc.returncode != 0:
            tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
            raise RuntimeError(f"{python} -I -c 'import aegis.guard.shim' failed: {tail}")
        return ""

    try:
        run_as(account, probe, "run the shims' Python")
    except GuardInstallError as e:
        raise GuardInstallError(
            e.message,
            hint="install Aegis where every user can read it (packaging/install-native.sh "
            "puts it in /opt/aegis), or pass --python",
        ) from None
