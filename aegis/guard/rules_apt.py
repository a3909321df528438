"""Rules for apt, apt-get, aptitude, apt-mark, add-apt-repository and dpkg.

Mutating verbs point at the ``aegis apt`` command that plans the same change; simulations
(``apt-get -s``, ``dpkg --dry-run``) are read-only and allowed. Pure: no I/O.

Example:
    >>> apt(["-y", "install", "nginx"]).instead
    'aegis apt install nginx --plan'
"""

from __future__ import annotations

import os
from collections.abc import Sequence

from aegis.guard.argv import Match, find_verb, plan, split_options

_APT_VALUE_OPTS = frozenset(
    {"-o", "-c", "-t", "-a", "--option", "--config-file", "--target-release"}
    | {"--default-release", "--host-architecture", "--target"}
)
_APT_SIMULATE = frozenset({"-s", "--simulate", "--just-print", "--dry-run", "--recon", "--no-act"})
_APT_VERBS: dict[str, str] = {
    "install": "install",
    "reinstall": "install",
    "satisfy": "install",
    "build-dep": "install",
    "markauto": "install",
    "unmarkauto": "install",
    "remove": "remove",
    "autoremove": "remove",
    "auto-remove": "remove",
    "purge": "purge",
    "autopurge": "purge",
    "upgrade": "upgrade",
    "full-upgrade": "full-upgrade",
    "dist-upgrade": "full-upgrade",
    "dselect-upgrade": "upgrade",
    "safe-upgrade": "upgrade",
    "update": "update",
}
"""Mutating apt verbs -> the ``aegis apt`` verb that plans the same kind of change."""
_APT_READ_ONLY = frozenset(
    {"list", "search", "show", "showsrc", "policy", "depends", "rdepends", "madison"}
    | {"changelog", "download", "source", "check", "clean", "autoclean", "auto-clean", "help"}
    | {"moo", "indextargets", "showpkg", "stats", "dump", "dumpavail", "unmet", "pkgnames"}
    | {"dotty", "xvcg", "gencaches", "why", "why-not", "versions", "showhold", "files"}
)
"""Verbs that change nothing: with one of these first, later words are package names."""
_APTITUDE_ONLY = frozenset({"hold", "unhold", "keep", "keep-all", "forbid-version", "forget-new"})
_APT_SOURCES = frozenset({"edit-sources"})
_APT_MUTATING = frozenset(_APT_VERBS) | _APT_SOURCES


def _simulated(options: Sequence[str]) -> bool:
    """``-s`` makes apt read-only, unless something can turn it off again.

    ``--no-simulate`` (apt negates any long option with ``--no-``), ``-o
    APT::Get::Simulate=false`` and a ``-c`` configuration file all can: with any of
    them, the call counts as a real one.
    """
    if not _APT_SIMULATE & set(options):
        return False
    negated = {f"--no-{o[2:]}" for o in _APT_SIMULATE if o.startswith("--")} | {"--no-s"}
    return not (negated | _APT_CONFIG_OPTS) & set(options)


_APT_CONFIG_OPTS = frozenset({"-o", "--option", "-c", "--config-file"})


def apt(args: Sequence[str]) -> Match | None:
    """``apt``/``apt-get``: mutating verbs, unless simulated (``-s``)."""
    options, operands = split_options(args, _APT_VALUE_OPTS)
    index = find_verb(operands, _APT_MUTATING, _APT_READ_ONLY)
    if index is None or _simulated(options):
        return None
    verb, rest = operands[index], operands[index + 1 :]
    if verb in _APT_SOURCES:
        return Match(
            "apt.sources",
            "editing the apt sources changes what the host trusts",
            "ask the operator to add the source and approve it (aegis policy sources)",
        )
    kind = _APT_VERBS.get(verb)
    if kind is None:
        return None
    packages = rest if kind in ("install", "remove", "purge") and verb not in _AUTO else []
    return Match("apt.mutation", f"'{verb}' changes packages directly", plan(kind, packages))


_AUTO = frozenset({"autoremove", "auto-remove", "autopurge"})


def aptitude(args: Sequence[str]) -> Match | None:
    """``aptitude``: apt's verbs, holds, and the interactive (bare) form."""
    options, operands = split_options(args, _APT_VALUE_OPTS)
    if not operands and not {"-h", "--help", "--version"} & set(options):
        return Match(
            "apt.mutation",
            "interactive aptitude changes packages directly",
            plan("install"),
        )
    index = find_verb(operands, _APTITUDE_ONLY, _APT_READ_ONLY)
    if index is not None and apt(args) is None:
        verb = operands[index]
        return Match("apt.mark", f"'{verb}' changes package selections", _MARK_INSTEAD)
    return apt(args)


_MARK_INSTEAD = "ask the operator: holds and auto/manual marks change what later upgrades do"
_APT_MARK_VERBS = frozenset(
    {"hold", "unhold", "auto", "manual", "minimize-manual", "install", "remove", "deinstall"}
    | {"purge"}
)


