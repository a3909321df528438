"""How wrapper commands reach the command they run: ``sudo``, ``env``, ``xargs``, ``sh -c``...

``sudo -u root env DEBIAN_FRONTEND=noninteractive nice -n 5 apt-get install x`` runs
``apt-get install x``; ``bash -lc 'npm ci'`` runs the string ``npm ci`` through a shell.
:func:`unwrap` answers, for one expanded argv, which argv slices (:class:`Run`) or shell
strings (:class:`Script`) it will run, so the checker can apply the rules to those too.
An option list per wrapper says which options take a value, so an option's value is never
mistaken for the command. Pure: no I/O.

Example:
    >>> unwrap(["sudo", "-u", "root", "apt-get", "install", "x"])
    [Run(start=3, end=None)]
    >>> unwrap(["bash", "-lc", "npm ci"])
    [Script(indices=(2,), text='npm ci')]
"""

from __future__ import annotations

import re
from collections.abc import Sequence

TYPE_CHECKING = False  # not typing's: importing typing costs the hook's start-up time
if TYPE_CHECKING:
    from typing import NamedTuple
else:
    from aegis.guard.tuples import NamedTuple


class Run(NamedTuple):
    """The wrapper runs ``argv[start:end]`` as a command."""

    start: int
    """Index of the command's name in the wrapper's argv."""
    end: int | None = None
    """End of the slice (``find -exec ... ;``); None means the rest."""


class Script(NamedTuple):
    """The wrapper runs ``text`` through a shell (``sh -c``, ``eval``, ``su -c``)."""

    indices: tuple[int, ...]
    """Which argv words the text came from (empty when the text was inside an option)."""
    text: str
    """The shell command line."""


Target = Run | Script


class _Spec(NamedTuple):
    value_opts: frozenset[str] = frozenset()
    """Options that take a value (the next argument, or the rest of a short cluster)."""
    script_opts: frozenset[str] = frozenset()
    """Options whose value is a shell command line (``su -c``)."""
    no_exec_opts: frozenset[str] = frozenset()
    """Options that mean the wrapper runs nothing (``command -v``, ``sudo -l``)."""
    positional: int = 0
    """Operands before the command (``timeout`` DURATION, ``chroot`` DIR)."""
    assignments: bool = False
    """``NAME=value`` words before the command are environment settings (env, sudo)."""


def _f(*names: str) -> frozenset[str]:
    return frozenset(names)


