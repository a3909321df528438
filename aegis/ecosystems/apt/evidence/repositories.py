"""Repository evidence for each apt source (issue 3 "Repository evidence").

Per source: identity, Signed-By, keyring placement, InRelease signature,
freshness and approval.

Identity is (URI, suite, component, signer fingerprint), never the Release
``Origin`` text (docs/testing.md: a third-party repo can say ``Origin: Debian``).
The signature is checked by the verifier this host's apt uses (sqv under apt's
Sequoia policy on apt 3, gpgv otherwise; docs/apt-trust.md) against exactly the
keyring the source names (an armoured ``.asc`` or embedded block is dearmoured
first; a fingerprint Signed-By is checked against apt's trusted keyrings and must
match the signer). The signed Suite and Codename, the verifier and its policy are
recorded; weak hash sections, a future Date and a suite mismatch are problems.
Release files come from apt's lists directory (what apt will install from); when
apt has none for a local ``file:``/``copy:`` source, or when planning
``apt-get update``, they are read from the repository itself, so a rejected
repository still yields evidence of why.

Approval and allowed package names come from the policy file's ``[[sources]]``
(:mod:`aegis.policy.config`); policy recomputes them and does not trust the plan.

This module assembles one :class:`~aegis.model.Repository` per source
(:func:`collect_repository`). The pure Release parsing is in
:mod:`aegis.ecosystems.apt.evidence.release`; the signature check and keyring placement are
in :mod:`aegis.ecosystems.apt.evidence.signature`.

Example::

    repo, files = collect_repository(entry, paths, now, ApprovalLookup(()), timeout_s=30.0)
    repo.problems  # ('unapproved',) for a signed source policy does not list
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from aegis.ecosystems.apt.evidence.release import (
    DEFAULT_CLOCK_SKEW,
    FREEZE_AFTER,
    ReleaseFiles,
    SignatureCheck,
    assess_release,
    compare_with_lists,
    release_fields,
    release_hashes,
    release_problems,
)
from aegis.ecosystems.apt.evidence.signature import (
    in_trusted_dir,
    keyring_files,
    root_only_writable,
    verify_release,
)
from aegis.ecosystems.apt.evidence.sources import AptPaths, SourceEntry, apt_true, lists_prefix
from aegis.ecosystems.apt.evidence.verifier import SplitError, Verifier, split_clearsigned
from aegis.model import Repository
from aegis.policy.config import freeze_after_s as source_freeze_after_s
from aegis.policy.config import match_source
from aegis.policy.load import load_policy_config


def repository_id(uri: str, suite: str, component: str) -> str:
    """Stable id of a source within a plan (the fingerprint is evidence, not id)."""
    digest = hashlib.sha256(f"{uri}\n{suite}\n{component}".encode()).hexdigest()[:12]
    return f"repo-{digest}"


def _file_or_none(path: Path) -> Path | None:
    return path if path.is_file() else None


def lists_release_files(entry: SourceEntry, paths: AptPaths) -> ReleaseFiles:
    """The release files apt keeps for ``entry`` in its lists directory (None: absent)."""
    base = Path(paths.lists) / lists_prefix(entry.uri, entry.suite)
    return ReleaseFiles(
        _file_or_none(Path(f"{base}InRelease")),
        _file_or_none(Path(f"{base}Release")),
        _file_or_none(Path(f"{base}Release.gpg")),
        "lists",
    )


def lists_release_text(entry: SourceEntry, paths: AptPaths) -> str | None:
    """The Release text in apt's lists (apt verified it when it stored it), or None.

    An InRelease is split as apt splits it; one that does not split is not read.
    """
    files = lists_release_files(entry, paths)
    try:
        if files.inrelease is not None:
            return split_clearsigned(files.inrelease.read_bytes())[0].decode(errors="replace")
        if files.release is not None:
            return files.release.read_text(errors="replace")
    except (OSError, SplitError):
        return None
    return None


def lists_behind_repository(entry: SourceEntry, paths: AptPaths) -> bool:
    """Whether apt's lists hold another Release than a local (``file:``) repository.

    The repository moved on and apt's lists did not follow: the last update was
    refused (apt keeps the old lists) or has not run since.
    """
    lists = lists_release_files(entry, paths)
    repo = find_release_files(entry, paths, prefer_repository=True)
    if repo.where != "repository" or (lists.inrelease or lists.release) is None:
        return False

    def data(files: ReleaseFiles) -> bytes | None:
        path = files.inrelease or files.release
        try:
            return path.read_bytes() if path is not None else None
        except OSError:
            return None

    return data(lists) != data(repo)


def find_release_files(
    entry: SourceEntry, paths: AptPaths, *, prefer_repository: bool
) -> ReleaseFiles:
    """Locate InRelease / Release / Release.gpg in the lists dir or a local repository."""

    def from_repo() -> ReleaseFiles | None:
        scheme, sep, rest = entry.uri.partition(":")
        if not sep or scheme not in ("file", "copy"):
            return None
        root = Path("/" + rest.lstrip("/"))
        d = root / entry.suite if entry.suite.endswith("/") else root / "dists" / entry.suite
        return ReleaseFiles(
            _file_or_none(d / "InRelease"),
            _file_or_none(d / "Release"),
            _file_or_none(d / "Release.gpg"),
            "repository",
        )

    lists = lists_release_files(entry, paths)
    if prefer_repository or (lists.inrelease is None and lists.release is None):
        repo = from_repo()
        if repo is not None:
            return repo
    return lists


def _index_hash_problems(
    files: ReleaseFiles, entry: SourceEntry, paths: AptPaths, release_text: str | None
) -> list[str]:
    """Packages indexes whose SHA-256 (or SHA-512) does not match the (signed) Release."""
    if release_text is None:
        return []
    wanted = release_hashes(release_text, "SHA256")
    wanted512 = release_hashes(release_text, "SHA512")
    problems: list[str] = []
    comp = entry.component
    if files.where == "repository":
        assert (files.inrelease or files.release) is not None
        base = (files.inrelease or files.release).parent  # type: ignore[union-attr]
        candidates = sorted(base.glob(f"{comp}/binary-*/Packages*")) if comp else []
        pairs = [(p, str(p.relative_to(base))) for p in candidates]
    else:
        prefix = lists_prefix(entry.uri, entry.suite) + (f"{comp}_" if comp else "")
        pairs = []
        for p in sorted(Path(paths.lists).glob(prefix + "binary-*_Packages*")):
            rel = p.name[len(prefix) :].replace("_", "/")
            pairs.append((p, f"{comp}/{rel}" if comp else rel))
    by_hash = files.where == "repository" and _uses_by_hash(entry, paths, release_text)
    plain_first = by_hash and Path(paths.methods, "sqv").is_file()
    for p, rel in pairs:
        # Neither listed: recompressed locally (e.g. .lz4), or listed only with
        # MD5Sum/SHA1, which release_problems names (weak-index-hash).
        src = p
        if by_hash and not (plain_first and p.name == "Packages"):
            src = _by_hash_file(p, rel, wanted, wanted512)
        if rel in wanted:
            bad = hashlib.sha256(src.read_bytes()).hexdigest() != wanted[rel]
        elif rel in wanted512:
            bad = hashlib.sha512(src.read_bytes()).hexdigest() != wanted512[rel]
        else:
            continue
        if bad:
            problems.append(f"hash-mismatch:{rel}")
    return problems


_HEX = re.compile(r"[0-9a-f]{64,128}")


def _uses_by_hash(entry: SourceEntry, paths: AptPaths, release_text: str) -> bool:
    """Whether apt fetches this source's indexes by hash (``Acquire::By-Hash``).

    The source's ``by-hash`` option wins over apt's setting; ``force`` always, a yes word
    only when the Release says ``Acquire-By-Hash: yes``, anything else never.
    """
    option = next((v for k, v in entry.options if k == "by-hash"), paths.by_hash)
    if option.strip().lower() == "force":
        return True
    return apt_true(option) and apt_true(release_fields(release_text).get("Acquire-By-Hash", ""))


def _by_hash_file(plain: Path, rel: str, sha256: dict[str, str], sha512: dict[str, str]) -> Path:
    """The file apt downloads for ``rel`` on a by-hash mirror, if the mirror has it.

    apt names it by the strongest hash the Release gives (``by-hash/SHA512/<hex>``
    before ``SHA256``), so stale plain files beside it are not what apt reads. Without
    that object the plain file is judged (apt's fallback; never looser).

    apt 3 (the apt with an ``sqv`` method) sends the plain path along
    (``Alternate-Paths``) and its ``file:`` method then hands over the uncompressed
    ``Packages`` lying beside it instead of the object: for a local repository there,
    the plain uncompressed file is what apt reads, and is judged as such.
    """
    kind, digest = ("SHA512", sha512[rel]) if rel in sha512 else ("SHA256", sha256.get(rel))
    if digest is None or not _HEX.fullmatch(digest):
        return plain  # a digest that is no hex string names no object (nor a path elsewhere)
    obj = plain.parent / "by-hash" / kind / digest
    return obj if obj.is_file() else plain


def _source_problems(entry: SourceEntry, *, trusted_dir: bool, root_only: bool) -> list[str]:
    """Problems of the source entry itself: its Signed-By keyring and trusted= option."""
    out: list[str] = []
    form = entry.signed_by_form
    if form == "none":
        out.append("no-signed-by")
    elif form != "embedded":
        if not trusted_dir:
            out.append("keyring-untrusted-dir")
        if not root_only:
            out.append("keyring-writable")
    if entry.trusted_yes:
        out.append("trusted-yes")
    if entry.trusted_no:
        out.append("trusted-no")
    return out


def _lists_problems(
    entry: SourceEntry,
    paths: AptPaths,
    files: ReleaseFiles,
    sig: SignatureCheck,
    update: bool,
) -> list[str]:
    """The Release against apt's lists: what an update changes, or that apt has none.

    Update plans compare the Release the update would fetch with the lists' copy
    (:func:`~aegis.ecosystems.apt.evidence.release.compare_with_lists`); other plans name a
    source apt has no lists for (``no-lists``: never updated, or its last update was
    refused; the repository's own evidence beside it says why when Aegis can read it).
    """
    if not update:
        return [] if files.where == "lists" and (files.inrelease or files.release) else ["no-lists"]
    if files.where != "repository" or sig.status != "good" or sig.text is None:
        return []
    old = lists_release_text(entry, paths)
    return compare_with_lists(sig.text, old) if old is not None else []


@dataclass(frozen=True)
class ApprovalFacts:
    approved: bool
    distribution: bool
    allowed_packages: tuple[str, ...]
    freeze_after_s: int = int(FREEZE_AFTER.total_seconds())
    """The source's freeze window from policy (0: never frozen)."""


def collect_repository(
    entry: SourceEntry,
    paths: AptPaths,
    now: datetime,
    approval: ApprovalLookup,
    *,
    timeout_s: float,
    prefer_repository: bool = False,
    verifier: Verifier | None = None,
) -> tuple[Repository, ReleaseFiles]:
    """Gather all evidence about one source entry."""
    files = find_release_files(entry, paths, prefer_repository=prefer_repository)
    sig = verify_release(files, entry, paths, timeout_s=timeout_s, verifier=verifier)
    # Any key that made a good signature may be the approved one (verifiers differ in
    # the order they list several signers); otherwise the first is recorded.
    signer = next(
        (
            f
            for f in sig.fingerprints
            if approval(entry.uri, entry.suite, entry.component, f).approved
        ),
        sig.fingerprint,
    )
    facts = approval(entry.uri, entry.suite, entry.component, signer)
    window = timedelta(seconds=facts.freeze_after_s)
    date, until, expired, frozen, origin = assess_release(sig.text, now, window)
    form = entry.signed_by_form
    krs = keyring_files(entry, paths) if form != "none" else []
    path_forms = form in ("keyring-path", "armored-path", "fingerprint")
    trusted_dir = bool(krs) and path_forms and all(in_trusted_dir(k, paths) for k in krs)
    root_only = (form == "embedded") or (bool(krs) and all(root_only_writable(k) for k in krs))
    if form == "embedded":
        trusted_dir = True  # the key lives in the root-owned source file itself
        root_only = root_only_writable(Path(entry.file))
    problems: list[str] = []
    if sig.status != "good":
        problems.append(f"signature-{sig.status}")
    if sig.malformed:
        problems.append(f"malformed-signed-file:{sig.malformed}")
    if expired:
        problems.append("expired")
    if frozen:
        problems.append("frozen")
    problems.extend(_source_problems(entry, trusted_dir=trusted_dir, root_only=root_only))
    if not facts.approved:
        problems.append("unapproved")
    problems.extend(_index_hash_problems(files, entry, paths, sig.text))
    problems.extend(release_problems(sig.text, now, approval.clock_skew))
    problems.extend(sig.weak)
    signed = release_fields(sig.text or "") if sig.status == "good" else {}
    suite, codename = signed.get("Suite"), signed.get("Codename")
    stated = {v for v in (suite, codename) if v}  # apt compares only what is stated
    if stated and not entry.suite.endswith("/") and entry.suite not in stated:
        problems.append(f"suite-mismatch:{suite or '-'}/{codename or '-'}")
    problems.extend(_lists_problems(entry, paths, files, sig, prefer_repository))
    repo = Repository(
        id=repository_id(entry.uri, entry.suite, entry.component),
        uri=entry.uri,
        suite=entry.suite,
        component=entry.component,
        source_entry=entry.one_line(),
        source_file=entry.file,
        signed_by_form=form,
        signed_by=None if form == "embedded" else entry.signed_by,
        keyring_trusted_dir=trusted_dir,
        keyring_root_only=root_only,
        signature=sig.status,
        signer_fingerprint=signer,
        date=date,
        valid_until=until,
        expired=expired,
        frozen=frozen,
        trusted_yes=entry.trusted_yes,
        distribution=facts.distribution,
        approved=facts.approved,
        allowed_packages=facts.allowed_packages,
        origin_text=origin,
        problems=tuple(problems),
        verifier=sig.verifier,
        verifier_policy=sig.policy,
        signed_suite=suite,
        signed_codename=codename,
    )
    return repo, files


class ApprovalLookup:
    """Answers approval questions from the policy file's ``[[sources]]``.

    A missing or malformed policy file approves nothing (policy denies on its own)
    and leaves the default freeze window.
    """

    def __init__(
        self,
        sources: Sequence[object] = (),
        clock_skew: timedelta = DEFAULT_CLOCK_SKEW,
        freeze_after_s: int = int(FREEZE_AFTER.total_seconds()),
    ) -> None:
        self._sources = tuple(sources)
        self.clock_skew = clock_skew
        """``thresholds.clock_skew_s``: how far ahead a Release Date may be."""
        self._freeze_after_s = freeze_after_s

    @classmethod
    def from_policy_file(cls, path: Path) -> ApprovalLookup:
        """``[[sources]]`` and the clock skew of the policy file (:mod:`aegis.policy.config`)."""
        try:
            conf = load_policy_config(path)
            return cls(
                conf.sources,
                timedelta(seconds=conf.thresholds.clock_skew_s),
                conf.thresholds.freeze_after_s,
            )
        except Exception:
            return cls(())

    def __call__(self, uri: str, suite: str, component: str, fpr: str | None) -> ApprovalFacts:
        """Whether the source with this identity is approved, and what it may supply."""
        src = match_source(tuple(self._sources), uri, suite, component, fpr)  # type: ignore[arg-type]
        window = source_freeze_after_s(src, self._freeze_after_s)
        if src is None:
            return ApprovalFacts(False, False, (), window)
        return ApprovalFacts(True, src.distribution, tuple(src.packages), window)


def file_sha256(path: Path) -> str:
    """SHA-256 of a file, streamed."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


__all__ = [
    "ApprovalLookup",
    "collect_repository",
    "file_sha256",
    "find_release_files",
    "repository_id",
]
