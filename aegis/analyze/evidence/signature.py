"""Release signature and keyring placement of an apt source (the gpgv edge).

:func:`verify_release` checks InRelease (or Release + Release.gpg) with
``gpgv --status-fd 1`` against exactly the keyring the source names: an armoured
``.asc`` or an embedded ``Signed-By`` block is dearmoured first into a private
temporary directory; a fingerprint ``Signed-By`` is checked against apt's trusted
keyrings and must match the signer. :func:`in_trusted_dir` and
:func:`root_only_writable` are the placement facts policy judges (a keyring anyone
but root may replace is no trust anchor).

Split out of :mod:`aegis.analyze.evidence.repositories`, which assembles these
facts with the Release dates and approval into one :class:`~aegis.model.Repository`.

Example::

    check = verify_release(files, entry, paths, timeout_s=30.0)
    check.status, check.fingerprint
"""

from __future__ import annotations

import stat
import tempfile
from pathlib import Path

from aegis.analyze.evidence.release import (
    ReleaseFiles,
    SignatureCheck,
    dearmor,
    parse_gpgv_status,
    release_body,
)
from aegis.analyze.evidence.sources import AptPaths, SourceEntry, signed_by_tokens
from aegis.analyze.run import run_tool

GPGV = "/usr/bin/gpgv"


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
    """True when only root can replace ``path``.

    The file is owned by root and not group/other-writable, nor is any ancestor
    directory (sticky directories such as /tmp are fine: others cannot replace
    root's entries). A symlink, or a path that cannot be read, is False.
    """
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


def _binary_keyrings(entry: SourceEntry, paths: AptPaths, tdir: Path) -> list[Path]:
    """The source's keyrings as gpgv reads them: armoured ones dearmoured into ``tdir``."""
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
    return keyrings


def _signer_allowed(entry: SourceEntry, fpr: str | None) -> bool:
    """A fingerprint ``Signed-By`` admits only the keys it names; other forms admit any."""
    if entry.signed_by_form != "fingerprint":
        return True
    allowed = {t.rstrip("!").upper() for t in signed_by_tokens(entry.signed_by or "")}
    return any(fpr and fpr.endswith(a) for a in allowed)


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
        keyrings = _binary_keyrings(entry, paths, tdir)
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
        if status == "good" and not _signer_allowed(entry, fpr):
            status, fpr = "no-pubkey", None
        if status == "good":
            text = out.read_text(errors="replace") if files.inrelease else unverified
            return SignatureCheck("good", fpr, text)
        return SignatureCheck(status, None, unverified)
