"""The program behind each PATH shim ``aegis guard install`` writes.

A shim is a two-line ``/bin/sh`` script::

    exec /opt/aegis/bin/python3 -I -m aegis.guard.shim TOOL SHIM_DIR LOG_FILE "$@"

This module checks ``TOOL "$@"`` with :func:`aegis.guard.check.check_argv` (the same
rules as ``aegis guard check``). Allowed: it execs the real tool, the first ``TOOL`` on
``$PATH`` that is neither in ``SHIM_DIR`` nor another guard shim. Refused: it appends one
JSON line to ``LOG_FILE`` and sends the same line to syslog (ident ``aegis-guard``,
facility auth), prints the refusal and exits 3. A refusal that cannot be logged is still
refused. Python runs isolated (``-I``): the agent's ``PYTHONPATH`` cannot swap the rules.

Example:
    $ apt-get install -y nginx            # through the shim
    Error: refused by aegis guard: agents on this host make no direct package changes
      - apt-get install -y nginx [apt.mutation]: 'install' changes packages directly
      hint: instead: aegis apt install nginx --plan
    $ echo $?
    3
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence

from aegis.guard.check import Verdict, check_argv

SHIM_MARKER = b"# aegis guard shim"
"""Every shim carries this line; a tool file that does is never taken for the real tool."""
EXIT_NOT_FOUND = 127
_MAX_LOGGED_ARGS = 64


def find_real(tool: str, shim_dir: str, path: str) -> str | None:
    """The real ``tool``: first on ``path`` outside ``shim_dir``, skipping any guard shim."""
    skip = os.path.realpath(shim_dir)
    for raw in path.split(os.pathsep):
        entry = raw or "."
        if os.path.realpath(entry) == skip:
            continue
        candidate = os.path.join(entry, tool)
        if not (os.path.isfile(candidate) and os.access(candidate, os.X_OK)):
            continue
        try:
            with open(candidate, "rb") as f:
                head = f.read(512)
        except OSError:
            continue
        if SHIM_MARKER not in head:
            return candidate
    return None


def log_line(tool: str, args: Sequence[str], verdict: Verdict) -> str:
    """One JSON line for a refusal (ASCII only, so no control character reaches a log)."""
    import json  # only on a refusal: a passthrough imports as little as it can
    from datetime import UTC, datetime

    from aegis.text import inert

    uid = os.getuid()
    try:
        import pwd

        user = pwd.getpwuid(uid).pw_name
    except KeyError:
        user = str(uid)
    record = {
        "time": datetime.now(UTC).isoformat(timespec="seconds"),
        "event": "aegis-guard.refused",
        "user": user,
        "uid": uid,
        "tool": tool,
        "argv": [inert(a, max_chars=500) for a in [tool, *args][:_MAX_LOGGED_ARGS]],
        "rules": [f.rule for f in verdict.findings],
        "cwd": inert(os.getcwd() if os.path.isdir(".") else "?"),
    }
    return json.dumps(record, sort_keys=True, ensure_ascii=True)


def _log(log_file: str, line: str) -> str | None:
    """Append ``line`` to the log and syslog; return why the file could not be written."""
    import syslog

    syslog.openlog("aegis-guard", syslog.LOG_PID, syslog.LOG_AUTH)
    syslog.syslog(syslog.LOG_WARNING, line)
    try:
        # No O_CREAT: 'aegis guard install' created the file for this user; a missing or
        # replaced-by-a-link file is reported, never followed or created here.
        fd = os.open(log_file, os.O_WRONLY | os.O_APPEND | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError as e:
        return f"{log_file}: {e.strerror}"
    try:
        os.write(fd, (line + "\n").encode("ascii"))
    finally:
        os.close(fd)
    return None


def main(argv: Sequence[str] | None = None) -> int:
    """Run one shim call; returns an exit code only when it does not exec the real tool."""
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) < 3:  # noqa: PLR2004  (TOOL SHIM_DIR LOG_FILE)
        sys.stderr.write("aegis guard shim: usage: TOOL SHIM_DIR LOG_FILE [ARGS...]\n")
        return 2
    tool, shim_dir, log_file, rest = args[0], args[1], args[2], args[3:]
    verdict = check_argv([tool, *rest])
    if verdict.allowed:
        real = find_real(tool, shim_dir, os.environ.get("PATH", os.defpath))
        if real is None:
            sys.stderr.write(f"{tool}: command not found (aegis guard shim)\n")
            return EXIT_NOT_FOUND
        os.execv(real, [tool, *rest])  # noqa: S606  (argv list, the real tool by path)
    problem = _log(log_file, log_line(tool, rest, verdict))
    from aegis.guard.report import GuardRefusedError, refusal_text

    sys.stderr.write(refusal_text(verdict))
    if problem is not None:
        sys.stderr.write(f"aegis guard: warning: refusal not logged ({problem})\n")
    return GuardRefusedError.exit_code


if __name__ == "__main__":
    sys.exit(main())
