"""Repository evidence: identity, Signed-By, keyring placement, InRelease signature,
freshness and approval, for each apt source (issue 3 "Repository evidence").

Identity is (URI, suite, component, signer fingerprint), never the Release
``Origin`` text (TESTBED section 8: a third-party repo can say ``Origin: Debian``).
The signature is checked with ``gpgv --status-fd 1`` against exactly the keyring
the source names (an armoured ``.asc`` or embedded block is dearmoured first; a
fingerprint Signed-By is checked against apt's trusted keyrings and must match the
signer). Release files come from apt's lists directory (what apt will install
from); when apt has none for a local ``file:``/``copy:`` source, or when planning
``apt-get update``, they are read from the repository itself, so a rejected
repository still yields evidence of why.

Approval and allowed package names come from the policy file's ``[[sources]]``
(:mod:`aegis.policy.config`); policy recomputes them and does not trust the plan.

The pure part is :func:`assess_release` (signature status lines, Release text,
time -> fields); :func:`collect_repository` is the edge.
"""

from __future__ import annotations

import base64
import hashlib
import stat
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from pathlib import Path

from aegis.analyze.evidence.sources import AptPaths, SourceEntry, lists_prefix, signed_by_tokens
from aegis.analyze.run import run_tool
from aegis.model import Repository

FREEZE_AFTER = timedelta(days=90)
"""Release without Valid-Until whose Date is older than this looks frozen.

Debian's own stable Release carries no Valid-Until and is re-dated at each point
release (every two to three months), so a shorter window would flag it routinely."""

GPGV = "/usr/bin/gpgv"


@dataclass(frozen=True)
class ReleaseFiles:
    """The release files found for one source."""

    inrelease: Path | None
    release: Path | None
    release_gpg: Path | None
    where: str
    """lists or repository."""


@dataclass(frozen=True)
class SignatureCheck:
    """gpgv's verdict."""

    status: str
    """good, bad, no-pubkey, unsigned, error, missing."""
    fingerprint: str | None
    text: str | None
    """The verified Release text (only when good) or the unverified body."""


def repository_id(uri: str, suite: str, component: str) -> str:
    """Stable id of a source within a plan (the fingerprint is evidence, not id)."""
    digest = hashlib.sha256(f"{uri}\n{suite}\n{component}".encode()).hexdigest()[:12]
    return f"repo-{digest}"


def dearmor(text: str) -> bytes:
    """Binary OpenPGP packets of every armoured block in ``text`` (like ``gpg --dearmor``)."""
    out = bytearray()
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        if lines[i].startswith("-----BEGIN PGP"):
            i += 1
            while i < len(lines) and lines[i].strip() and ":" in lines[i]:
                i += 1  # armor headers
            body: list[str] = []
            while i < len(lines) and not lines[i].startswith("-----END"):
                ln = lines[i].strip()
                if ln and not ln.startswith("="):
                    body.append(ln)
                i += 1
            out.extend(base64.b64decode("".join(body)))
        i += 1
    return bytes(out)


def parse_gpgv_status(status: str) -> tuple[str, str | None]:
    """gpgv ``--status-fd`` lines -> (good|bad|no-pubkey|error, primary fingerprint)."""
    valid: list[str] = []
    bad = nopub = False
    for line in status.splitlines():
        parts = line.split()
        if len(parts) < 2 or parts[0] != "[GNUPG:]":
            continue
        if parts[1] == "VALIDSIG" and len(parts) >= 3:
            valid.append((parts[11] if len(parts) >= 12 else parts[2]).upper())
        elif parts[1] == "BADSIG":
            bad = True
        elif parts[1] in ("NO_PUBKEY", "ERRSIG"):
            nopub = nopub or parts[1] == "NO_PUBKEY" or (len(parts) >= 8 and parts[7] == "9")
    if valid:
        return "good", valid[0]
    if bad:
        return "bad", None
    if nopub:
        return "no-pubkey", None
    return "error", None


