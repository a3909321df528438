"""Rules for commands that write the package system's own files.

Adding a repository by hand is the usual first step of third-party install
instructions: ``curl KEY | sudo gpg --dearmor -o /usr/share/keyrings/x.gpg``, ``echo
"deb ..." | sudo tee /etc/apt/sources.list.d/x.list``. Writing apt's configuration, its
keyrings, or dpkg's and apt's state behind their backs is a direct change of what the host
trusts and installs, so it is refused like ``apt-get install`` (``apt.config``); reading
those files is not. Only absolute paths are judged (a relative one depends on a working
directory the guard does not know). These tools are common, so they get no PATH shim;
``aegis guard check`` and the hooks apply these rules, and the checker applies
:func:`protected_path` to ``>``/``>>`` redirects too. Pure: no I/O.

Example:
    >>> tee(["-a", "/etc/apt/sources.list.d/x.list"]).rule
    'apt.config'
    >>> cp(["/etc/apt/sources.list", "/tmp/"]) is None
    True
"""

from __future__ import annotations

import os
from collections.abc import Sequence

from aegis.guard.argv import Match, split_options

PROTECTED = ("/etc/apt", "/etc/dpkg", "/usr/share/keyrings", "/var/lib/apt", "/var/lib/dpkg")
"""apt's and dpkg's configuration, keyrings and state."""
INSTEAD = (
    "ask the operator: sources and keys are added and approved by them "
    "(aegis policy sources), and packages change through aegis apt ... --plan"
)


def protected_path(path: str) -> bool:
    """True when ``path`` (absolute) is inside apt's or dpkg's files."""
    if not path.startswith("/"):
        return False
    norm = "/" + os.path.normpath(path).lstrip("/")
    return any(norm == p or norm.startswith(p + "/") for p in PROTECTED)


def config_match(path: str) -> Match:
    """The refusal for writing ``path``."""
    return Match("apt.config", f"writes {path}, a file of the package system", INSTEAD)


def _first_protected(paths: Sequence[str]) -> Match | None:
    for path in paths:
        if protected_path(path):
            return config_match(path)
    return None


def tee(args: Sequence[str]) -> Match | None:
    """``tee FILE...``: every operand is written."""
    _, operands = split_options(args)
    return _first_protected(operands)


_COPY_VALUE_OPTS = frozenset(
    {"-t", "--target-directory", "-S", "--suffix", "-m", "--mode", "-o", "--owner", "-g"}
    | {"--group", "--backup", "--reflink", "--sparse", "--preserve", "--no-preserve"}
)


def cp(args: Sequence[str]) -> Match | None:
    """``cp``/``mv``/``install``/``ln``: the destination (last operand, or ``-t DIR``)."""
    _, operands = split_options(args, _COPY_VALUE_OPTS)
    targets = [a.split("=", 1)[1] for a in args if a.startswith("--target-directory=")]
    targets += [args[i + 1] for i, a in enumerate(args[:-1]) if a == "-t"]
    targets += [a[2:] for a in args if a.startswith("-t") and len(a) > 2]  # noqa: PLR2004
    if not targets and len(operands) > 1:
        targets = operands[-1:]
    if "-d" in args or "--directory" in args:  # install -d DIR...: creates them all
        targets += operands
    return _first_protected(targets)


def rm(args: Sequence[str]) -> Match | None:
    """``rm``/``truncate``/``shred``/``unlink``: every operand."""
    _, operands = split_options(args, frozenset({"-s", "--size", "-n", "--iterations"}))
    return _first_protected(operands)


def sed(args: Sequence[str]) -> Match | None:
    """``sed -i``: the files it edits in place (``perl -i`` likewise)."""
    options, operands = split_options(args, frozenset({"-e", "--expression", "-f", "--file"}))
    if not any(o in ("-i", "--in-place") for o in options):
        return None
    return _first_protected(operands)


def gpg(args: Sequence[str]) -> Match | None:
    """``gpg -o FILE`` / ``--output FILE`` / ``--keyring FILE`` (``--dearmor -o`` a key)."""
    targets = _option_values(args, ("-o", "--output", "--keyring", "--primary-keyring"))
    return _first_protected(targets)


def curl(args: Sequence[str]) -> Match | None:
    """``curl -o FILE`` / ``--output FILE`` / ``--output-dir DIR``."""
    return _first_protected(_option_values(args, ("-o", "--output", "--output-dir")))


def wget(args: Sequence[str]) -> Match | None:
    """``wget -O FILE`` / ``--output-document`` / ``-P DIR`` / ``--directory-prefix``."""
    names = ("-O", "--output-document", "-P", "--directory-prefix")
    return _first_protected(_option_values(args, names))


def dd(args: Sequence[str]) -> Match | None:
    """``dd of=FILE``."""
    return _first_protected([a[3:] for a in args if a.startswith("of=")])


def _option_values(args: Sequence[str], names: Sequence[str]) -> list[str]:
    """The values of the options ``names``: ``-o F``, ``-oF``, ``-sSLo F``, ``--output[=]F``.

    In a short cluster, any letter that is one of ``names`` counts (``-fsSLo FILE``): an
    over-reading that can only refuse more, since other value-taking letters are unknown.
    """
    values: list[str] = []
    letters = {n[1] for n in names if not n.startswith("--")}
    longs = [n for n in names if n.startswith("--")]
    for i, arg in enumerate(args):
        nxt = args[i + 1] if i + 1 < len(args) else ""
        if arg.startswith("--"):
            name, eq, value = arg.partition("=")
            if name in longs:
                values.append(value if eq else nxt)
        elif arg.startswith("-") and len(arg) > 1:
            for pos, letter in enumerate(arg[1:], start=1):
                if letter in letters:
                    values.append(arg[pos + 1 :] or nxt)
    return values


FILE_RULES = {
    "tee": tee,
    "cp": cp,
    "mv": cp,
    "install": cp,
    "ln": cp,
    "rsync": cp,
    "rm": rm,
    "truncate": rm,
    "shred": rm,
    "unlink": rm,
    "sed": sed,
    "perl": sed,
    "gpg": gpg,
    "curl": curl,
    "wget": wget,
    "dd": dd,
}
"""Command name -> rule for writers of the package system's files (no shims)."""
