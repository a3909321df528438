"""``aegis policy sources``: the host's apt sources, their signers, and approving them.

The shipped policy approves no source, so every install is denied
``repo.unapproved`` until the operator lists the host's sources in ``[[sources]]``.
:func:`configured_sources` shows what is configured, exactly as the analyzer sees
it (``apt-config dump`` with Aegis's APT_CONFIG, both source formats, the Release
verified with gpgv against the source's own keyring: the same code paths as
:mod:`aegis.ecosystems.apt.plan`), and whether policy approves each source.

:func:`approve_configured` (root only) appends one ``[[sources]]`` entry for every
configured source that is not yet approved and whose Release verifies with its own
``Signed-By`` key from a root-only keyring in a trusted directory. The operator's
file keeps its text and comments: the entries are appended, the whole new text is
parsed and checked before it replaces the file atomically, and a second run finds
nothing new to write (idempotent).

An entry is ``distribution = true`` (may supply any package) only when its keyring
is this host's own distribution archive keyring
(``/usr/share/keyrings/<os-release ID>-archive-keyring.{gpg,pgp}``); any other
source is written with ``packages = []`` (may supply nothing) for the operator to
fill in. A vendor naming its keyring ``docker-archive-keyring.gpg`` does not become
a distribution source, and neither does a repository whose Release says
``Origin: Debian`` (identity is the signer, never the Origin text).

Example::

    listing = configured_sources(load_config(), datetime.now(UTC))
    [(s.repository.uri, s.approved_as) for s in listing.sources]
"""

from __future__ import annotations

import json
import os
import re
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from aegis.ecosystems.apt import parse as aptparse
from aegis.ecosystems.apt.apt_runner import APT_CONFIG_BIN, AptRunner
from aegis.ecosystems.apt.evidence.repositories import ApprovalLookup, collect_repository
from aegis.ecosystems.apt.evidence.sources import resolve_apt_paths, signed_by_tokens
from aegis.ecosystems.apt.state import configured_entries
from aegis.errors import EnvironmentFailure
from aegis.model import Repository
from aegis.policy.config import PolicyConfig, match_source, parse_policy_config
from aegis.policy.engine import check_config
from aegis.policy.fields import PolicyConfigError
from aegis.policy.load import load_policy_config
from aegis.workflow.files import write_atomic

if TYPE_CHECKING:
    from aegis.config import Config
    from aegis.ecosystems.apt.evidence.sources import AptPaths, SourceEntry

_OWN_KEY_FORMS = ("keyring-path", "armored-path", "fingerprint", "embedded")


class NotRootError(EnvironmentFailure):
    """``--approve-configured`` writes the root-owned policy file: root only (exit 7)."""


@dataclass(frozen=True)
class HostSource:
    """One configured apt source and what Aegis makes of it."""

    entry: SourceEntry
    repository: Repository
    """The analyzer's evidence (signature, signer, keyring placement, dates)."""
    approved_as: str | None
    """Name of the ``[[sources]]`` entry approving it, or None."""
    refusal: str | None
    """Why ``--approve-configured`` would not approve it (None: it would)."""
    distribution: bool
    """Its keyring is this host's distribution archive keyring."""


@dataclass(frozen=True)
class SourceListing:
    """Every configured source, and the policy file as read (or why it was unusable)."""

    sources: tuple[HostSource, ...]
    policy: PolicyConfig | None
    policy_error: str | None


def _apt_paths(cfg: Config) -> AptPaths:

    if cfg.apt_config is not None and not cfg.apt_config.is_file():
        # apt would fall back to the host's own configuration: another system's sources.
        raise EnvironmentFailure(
            f"the configured apt configuration {cfg.apt_config} is not a regular file",
            hint="point AEGIS_APT_CONFIG (apt_config) at an existing apt.conf",
        )
    dump = AptRunner(cfg).run(APT_CONFIG_BIN, "dump", cache=False)
    if not dump.ok:
        raise EnvironmentFailure(f"apt-config dump failed: {dump.stderr.strip()[-500:]}")
    return resolve_apt_paths(aptparse.parse_apt_config_dump(dump.stdout))