def release_body(inrelease_text: str) -> str:
    """The cleartext of a clearsigned InRelease (unverified; for display only)."""
    lines = inrelease_text.splitlines()
    out: list[str] = []
    state = 0
    for ln in lines:
        if state == 0 and ln.startswith("-----BEGIN PGP SIGNED MESSAGE"):
            state = 1
        elif state == 1:
            if not ln.strip():
                state = 2
        elif state == 2:
            if ln.startswith("-----BEGIN PGP SIGNATURE"):
                break
            out.append(ln[2:] if ln.startswith("- ") else ln)
    return "\n".join(out) + "\n" if state else inrelease_text


def release_fields(text: str) -> dict[str, str]:
    """Top-level single-line fields of a Release file."""
    out: dict[str, str] = {}
    for ln in text.splitlines():
        if ln and ln[0] not in " \t" and ":" in ln:
            k, _, v = ln.partition(":")
            out.setdefault(k, v.strip())
    return out


def release_sha256(text: str) -> dict[str, str]:
    """``SHA256:`` section of a Release: path -> hex digest."""
    out: dict[str, str] = {}
    in_section = False
    for ln in text.splitlines():
        if not ln.startswith(" "):
            in_section = ln.startswith("SHA256:")
            continue
        if in_section:
            parts = ln.split()
            if len(parts) == 3:
                out[parts[2]] = parts[0].lower()
    return out


def _iso(value: str | None) -> str | None:
    if not value:
        return None
    try:
        dt = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return dt.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def assess_release(
    text: str | None, now: datetime
) -> tuple[str | None, str | None, bool, bool, str | None]:
    """(date, valid_until, expired, frozen, origin) from Release text at ``now``."""
    if text is None:
        return None, None, False, False, None
    fields = release_fields(text)
    date, until = _iso(fields.get("Date")), _iso(fields.get("Valid-Until"))
    fmt = "%Y-%m-%dT%H:%M:%SZ"
    expired = until is not None and datetime.strptime(until, fmt).replace(tzinfo=UTC) < now
    frozen = (
        until is None
        and date is not None
        and now - datetime.strptime(date, fmt).replace(tzinfo=UTC) > FREEZE_AFTER
    )
    return date, until, expired, frozen, fields.get("Origin")


# --- edges -----------------------------------------------------------------------


def find_release_files(
    entry: SourceEntry, paths: AptPaths, *, prefer_repository: bool
) -> ReleaseFiles:
    """Locate InRelease / Release / Release.gpg in the lists dir or a local repository."""

    def from_lists() -> ReleaseFiles:
        base = Path(paths.lists) / lists_prefix(entry.uri, entry.suite)

        def ok(p: Path) -> Path | None:
            return p if p.is_file() else None

        return ReleaseFiles(
            ok(Path(f"{base}InRelease")),
            ok(Path(f"{base}Release")),
            ok(Path(f"{base}Release.gpg")),
            "lists",
        )

    def from_repo() -> ReleaseFiles | None:
        scheme, sep, rest = entry.uri.partition(":")
        if not sep or scheme not in ("file", "copy"):
            return None
        root = Path("/" + rest.lstrip("/"))
        d = root / entry.suite if entry.suite.endswith("/") else root / "dists" / entry.suite

        def ok(p: Path) -> Path | None:
            return p if p.is_file() else None

        return ReleaseFiles(
            ok(d / "InRelease"), ok(d / "Release"), ok(d / "Release.gpg"), "repository"
        )

    lists = from_lists()
    if prefer_repository or (lists.inrelease is None and lists.release is None):
        repo = from_repo()
        if repo is not None:
            return repo
    return lists


def _trusted_keyrings(paths: AptPaths) -> list[Path]:
    out: list[Path] = []
    if paths.trusted != "/dev/null" and Path(paths.trusted).is_file():
        out.append(Path(paths.trusted))
    parts = Path(paths.trustedparts)
    if paths.trustedparts != "/dev/null" and parts.is_dir():
        out.extend(
            sorted(p for p in parts.iterdir() if p.suffix in (".gpg", ".asc") and p.is_file())
        )
    return out


def keyring_files(entry: SourceEntry, paths: AptPaths) -> list[Path]:
    """The keyring files apt would use for ``entry`` (embedded keys have none)."""
    form = entry.signed_by_form
    if form in ("keyring-path", "armored-path"):
        return [Path(t) for t in signed_by_tokens(entry.signed_by or "") if t.startswith("/")]
    if form in ("fingerprint", "none"):
        return _trusted_keyrings(paths)
    return []