def apt_mark(args: Sequence[str]) -> Match | None:
    """``apt-mark``: holds, auto/manual marks and selections."""
    _, operands = split_options(args, _APT_VALUE_OPTS | {"-f", "--file"})
    if operands and operands[0] in _APT_MARK_VERBS:
        return Match("apt.mark", f"'apt-mark {operands[0]}' changes package state", _MARK_INSTEAD)
    return None


def add_repository(args: Sequence[str]) -> Match | None:
    """``add-apt-repository``: always a change to what the host trusts."""
    return apt(["edit-sources"])


_DPKG_ACTIONS: dict[str, str] = {
    "-i": "install",
    "--install": "install",
    "--unpack": "install",
    "--record-avail": "install",
    "-A": "install",
    "--configure": "install",
    "--triggers-only": "install",
    "-r": "remove",
    "--remove": "remove",
    "-P": "purge",
    "--purge": "purge",
    "--set-selections": "selections",
    "--clear-selections": "selections",
    "--update-avail": "selections",
    "--merge-avail": "selections",
    "--clear-avail": "selections",
    "--forget-old-unavail": "selections",
    "--add-architecture": "selections",
    "--remove-architecture": "selections",
}
_DPKG_VALUE_OPTS = frozenset(
    {
        "-D",
        "--debug",
        "--admindir",
        "--root",
        "--instdir",
        "--log",
        "--status-fd",
        "--status-logger",
    }
    | {"--path-include", "--path-exclude", "--ignore-depends"}
)
_DPKG_DRY = frozenset({"--dry-run", "--no-act", "--simulate"})


def deb_package(operand: str) -> str:
    """``nginx_1.2_amd64.deb`` -> ``nginx`` (a name for the hint only)."""
    base = operand.rsplit("/", 1)[-1]
    return base.split("_", 1)[0] if base.endswith(".deb") else base


def dpkg(args: Sequence[str]) -> Match | None:
    """``dpkg``: install, remove, purge, unpack, configure and selection actions."""
    options, operands = split_options(args, _DPKG_VALUE_OPTS)
    if _DPKG_DRY & set(options):
        return None
    for option in options:
        kind = _DPKG_ACTIONS.get(option)
        if kind is None:
            continue
        if kind == "selections":
            return Match("dpkg.mutation", f"'dpkg {option}' changes package state", _MARK_INSTEAD)
        packages = [deb_package(o) for o in operands if not o.startswith("-")]
        return Match(
            "dpkg.mutation", f"'dpkg {option}' changes packages directly", plan(kind, packages)
        )
    return None


def dpkg_reconfigure(args: Sequence[str]) -> Match | None:
    """``dpkg-reconfigure``: always runs maintainer scripts."""
    return Match(
        "dpkg.mutation",
        "dpkg-reconfigure runs maintainer scripts as root",
        "ask the operator; package changes go through aegis apt ... --plan",
    )


def unattended_upgrade(args: Sequence[str]) -> Match | None:
    """``unattended-upgrade``: upgrades directly unless ``--dry-run``."""
    options, _ = split_options(args)
    if {"--dry-run", "-h", "--help"} & set(options):
        return None
    return Match("apt.mutation", "unattended-upgrade upgrades packages directly", plan("upgrade"))


_PKCON_VERBS = {
    "install": "install",
    "install-local": "install",
    "remove": "remove",
    "update": "upgrade",
    "upgrade-system": "upgrade",
    "refresh": "update",
}


def pkcon(args: Sequence[str]) -> Match | None:
    """``pkcon`` (PackageKit): install, remove, update, refresh."""
    _, operands = split_options(args, frozenset({"-c", "--cache-age"}))
    kind = _PKCON_VERBS.get(operands[0]) if operands else None
    if kind is None:
        return None
    packages = operands[1:] if kind in ("install", "remove") else []
    return Match("apt.mutation", f"'pkcon {operands[0]}' changes packages", plan(kind, packages))


def gdebi(args: Sequence[str]) -> Match | None:
    """``gdebi``: installs a local .deb (read-only only with ``--apt-line``/``--help``)."""
    options, operands = split_options(args, frozenset({"--root", "-o", "--option"}))
    if {"--apt-line", "-h", "--help", "--version"} & set(options):
        return None
    packages = [deb_package(o) for o in operands]
    return Match(
        "dpkg.mutation", "gdebi installs a local package directly", plan("install", packages)
    )


def dpkg_deb(args: Sequence[str]) -> Match | None:
    """``dpkg-deb -x/-X/-R PKG /``: unpacking a package over the root is an install."""
    options, operands = split_options(args, frozenset({"-Z", "-z", "-S", "--showformat"}))
    extracts = {"-x", "--extract", "-X", "--vextract", "-R", "--raw-extract"} & set(options)
    if extracts and any(os.path.normpath(t).strip("/") == "" for t in operands[1:2]):
        return Match(
            "dpkg.mutation",
            "unpacking a package over / installs it behind dpkg's back",
            plan("install", [deb_package(operands[0])]),
        )
    return None
