"""Rules for language package managers (npm, pip, go, cargo ...) and container images.

Aegis plans apt, ``pip install`` (into a venv), ``npm install`` (into a project), ``go
get``/``go install`` (a module, the managed GOBIN) and ``cargo install`` (the managed root)
today: those are pointed at their ``aegis ... --plan`` command, the other tools at the
operator. A container ``pull``/``run``/``create`` is allowed only for an image pinned by
digest (a tag-only pull is pointed at ``aegis podman pull --pin --plan``).
Pure: no I/O.

Example:
    >>> container(["run", "--rm", "-it", "debian:12", "bash"]).rule
    'container.unpinned'
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from aegis.guard.argv import (
    ASK_OPERATOR,
    PLAN_CARGO,
    PLAN_GO,
    PLAN_NPM,
    PLAN_PIP,
    Match,
    find_verb,
    operand_indices,
    split_options,
)

_NPM_MUTATING = frozenset(
    {"install", "i", "in", "ins", "inst", "insta", "instal", "isnt", "isnta", "isntal"}
    | {"isntall", "add", "ci", "clean-install", "ic", "install-clean", "isntall-clean"}
    | {"install-test", "it", "install-ci-test", "cit", "clean-install-test", "sit"}
    | {"update", "up", "upgrade", "udpate", "rebuild", "rb", "link", "ln", "uninstall"}
    | {"unlink", "remove", "rm", "r", "un", "dedupe", "ddp", "prune", "create"}
)
_NPM_EXEC = frozenset({"exec", "x"})
_NPM_VALUE_OPTS = frozenset(
    {"--prefix", "--registry", "--cache", "--userconfig", "--globalconfig", "-w", "--workspace"}
    | {"--loglevel", "-C"}
)


_NPM_READ_ONLY = frozenset(
    {"ls", "list", "ll", "la", "view", "v", "info", "show", "search", "s", "se", "find"}
    | {"outdated", "run", "run-script", "rum", "urn", "test", "tst", "t", "start", "stop"}
    | {"restart", "config", "c", "get", "help", "explain", "why", "version", "pack", "doctor"}
    | {"whoami", "root", "bin", "prefix", "fund", "query", "sbom", "diff", "docs", "home"}
    | {"repo", "bugs", "ping", "cache", "completion", "help-search", "pkg"}
)
"""npm verbs that install nothing (with one of these first, later words are arguments)."""


def npm(args: Sequence[str]) -> Match | None:
    """``npm``: install-like verbs, ``exec``, ``audit fix``, ``init <initializer>``."""
    _, operands = split_options(args, _NPM_VALUE_OPTS)
    if not operands:
        return None
    index = find_verb(operands, _NPM_MUTATING | _NPM_EXEC, _NPM_READ_ONLY)
    verb = operands[0] if index is None else operands[index]
    if verb in _NPM_EXEC:
        return Match("npm.exec", f"'npm {verb}' downloads and runs package code", ASK_OPERATOR)
    mutating = verb in _NPM_MUTATING or (verb == "init" and len(operands) > 1)
    if verb == "audit" and "fix" in operands[1:2]:
        mutating = True
    if mutating:
        return Match(
            "npm.install",
            f"'npm {verb}' changes packages and runs their lifecycle scripts",
            PLAN_NPM if verb in ("install", "i", "add") else ASK_OPERATOR,
        )
    return None


def npx(args: Sequence[str]) -> Match | None:
    """``npx``: always downloads and runs code."""
    return Match("npm.exec", "npx downloads and runs package code", ASK_OPERATOR)


_YARN_MUTATING = frozenset(
    {"add", "install", "upgrade", "up", "remove", "link", "global", "dlx", "rebuild"}
)
_PNPM_MUTATING = frozenset(
    {"add", "install", "i", "update", "up", "upgrade", "remove", "rm", "un", "uninstall", "dlx"}
    | {"link", "ln", "rebuild", "rb", "import", "install-test", "it"}
)


def yarn(args: Sequence[str]) -> Match | None:
    """``yarn``: bare ``yarn`` and install-like verbs."""
    options, operands = split_options(args, _NPM_VALUE_OPTS)
    if not operands and not {"-h", "--help", "-v", "--version"} & set(options):
        return Match("npm.install", "a bare 'yarn' installs the project's packages", ASK_OPERATOR)
    index = find_verb(operands, _YARN_MUTATING, _JS_READ_ONLY)
    if index is not None:
        return Match("npm.install", f"'yarn {operands[index]}' changes packages", ASK_OPERATOR)
    return None


def pnpm(args: Sequence[str]) -> Match | None:
    """``pnpm``: install-like verbs and ``dlx``."""
    _, operands = split_options(args, _NPM_VALUE_OPTS)
    index = find_verb(operands, _PNPM_MUTATING, _JS_READ_ONLY)
    if index is not None:
        return Match("npm.install", f"'pnpm {operands[index]}' changes packages", ASK_OPERATOR)
    return None


_JS_READ_ONLY = _NPM_READ_ONLY | {"exec", "why", "licenses", "audit", "node", "workspaces"}


def pnpx(args: Sequence[str]) -> Match | None:
    """``pnpx``/``bunx``: always download and run code."""
    return Match("npm.exec", "pnpx/bunx download and run package code", ASK_OPERATOR)


_PIP_VALUE_OPTS = frozenset(
    {"--python", "--proxy", "--cache-dir", "--log", "--timeout", "--retries", "--cert"}
    | {"--client-cert", "--exists-action", "--trusted-host", "--src", "--root", "--prefix"}
)


_PIP_READ_ONLY = frozenset(
    {"list", "show", "freeze", "check", "config", "search", "cache", "index", "inspect"}
    | {"debug", "help", "hash", "download", "wheel", "completion"}
)


def pip(args: Sequence[str]) -> Match | None:
    """``pip``/``pip3``/``pip3.N``: install and uninstall."""
    _, operands = split_options(args, _PIP_VALUE_OPTS)
    index = find_verb(operands, ("install", "uninstall"), _PIP_READ_ONLY)
    if index is not None:
        verb = operands[index]
        instead = PLAN_PIP if verb == "install" else ASK_OPERATOR
        return Match("pip.install", f"'pip {verb}' changes Python packages directly", instead)
    return None


_PYTHON_VALUE_OPTS = frozenset({"-W", "-X", "-Q"})


def python(args: Sequence[str]) -> Match | None:
    """``python3 -m pip install ...`` (``-mpip``, ``-Im pip`` too): the pip rule on the rest."""
    i = 0
    while i < len(args):
        arg = args[i]
        i += 1
        if arg in _PYTHON_VALUE_OPTS:
            i += 1
            continue
        if not arg.startswith("-") or arg in ("-", "--"):
            return None  # a script, or stdin: not pip
        for pos, letter in enumerate(arg[1:], start=1):
            if letter == "c":
                return None  # -c PROGRAM
            if letter in "WX":
                i += 0 if arg[pos + 1 :] else 1
                break
            if letter == "m":
                module = arg[pos + 1 :] or (args[i] if i < len(args) else "")
                rest = args[i:] if arg[pos + 1 :] else args[i + 1 :]
                return pip(rest) if module == "pip" else None
    return None


def pipx(args: Sequence[str]) -> Match | None:
    """``pipx``: installs and runs of Python applications."""
    _, operands = split_options(args)
    if operands and operands[0] in {
        "install",
        "inject",
        "upgrade",
        "upgrade-all",
        "reinstall",
        "reinstall-all",
        "run",
        "runpip",
    }:
        return Match("pip.install", f"'pipx {operands[0]}' installs Python code", ASK_OPERATOR)
    return None


def uv(args: Sequence[str]) -> Match | None:
    """``uv``: ``pip install``, ``tool install``/``run``, ``add``, ``sync``."""
    _, operands = split_options(args, frozenset({"--directory", "--project", "--cache-dir"}))
    head = operands[:2]
    if head[:1] in (["add"], ["sync"]) or head in (
        ["pip", "install"],
        ["pip", "sync"],
        ["pip", "uninstall"],
        ["tool", "install"],
        ["tool", "run"],
        ["tool", "upgrade"],
    ):
        return Match("pip.install", f"'uv {' '.join(head)}' installs Python code", ASK_OPERATOR)
    return None


def uvx(args: Sequence[str]) -> Match | None:
    """``uvx``: always downloads and runs code."""
    return Match("pip.install", "uvx downloads and runs Python code", ASK_OPERATOR)


def gem(args: Sequence[str]) -> Match | None:
    """``gem``: install, update, uninstall."""
    _, operands = split_options(args)
    if operands and operands[0] in ("install", "update", "uninstall"):
        return Match("gem.install", f"'gem {operands[0]}' changes Ruby gems", ASK_OPERATOR)
    return None


def go(args: Sequence[str]) -> Match | None:
    """``go get``, ``go install``, ``go run pkg@version``."""
    _, operands = split_options(args, frozenset({"-C", "-o", "-tags", "-ldflags"}))
    if not operands:
        return None
    verb = operands[0]
    if verb in ("get", "install"):
        return Match("go.install", f"'go {verb}' downloads and builds modules", PLAN_GO)
    if verb == "run" and any("@" in o for o in operands[1:2]):
        return Match("go.install", "'go run pkg@version' downloads and runs code", ASK_OPERATOR)
    return None


def cargo(args: Sequence[str]) -> Match | None:
    """``cargo install`` (and ``binstall``)."""
    _, operands = split_options(args, frozenset({"-Z", "--config", "--color"}))
    operands = [o for o in operands if not o.startswith("+")]  # cargo +nightly install
    if operands and operands[0] in ("install", "binstall"):
        instead = PLAN_CARGO if operands[0] == "install" else ASK_OPERATOR
        return Match("cargo.install", f"'cargo {operands[0]}' builds and installs crates", instead)
    return None


def snap(args: Sequence[str]) -> Match | None:
    """``snap``: install, remove, refresh, revert."""
    options, operands = split_options(args)
    if not operands or (operands[0] == "refresh" and "--list" in options):
        return None
    if operands[0] in ("install", "remove", "refresh", "revert"):
        return Match("snap.install", f"'snap {operands[0]}' changes packages", ASK_OPERATOR)
    return None


def flatpak(args: Sequence[str]) -> Match | None:
    """``flatpak``: install, uninstall, update, remote-add."""
    _, operands = split_options(args)
    if operands and operands[0] in ("install", "uninstall", "update", "remote-add"):
        return Match("flatpak.install", f"'flatpak {operands[0]}' changes packages", ASK_OPERATOR)
    return None


# ---- containers ------------------------------------------------------------------------

# Patterns kept as text: re compiles (and caches) them on first use, so the guard hook
# does not compile at start-up what most command lines never need.
_DIGEST = r"@sha256:[0-9a-f]{64}$"
_CONTAINER_GLOBAL_VALUE_OPTS = frozenset(
    {"-H", "--host", "-c", "--context", "--config", "-l", "--log-level", "--tlscacert"}
    | {"--tlscert", "--tlskey", "--root", "--runroot", "--storage-driver", "--url"}
    | {"--connection", "--cgroup-manager", "--events-backend", "--namespace", "-n"}
)
_RUN_BOOL_OPTS = frozenset(
    {"-d", "--detach", "-i", "--interactive", "-t", "--tty", "--rm", "--privileged", "--init"}
    | {"-P", "--publish-all", "--read-only", "--no-healthcheck", "--oom-kill-disable", "-q"}
    | {"--quiet", "--help", "--all-tags", "-a", "--disable-content-trust", "--replace"}
    | {"--no-hosts", "--tls-verify", "--sig-proxy"}
)
"""Flags of ``run``/``create``/``pull`` that take no value; every other flag takes one."""
_CONTAINER_INSTEAD = (
    "pin the image by digest (IMAGE@sha256:<digest>) after the operator has reviewed it"
)
_PULL_INSTEAD = (
    "plan it instead: aegis podman pull <image> --pin --plan (or aegis docker pull; read-only: "
    "the plan pins the digest, then review, policy, sign and aegisd pull it by digest)"
)


_CONTAINER_VERBS = frozenset({"run", "create", "pull", "container", "image"})
_CONTAINER_READ_ONLY = frozenset(
    {"ps", "images", "inspect", "logs", "version", "info", "exec", "stats", "top", "events"}
    | {"history", "search", "login", "logout", "system", "network", "volume", "stop", "start"}
    | {"restart", "rm", "rmi", "kill", "cp", "diff", "export", "port", "wait", "attach"}
    | {"pause", "unpause", "rename", "update", "tag", "save", "help", "context", "compose"}
)


def _image_operand(args: Sequence[str]) -> str | None:
    """The image of ``run``/``create``/``pull`` arguments; None if none can be found."""
    i = 0
    while i < len(args):
        arg = args[i]
        i += 1
        if arg == "--":
            return args[i] if i < len(args) else None
        if arg.startswith("--"):
            if "=" not in arg and arg not in _RUN_BOOL_OPTS:
                i += 1
        elif arg.startswith("-") and len(arg) > 1:
            for pos, letter in enumerate(arg[1:], start=1):
                if f"-{letter}" not in _RUN_BOOL_OPTS:
                    if pos == len(arg) - 1:
                        i += 1
                    break
        else:
            return arg
    return None


def container(args: Sequence[str]) -> Match | None:
    """``docker``/``podman``/``nerdctl`` pull, run or create of an image without a digest."""
    indices = operand_indices(args, _CONTAINER_GLOBAL_VALUE_OPTS)
    operands = [args[i] for i in indices]
    found = find_verb(operands, _CONTAINER_VERBS, _CONTAINER_READ_ONLY)
    if found is None:
        return None
    idx = indices[found]
    verb, rest = args[idx], list(args[idx + 1 :])
    if verb in ("container", "image") and rest and rest[0] in ("run", "create", "pull"):
        verb, rest = rest[0], rest[1:]
    if verb not in ("run", "create", "pull"):
        return None
    image = _image_operand(rest)
    if image is None:
        return Match(
            "container.unpinned",
            f"'{verb}' with no image the guard can find (refused: cannot check it)",
            _CONTAINER_INSTEAD,
        )
    if re.search(_DIGEST, image):
        return None
    return Match(
        "container.unpinned",
        f"'{verb} {image}' uses an image not pinned by digest",
        _PULL_INSTEAD if verb == "pull" else _CONTAINER_INSTEAD,
    )