_SPECS: dict[str, _Spec] = {
    "sudo": _Spec(
        value_opts=_f("-C", "-D", "-g", "-h", "-p", "-R", "-r", "-t", "-T", "-U", "-u")
        | _f("--close-from", "--chdir", "--group", "--host", "--prompt", "--chroot", "--role")
        | _f("--type", "--command-timeout", "--other-user", "--user"),
        no_exec_opts=_f("-e", "--edit", "-l", "--list", "-v", "--validate", "-K")
        | _f("--remove-timestamp", "-V", "--version", "--help"),
        assignments=True,
    ),
    "doas": _Spec(value_opts=_f("-u", "-C")),
    "pkexec": _Spec(value_opts=_f("--user")),
    "env": _Spec(
        value_opts=_f("-u", "--unset", "-C", "--chdir", "--default-signal", "--ignore-signal")
        | _f("--block-signal"),
        script_opts=_f("-S", "--split-string"),
        assignments=True,
    ),
    "nice": _Spec(value_opts=_f("-n", "--adjustment")),
    "ionice": _Spec(
        value_opts=_f("-c", "--class", "-n", "--classdata"),
        no_exec_opts=_f("-p", "--pid", "-P", "--pgid", "-u", "--uid"),
    ),
    "timeout": _Spec(value_opts=_f("-s", "--signal", "-k", "--kill-after"), positional=1),
    "nohup": _Spec(),
    "setsid": _Spec(),
    "builtin": _Spec(),
    "exec": _Spec(value_opts=_f("-a")),
    "command": _Spec(no_exec_opts=_f("-v", "-V")),
    "stdbuf": _Spec(value_opts=_f("-i", "-o", "-e", "--input", "--output", "--error")),
    "chrt": _Spec(
        value_opts=_f("-T", "-P", "-D", "--sched-runtime", "--sched-period")
        | _f("--sched-deadline"),
        no_exec_opts=_f("-p", "--pid", "-m", "--max"),
        positional=1,
    ),
    "taskset": _Spec(no_exec_opts=_f("-p", "--pid"), positional=1),
    "chroot": _Spec(value_opts=_f("--userspec", "--groups"), positional=1),
    "time": _Spec(value_opts=_f("-f", "--format", "-o", "--output")),
    "xargs": _Spec(
        value_opts=_f("-a", "--arg-file", "-d", "--delimiter", "-E", "--eof", "-I", "--replace")
        | _f("-L", "--max-lines", "-n", "--max-args", "-P", "--max-procs", "-s", "--max-chars")
        | _f("--process-slot-var"),
    ),
    "strace": _Spec(
        value_opts=_f("-o", "-e", "-p", "-s", "-u", "-E", "-S", "-a", "-b", "-I", "-O", "-P"),
    ),
    "ltrace": _Spec(value_opts=_f("-o", "-e", "-p", "-s", "-u", "-n", "-a")),
    "systemd-run": _Spec(
        value_opts=_f("-u", "--unit", "-p", "--property", "-E", "--setenv", "-M", "--machine")
        | _f("--uid", "--gid", "--nice", "--working-directory", "-H", "--host", "--slice")
        | _f("--description", "--on-calendar", "--on-active", "--service-type"),
    ),
    "fakeroot": _Spec(value_opts=_f("-l", "--lib", "--faked", "-s", "-i")),
    "eatmydata": _Spec(),
    "catchsegv": _Spec(),
    "unbuffer": _Spec(),
    "setpriv": _Spec(
        value_opts=_f("--reuid", "--regid", "--groups", "--ruid", "--rgid", "--euid", "--egid")
        | _f("--inh-caps", "--ambient-caps", "--bounding-set", "--securebits", "--selinux-label")
        | _f("--apparmor-profile", "--landlock-access", "--landlock-rule", "--pdeathsig"),
        no_exec_opts=_f("-d", "--dump", "--help", "--version"),
    ),
    "nsenter": _Spec(
        value_opts=_f("-t", "--target", "-S", "--setuid", "-G", "--setgid", "-N", "--net-socket")
        | _f("--user-parent", "--env"),
    ),
    "unshare": _Spec(
        value_opts=_f("-S", "--setuid", "-G", "--setgid", "-R", "--root", "-w", "--wd")
        | _f("--propagation", "--map-user", "--map-group", "--map-users", "--map-groups"),
    ),
    "run0": _Spec(
        value_opts=_f("-u", "--user", "-g", "--group", "-D", "--chdir", "--setenv", "--nice")
        | _f("--unit", "--property", "--description", "--slice", "--machine"),
    ),
    "sg": _Spec(positional=1),
    "ssh": _Spec(
        value_opts=_f("-b", "-B", "-c", "-D", "-E", "-e", "-F", "-I", "-i", "-J", "-L", "-l")
        | _f("-m", "-O", "-o", "-p", "-P", "-Q", "-R", "-S", "-W", "-w"),
    ),
    "busybox": _Spec(no_exec_opts=_f("--list", "--list-full", "--help", "--install")),
    "su": _Spec(
        value_opts=_f("-s", "--shell", "-g", "--group", "-G", "--supp-group", "-w")
        | _f("--whitelist-environment"),
        script_opts=_f("-c", "--command", "--session-command"),
    ),
    "script": _Spec(
        value_opts=_f("-E", "--echo", "-I", "--log-in", "-O", "--log-out", "-B", "--log-io")
        | _f("-T", "--log-timing", "-m", "--logging-format"),
        script_opts=_f("-c", "--command"),
    ),
}
"""Wrapper name -> how its options are read. ``su`` and ``script`` run only ``-c``."""

_RUNS_ONLY_SCRIPTS = frozenset({"su", "script"})
SHELLS = frozenset({"sh", "bash", "dash", "zsh", "ksh", "mksh", "ash", "fish", "rbash"})
"""Shells: ``-c STRING`` runs STRING; without it they read a program from a file or stdin."""
_SHELL_VALUE_OPTS = _f("-o", "+o", "-O", "+O", "--rcfile", "--init-file")
# Patterns kept as text: re compiles (and caches) them on first use, so the guard hook
# does not compile at start-up what most command lines never need.
_NAME = r"[A-Za-z_][A-Za-z0-9_]*="