def _os_id(paths: AptPaths) -> str | None:
    """``ID`` of the os-release of apt's root (``debian``, ``ubuntu``), or None."""
    root = Path(paths.root)
    for rel in ("etc/os-release", "usr/lib/os-release"):
        try:
            text = (root / rel).read_text(encoding="utf-8", errors="replace")
        except OSError:
            continue
        for line in text.splitlines():
            key, _, value = line.partition("=")
            if key.strip() == "ID":
                value = value.strip().strip("\"'")
                return value if re.fullmatch(r"[a-z0-9._-]+", value) else None
    return None


def _is_distribution(entry: SourceEntry, repo: Repository, paths: AptPaths) -> bool:
    """The source's keyring is this host's own distribution archive keyring."""
    os_id = _os_id(paths)
    if os_id is None or repo.signed_by_form != "keyring-path" or not repo.keyring_root_only:
        return False

    keyrings = signed_by_tokens(entry.signed_by or "")
    wanted = {f"{os_id}-archive-keyring.gpg", f"{os_id}-archive-keyring.pgp"}
    shelf = Path(paths.root) / "usr/share/keyrings"
    return len(keyrings) == 1 and Path(keyrings[0]) in {shelf / n for n in wanted}


def _refusal(repo: Repository) -> str | None:
    """Why this source may not be approved automatically, or None."""
    if repo.signature != "good" or repo.signer_fingerprint is None:
        return f"its Release does not verify (signature {repo.signature})"
    if repo.trusted_yes:
        return "it is marked trusted=yes"
    if repo.signed_by_form not in _OWN_KEY_FORMS:
        return "it names no Signed-By key (any key apt trusts could sign it)"
    if not repo.keyring_trusted_dir:
        return "its keyring is outside apt's trusted key directories"
    if not repo.keyring_root_only:
        return "its keyring (or a directory above it) is writable by someone other than root"
    return None


def configured_sources(cfg: Config, now: datetime) -> SourceListing:
    """List every configured apt source with its verified signer and approval."""
    try:
        policy: PolicyConfig | None = load_policy_config(cfg.policy_path)
        error = None
    except PolicyConfigError as e:
        policy, error = None, e.message
    paths = _apt_paths(cfg)
    entries = configured_entries(paths)
    lookup = (
        ApprovalLookup(
            policy.sources,
            clock_skew=timedelta(seconds=policy.thresholds.clock_skew_s),
            freeze_after_s=policy.thresholds.freeze_after_s,
        )
        if policy is not None
        else ApprovalLookup(())
    )
    timeout = float(cfg.apt_timeout_s)
    with ThreadPoolExecutor(max_workers=4) as pool:
        repos = list(
            pool.map(
                lambda e: collect_repository(e, paths, now, lookup, timeout_s=timeout)[0],
                entries,
            )
        )
    out: list[HostSource] = []
    for entry, repo in zip(entries, repos, strict=True):
        matched = (
            match_source(policy, repo.uri, repo.suite, repo.component, repo.signer_fingerprint)
            if policy is not None
            else None
        )
        out.append(
            HostSource(
                entry=entry,
                repository=repo,
                approved_as=matched.name if matched is not None else None,
                refusal=_refusal(repo),
                distribution=_is_distribution(entry, repo, paths),
            )
        )
    return SourceListing(tuple(out), policy, error)


def _entry_name(repo: Repository, taken: set[str]) -> str:
    host_path = repo.uri.split("://", 1)[-1]
    base = re.sub(r"[^A-Za-z0-9.+-]+", "-", f"{host_path} {repo.suite} {repo.component}")
    base = base.strip("-")[:100] or "source"
    name, n = base, 2
    while name in taken:
        name, n = f"{base}-{n}", n + 1
    taken.add(name)
    return name