def trusted_dirs(paths: AptPaths) -> tuple[str, ...]:
    """Directories whose keyrings count as trusted placement."""
    root = paths.root.rstrip("/")
    dirs = {
        paths.trustedparts,
        str(Path(paths.etc_dir) / "keyrings") + "/",
        f"{root}/usr/share/keyrings/",
        f"{root}/etc/apt/keyrings/",
    }
    return tuple(sorted(d for d in dirs if d != "/dev/null"))


def in_trusted_dir(path: Path, paths: AptPaths) -> bool:
    """The keyring sits directly in one of :func:`trusted_dirs`."""
    parent = str(path.parent).rstrip("/") + "/"
    return parent in trusted_dirs(paths)


def root_only_writable(path: Path) -> bool:
    """Owned by root and not group/other-writable, nor any ancestor directory
    (sticky directories such as /tmp are fine: others cannot replace root's entries)."""
    try:
        st = path.lstat()
        if stat.S_ISLNK(st.st_mode):
            return False
        if st.st_uid != 0 or st.st_mode & 0o022:
            return False
        cur = path.parent
        while True:
            sd = cur.stat()
            if sd.st_uid != 0 or (sd.st_mode & 0o022 and not sd.st_mode & stat.S_ISVTX):
                return False
            if cur.parent == cur:
                return True
            cur = cur.parent
    except OSError:
        return False


def verify_release(
    files: ReleaseFiles, entry: SourceEntry, paths: AptPaths, *, timeout_s: float
) -> SignatureCheck:
    """Check the release signature with gpgv against exactly the source's keyring."""
    if files.inrelease is None and files.release is None:
        return SignatureCheck("missing", None, None)
    if files.inrelease is None and files.release_gpg is None:
        assert files.release is not None
        return SignatureCheck("unsigned", None, files.release.read_text(errors="replace"))
    raw = files.inrelease.read_text(errors="replace") if files.inrelease else None
    unverified = (
        release_body(raw)
        if raw is not None
        else (files.release.read_text(errors="replace") if files.release else None)
    )
    with tempfile.TemporaryDirectory(prefix="aegis-gpgv-") as tmp:
        tdir = Path(tmp)
        keyrings: list[Path] = []
        for i, kr in enumerate(keyring_files(entry, paths)):
            if not kr.is_file():
                continue  # a FIFO or device is no keyring, and reading it could block for ever
            try:
                data = kr.read_bytes()
            except OSError:
                continue
            if data.lstrip().startswith(b"-----BEGIN PGP"):
                conv = tdir / f"k{i}.gpg"
                conv.write_bytes(dearmor(data.decode("ascii", errors="replace")))
                keyrings.append(conv)
            else:
                keyrings.append(kr)
        if entry.signed_by_form == "embedded":
            conv = tdir / "embedded.gpg"
            conv.write_bytes(dearmor(entry.signed_by or ""))
            keyrings.append(conv)
        if not keyrings:
            return SignatureCheck("no-pubkey", None, unverified)
        out = tdir / "Release.verified"
        home = tdir / "home"
        home.mkdir(mode=0o700)
        argv = [GPGV, "--homedir", str(home), "--status-fd", "1"]
        for kr in keyrings:
            argv += ["--keyring", str(kr)]
        if files.inrelease is not None:
            argv += ["--output", str(out), str(files.inrelease)]
        else:
            assert files.release_gpg is not None
            assert files.release is not None
            argv += [str(files.release_gpg), str(files.release)]
        res = run_tool(argv, apt_config=None, timeout_s=timeout_s)
        status, fpr = parse_gpgv_status(res.stdout)
        if status == "good" and res.returncode != 0:
            status = "error"
        if status == "good" and entry.signed_by_form == "fingerprint":
            allowed = {t.rstrip("!").upper() for t in signed_by_tokens(entry.signed_by or "")}
            if not any(fpr and fpr.endswith(a) for a in allowed):
                status, fpr = "no-pubkey", None
        if status == "good":
            text = out.read_text(errors="replace") if files.inrelease else unverified
            return SignatureCheck("good", fpr, text)
        return SignatureCheck(status, None, unverified)