def _options(argv: Sequence[str], spec: _Spec) -> tuple[int, list[Target] | None]:
    """Skip the wrapper's options; return (index after them, early answer or None)."""
    i = 1
    while i < len(argv):
        arg = argv[i]
        if arg == "--":
            return i + 1, None
        if arg.startswith("--"):
            name, eq, value = arg.partition("=")
            if name in spec.no_exec_opts:
                return i, []
            if name in spec.script_opts:
                return i, _script_value(argv, i, value if eq else None)
            i += 2 if not eq and name in spec.value_opts else 1
            continue
        if arg.startswith("-") and len(arg) > 1:
            i += 1
            for pos, letter in enumerate(arg[1:], start=1):
                opt = f"-{letter}"
                if opt in spec.no_exec_opts:
                    return i, []
                if opt in spec.script_opts:
                    attached = arg[pos + 1 :]
                    return i, _script_value(argv, i - 1, attached or None)
                if opt in spec.value_opts:
                    i += 1 if pos == len(arg) - 1 else 0
                    break
            continue
        if spec.assignments and re.match(_NAME, arg):
            i += 1
            continue
        return i, None
    return i, None


def _script_value(argv: Sequence[str], i: int, attached: str | None) -> list[Target]:
    if attached is not None:
        return [Script((), attached)]
    if i + 1 < len(argv):
        return [Script((i + 1,), argv[i + 1])]
    return []


def _shell(argv: Sequence[str]) -> list[Target]:
    """``sh -c STRING``: STRING is the first operand after the options (``bash -xc``)."""
    has_c = False
    i = 1
    while i < len(argv):
        arg = argv[i]
        if arg in ("--", "-"):
            i += 1
            break
        if arg in _SHELL_VALUE_OPTS:
            i += 2
            continue
        if arg.startswith("--"):
            has_c = has_c or arg == "--command"
            i += 1
            continue
        if arg[:1] in ("-", "+") and len(arg) > 1:
            has_c = has_c or "c" in arg[1:]
            i += 1
            continue
        break
    if has_c and i < len(argv):
        return [Script((i,), argv[i])]
    return []


def _find(argv: Sequence[str]) -> list[Target]:
    """``find ... -exec CMD ... ;`` (or ``+``): each CMD runs."""
    targets: list[Target] = []
    i = 1
    while i < len(argv):
        if argv[i] in ("-exec", "-execdir", "-ok", "-okdir"):
            end = i + 1
            while end < len(argv) and argv[end] not in (";", "+"):
                end += 1
            if end > i + 1:
                targets.append(Run(i + 1, end))
            i = end
        i += 1
    return targets


def _script_anywhere(argv: Sequence[str], spec: _Spec) -> list[Target]:
    """``su root -c CMD``: the ``-c`` may follow the user name; look at every word."""
    for i, arg in enumerate(argv[1:], start=1):
        name, eq, value = arg.partition("=")
        if arg.startswith("--") and name in spec.script_opts:
            return _script_value(argv, i, value if eq else None)
        if arg.startswith("-") and not arg.startswith("--") and len(arg) > 1:
            for pos, letter in enumerate(arg[1:], start=1):
                if f"-{letter}" in spec.script_opts:
                    return _script_value(argv, i, arg[pos + 1 :] or None)
                if f"-{letter}" in spec.value_opts:
                    break
    return []


def _runuser(argv: Sequence[str]) -> list[Target]:
    spec = _Spec(
        value_opts=_f("-u", "--user", "-g", "--group", "-G", "--supp-group", "-s", "--shell")
        | _f("-w", "--whitelist-environment"),
        script_opts=_f("-c", "--command", "--session-command"),
    )
    i, early = _options(argv, spec)
    if early is not None:
        return early
    if any(a == "-u" or a.startswith("--user") for a in argv[1:i]):
        return [Run(i)] if i < len(argv) else []
    return _script_anywhere(argv, spec)