def _toml_entry(name: str, source: HostSource) -> str:
    repo = source.repository

    # JSON string escapes are valid TOML basic-string escapes; ensure_ascii keeps
    # anything odd in a URI as \\uXXXX rather than raw text in the operator's file.
    def q(value: str) -> str:
        return json.dumps(value, ensure_ascii=True)

    lines = [
        "",
        f"# added by 'aegis policy sources --approve-configured' from {q(source.entry.file)}",
        "[[sources]]",
        f"name = {q(name)}",
        f"uri = {q(repo.uri)}",
        f"suite = {q(repo.suite)}",
        f"component = {q(repo.component)}",
        f"signer_fingerprint = {q(repo.signer_fingerprint or '')}",
    ]
    if source.distribution:
        lines.append("distribution = true")
    else:
        lines.append("packages = []  # may supply nothing until you list its package names")
    return "\n".join(lines) + "\n"


@dataclass(frozen=True)
class Approval:
    """What ``--approve-configured`` did: entries written, sources left alone."""

    path: Path
    added: tuple[tuple[str, HostSource], ...]
    skipped: tuple[tuple[HostSource, str], ...]


def approve_configured(cfg: Config, now: datetime) -> Approval:
    """Append ``[[sources]]`` entries for the configured sources that verify (root only).

    Raises:
        NotRootError: not run as root (the policy file is root's).
        PolicyConfigError: the policy file is absent or malformed (nothing is written).
        EnvironmentFailure: apt-config failed, or the file cannot be written.
    """
    if os.geteuid() != 0:
        raise NotRootError(
            "'aegis policy sources --approve-configured' writes the policy file and runs "
            "as root only; nothing was written",
            hint="run 'sudo aegis policy sources --approve-configured', or list the "
            "sources with 'aegis policy sources' and ask the operator",
        )
    path = cfg.policy_path
    load_policy_config(path)  # absent or malformed: refuse before looking at anything else
    listing = configured_sources(cfg, now)
    assert listing.policy is not None
    taken = {s.name for s in listing.policy.sources}
    added: list[tuple[str, HostSource]] = []
    skipped: list[tuple[HostSource, str]] = []
    for source in listing.sources:
        if source.approved_as is not None:
            skipped.append((source, f"already approved as {source.approved_as!r}"))
        elif source.refusal is not None:
            skipped.append((source, source.refusal))
        else:  # configured_entries already keeps one entry per (uri, suite, component)
            added.append((_entry_name(source.repository, taken), source))
    if added:
        _append_entries(path, "".join(_toml_entry(n, s) for n, s in added))
    return Approval(path, tuple(added), tuple(skipped))


def _append_entries(path: Path, block: str) -> None:
    """Append ``block`` to the policy file; the result must parse before it replaces it."""
    raw = path.read_bytes()
    text = raw.decode("utf-8")
    new_text = text + ("" if text.endswith("\n") or not text else "\n") + block
    try:
        check_config(parse_policy_config(new_text))
    except PolicyConfigError as e:
        raise PolicyConfigError(
            f"{path}: the file would not parse with the new [[sources]] entries "
            f"({e.message}); nothing was written",
            hint="a 'sources = [...]' array written inline cannot be extended: "
            "convert it to [[sources]] tables",
        ) from e
    st = path.stat()
    write_atomic(path, new_text.encode("utf-8"), mode=st.st_mode & 0o7777)
    # The replacement is root's new file: give back the owner and group (a policy file
    # readable by group aegis must stay so, or every agent's 'aegis policy' breaks).
    try:
        os.chown(path, st.st_uid, st.st_gid, follow_symlinks=False)
    except OSError as e:
        raise EnvironmentFailure(
            f"{path} was rewritten but its owner could not be restored ({e.strerror})",
            hint=f"chown {st.st_uid}:{st.st_gid} {path}",
        ) from e
    load_policy_config(path)