def _index_hash_problems(
    files: ReleaseFiles, entry: SourceEntry, paths: AptPaths, release_text: str | None
) -> list[str]:
    """Packages indexes whose SHA-256 does not match the (signed) Release."""
    if release_text is None:
        return []
    wanted = release_sha256(release_text)
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
    for p, rel in pairs:
        if rel not in wanted:
            continue  # recompressed locally (e.g. .lz4): not comparable
        if hashlib.sha256(p.read_bytes()).hexdigest() != wanted[rel]:
            problems.append(f"hash-mismatch:{rel}")
    return problems


@dataclass(frozen=True)
class ApprovalFacts:
    approved: bool
    distribution: bool
    allowed_packages: tuple[str, ...]


def collect_repository(
    entry: SourceEntry,
    paths: AptPaths,
    now: datetime,
    approval: ApprovalLookup,
    *,
    timeout_s: float,
    prefer_repository: bool = False,
) -> tuple[Repository, ReleaseFiles]:
    """Gather all evidence about one source entry."""
    files = find_release_files(entry, paths, prefer_repository=prefer_repository)
    sig = verify_release(files, entry, paths, timeout_s=timeout_s)
    date, until, expired, frozen, origin = assess_release(sig.text, now)
    form = entry.signed_by_form
    krs = keyring_files(entry, paths) if form != "none" else []
    path_forms = form in ("keyring-path", "armored-path", "fingerprint")
    trusted_dir = bool(krs) and path_forms and all(in_trusted_dir(k, paths) for k in krs)
    root_only = (form == "embedded") or (bool(krs) and all(root_only_writable(k) for k in krs))
    if form == "embedded":
        trusted_dir = True  # the key lives in the root-owned source file itself
        root_only = root_only_writable(Path(entry.file))
    facts = approval(entry.uri, entry.suite, entry.component, sig.fingerprint)
    problems: list[str] = []
    if sig.status != "good":
        problems.append(f"signature-{sig.status}")
    if expired:
        problems.append("expired")
    if frozen:
        problems.append("frozen")
    if form == "none":
        problems.append("no-signed-by")
    elif form != "embedded":
        if not trusted_dir:
            problems.append("keyring-untrusted-dir")
        if not root_only:
            problems.append("keyring-writable")
    if entry.trusted_yes:
        problems.append("trusted-yes")
    if not facts.approved:
        problems.append("unapproved")
    problems.extend(_index_hash_problems(files, entry, paths, sig.text))
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
        signer_fingerprint=sig.fingerprint,
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
    )
    return repo, files


class ApprovalLookup:
    """Answers approval questions from the policy file's ``[[sources]]``.

    A missing or malformed policy file approves nothing (policy denies on its own).
    """

    def __init__(self, sources: Sequence[object] = ()) -> None:
        self._sources = tuple(sources)

    @classmethod
    def from_policy_file(cls, path: Path) -> ApprovalLookup:
        """Read ``[[sources]]`` from the policy file (see :mod:`aegis.policy.config`)."""
        try:
            from aegis.policy.config import load_policy_config

            return cls(load_policy_config(path).sources)
        except Exception:
            return cls(())

    def __call__(self, uri: str, suite: str, component: str, fpr: str | None) -> ApprovalFacts:
        from aegis.policy.config import match_source

        src = match_source(tuple(self._sources), uri, suite, component, fpr)  # type: ignore[arg-type]
        if src is None:
            return ApprovalFacts(False, False, ())
        return ApprovalFacts(True, src.distribution, tuple(src.packages))


def file_sha256(path: Path) -> str:
    """SHA-256 of a file, streamed."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def now_utc() -> datetime:  # pragma: no cover - trivial edge
    return datetime.now(UTC)


__all__ = [
    "ApprovalLookup",
    "ReleaseFiles",
    "SignatureCheck",
    "collect_repository",
    "dearmor",
    "file_sha256",
    "parse_gpgv_status",
    "repository_id",
]