def _watch(argv: Sequence[str]) -> list[Target]:
    """``watch CMD...`` joins its arguments and runs them with ``sh -c`` (unless ``-x``)."""
    spec = _Spec(value_opts=_f("-n", "--interval", "-q", "--equexit"))
    i, _ = _options(argv, spec)
    if i >= len(argv):
        return []
    if any(a in ("-x", "--exec") for a in argv[1:i]):
        return [Run(i)]
    return [Script(tuple(range(i, len(argv))), " ".join(argv[i:]))]


def _flock(argv: Sequence[str]) -> list[Target]:
    """``flock [opts] FILE CMD...`` or ``flock FILE -c STRING``."""
    for i, arg in enumerate(argv[1:], start=1):
        if arg in ("-c", "--command") and i + 1 < len(argv):
            return [Script((i + 1,), argv[i + 1])]
    spec = _Spec(value_opts=_f("-w", "--timeout", "-E", "--conflict-exit-code"), positional=1)
    return _generic(argv, spec)


def _remote(name: str, argv: Sequence[str]) -> list[Target]:
    """``ssh HOST CMD...`` and ``sg GROUP -c CMD``: a shell runs the joined words.

    The contract binds an agent on every host, so a command sent to another host (or
    to this one through ssh) is checked like a local one.
    """
    if name == "sg":
        for i, arg in enumerate(argv[1:], start=1):
            if arg == "-c" and i + 1 < len(argv):
                return [Script((i + 1,), argv[i + 1])]
        return _generic(argv, _SPECS["sg"])
    i, early = _options(argv, _SPECS["ssh"])
    if early is not None or i >= len(argv):
        return []
    # OpenSSH reads options after the host too: skip them (and "--") before the command.
    j, _ = _options([argv[0], *argv[i + 1 :]], _SPECS["ssh"])
    start = i + j
    if start >= len(argv):
        return []
    return [Script(tuple(range(start, len(argv))), " ".join(argv[start:]))]


ARGUMENTS_FROM_INPUT = frozenset({"xargs", "find"})
"""Wrappers that add arguments the guard cannot see (from stdin, file names)."""


def _generic(argv: Sequence[str], spec: _Spec) -> list[Target]:
    i, early = _options(argv, spec)
    if early is not None:
        return early
    i += spec.positional
    return [Run(i)] if i < len(argv) else []


def unwrap(argv: Sequence[str]) -> list[Target]:
    """What a wrapper command runs; ``[]`` when ``argv`` is no wrapper or runs nothing.

    Args:
        argv: an expanded command, ``argv[0]`` possibly an absolute path.

    Returns:
        The argv slices and shell strings it runs, in order.
    """
    if not argv:
        return []
    name = argv[0].rsplit("/", 1)[-1]
    if name in SHELLS:
        return _shell(argv)
    if name == "eval":
        start = 2 if argv[1:2] == ["--"] else 1  # builtins take "--" as the end of options
        words = argv[start:]
        return [Script(tuple(range(start, len(argv))), " ".join(words))] if words else []
    if name == "find":
        return _find(argv)
    if name == "runuser":
        return _runuser(argv)
    if name == "watch":
        return _watch(argv)
    if name == "flock":
        return _flock(argv)
    if name == "alias":
        # An alias whose value is a command runs it later: check the value now.
        return [Script((i,), a.split("=", 1)[1]) for i, a in enumerate(argv) if "=" in a]
    if name in ("ssh", "sg"):
        return _remote(name, argv)
    spec = _SPECS.get(name)
    if spec is None:
        return []
    if name in _RUNS_ONLY_SCRIPTS:
        return _script_anywhere(argv, spec)
    return _generic(argv, spec)


def is_wrapper(name: str) -> bool:
    """True when ``name`` (a basename) may run another command."""
    return (
        name in _SPECS
        or name in SHELLS
        or name in ("eval", "find", "runuser", "watch", "flock", "alias")
    )


def input_placeholders(argv: Sequence[str]) -> frozenset[str]:
    """The words ``xargs -I``/``find -exec`` replace with input (``{}`` unless ``-I X``)."""
    holders = {"{}"}
    for i, arg in enumerate(argv[1:], start=1):
        if arg == "-I" and i + 1 < len(argv):
            holders.add(argv[i + 1])
        elif arg.startswith(("-I", "-i")) and len(arg) > 2:  # noqa: PLR2004
            holders.add(arg[2:])
        elif arg.startswith("--replace="):
            holders.add(arg.split("=", 1)[1])
    return frozenset(holders)
