"""The guard's rule table: which tool invocations are direct mutations the contract forbids.

The operator contract (docs/agents.md) forbids an agent to change packages directly:
apt/dpkg mutations, ``npm install``/``ci``/``exec``/``npx``, ``pip install``, pulling or
running a container image not pinned by digest, ``go get``/``go install``,
``cargo install``. Each rule looks at one expanded argv (the tool's name and its
arguments, after wrappers such as ``sudo`` were peeled off by :mod:`aegis.guard.wrappers`)
and returns a :class:`Match` naming the rule and the Aegis way to do it instead, or None.

This table is the one source of truth: ``aegis guard check`` (command lines) and the PATH
shims (argv) both call :func:`match_argv`. Pure: no I/O.

Example:
    >>> match_argv(["apt-get", "install", "-y", "nginx"]).instead
    'aegis apt install nginx --plan'
    >>> match_argv(["apt-cache", "policy", "nginx"]) is None
    True
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from aegis.guard import rules_apt as a
from aegis.guard import rules_lang as lg
from aegis.guard.argv import Match, RuleFn
from aegis.guard.rules_files import FILE_RULES

RULES: dict[str, RuleFn] = {
    "apt": a.apt,
    "apt-get": a.apt,
    "aptitude": a.aptitude,
    "apt-mark": a.apt_mark,
    "add-apt-repository": a.add_repository,
    "apt-add-repository": a.add_repository,
    "dpkg": a.dpkg,
    "dpkg-reconfigure": a.dpkg_reconfigure,
    "dpkg-deb": a.dpkg_deb,
    "gdebi": a.gdebi,
    "unattended-upgrade": a.unattended_upgrade,
    "unattended-upgrades": a.unattended_upgrade,
    "pkcon": a.pkcon,
    "npm": lg.npm,
    "npx": lg.npx,
    "yarn": lg.yarn,
    "yarnpkg": lg.yarn,
    "pnpm": lg.pnpm,
    "pnpx": lg.pnpx,
    "bunx": lg.pnpx,
    "pip": lg.pip,
    "pip3": lg.pip,
    "pipx": lg.pipx,
    "uv": lg.uv,
    "uvx": lg.uvx,
    "gem": lg.gem,
    "go": lg.go,
    "cargo": lg.cargo,
    "snap": lg.snap,
    "flatpak": lg.flatpak,
    "docker": lg.container,
    "podman": lg.container,
    "nerdctl": lg.container,
}
"""Tool name -> rule. The PATH shims are written for exactly these names (plus sudo).

:data:`aegis.guard.rules_files.FILE_RULES` (``tee``, ``cp``, ``curl -o`` ... into apt's and
dpkg's files) apply too, without shims."""

_PIP_NAME = re.compile(r"pip[23](\.[0-9]+)?")
_PYTHON_NAME = re.compile(r"python([23](\.[0-9]+)?)?")


def rule_for(name: str) -> RuleFn | None:
    """The rule for a command name (a basename), or None for tools the guard ignores."""
    if name in RULES:
        return RULES[name]
    if name in FILE_RULES:
        return FILE_RULES[name]
    if _PIP_NAME.fullmatch(name):
        return lg.pip
    if _PYTHON_NAME.fullmatch(name):
        return lg.python
    return None


def match_argv(argv: Sequence[str]) -> Match | None:
    """Apply the rule of ``argv[0]``'s basename to the rest (no wrapper peeling here).

    Args:
        argv: an expanded command, e.g. ``["/usr/bin/apt-get", "install", "x"]``.

    Returns:
        The first rule broken, or None when the rules allow it.
    """
    if not argv:
        return None
    rule = rule_for(argv[0].rsplit("/", 1)[-1])
    return rule(argv[1:]) if rule is not None else None


def any_tool_match(args: Sequence[str]) -> Match | None:
    """The first match if ``args`` followed any known tool.

    For a command name Aegis cannot know statically, such as ``$PM install x``.
    """
    if not args:
        return None  # bare 'aptitude'/'yarn' refusals mean nothing for an unknown name
    for rule in dict.fromkeys([*RULES.values(), lg.python]):
        found = rule(args)
        if found is not None and not _ALWAYS.get(rule, False):
            return found
    return None


_ALWAYS: dict[RuleFn, bool] = {
    lg.npx: True,
    lg.pnpx: True,
    lg.uvx: True,
    a.dpkg_reconfigure: True,
    a.add_repository: True,
    a.gdebi: True,
    a.aptitude: True,  # bare aptitude is refused; its verbs are apt's and apt-mark's
    lg.yarn: True,  # bare yarn is refused; its verbs are pnpm's and npm's
    a.unattended_upgrade: True,
}
"""Rules that refuse whatever follows the name: meaningless for an unknown name."""
