"""Release signature and keyring placement of an apt source (the verifier edge).

:func:`verify_release` checks InRelease (or Release + Release.gpg) with the verifier
this host's apt uses (:mod:`aegis.ecosystems.apt.evidence.verifier`: sqv under apt's Sequoia
policy on apt 3, ``gpgv --status-fd 1`` judged whole otherwise) on the message and
detached signature split as apt splits them, against exactly the keyring the source
names: an armoured
``.asc`` or an embedded ``Signed-By`` block is dearmoured first into a private
temporary directory; a fingerprint ``Signed-By`` is checked against apt's trusted
keyrings and must match the signer. :func:`in_trusted_dir` and
:func:`root_only_writable` are the placement facts policy judges (a keyring anyone
but root may replace is no trust anchor).

Split out of :mod:`aegis.ecosystems.apt.evidence.repositories`, which assembles these
facts with the Release dates and approval into one :class:`~aegis.model.Repository`.

Example::

    check = verify_release(files, entry, paths, timeout_s=30.0)
    check.status, check.fingerprint
"""

from __future__ import annotations

import os
import stat
import tempfile
from collections.abc import Callable
from contextlib import ExitStack
from datetime import UTC, datetime, timedelta
from pathlib import Path

from aegis.ecosystems.apt.evidence.gpgv_status import judge_gpgv_status
from aegis.ecosystems.apt.evidence.release import (
    ReleaseFiles,
    SignatureCheck,
    dearmor,
    release_body,
    release_date,
)
from aegis.ecosystems.apt.evidence.sources import AptPaths, SourceEntry, signed_by_tokens
from aegis.ecosystems.apt.evidence.verifier import (
    SplitError,
    Verifier,
    check_detached_signature,
    choose_verifier,
    split_clearsigned,
    sqv_outcome,
)
from aegis.ecosystems.apt.run import run_tool


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


MAX_LINK_HOPS = 4
"""Symlinks followed for one keyring (trixie's layout needs one); more is refused."""


def _holder_ok(st: os.stat_result) -> bool:
    """A directory only root can change entries in (sticky: others cannot replace root's)."""
    if not stat.S_ISDIR(st.st_mode) or st.st_uid != 0:
        return False
    return not st.st_mode & 0o022 or bool(st.st_mode & stat.S_ISVTX)


def root_only_writable(path: Path) -> bool:
    """True when only root can replace ``path`` or anything it resolves through.

    The path is walked one component at a time, following symlinks (at most
    :data:`MAX_LINK_HOPS`): every directory, every link and the final file must be
    owned by root, every directory holding any of them writable by root alone (or
    sticky), and the final file a regular file not writable by group or others.
    trixie ships ``debian-archive-keyring.gpg -> debian-archive-keyring.pgp``; a
    link into a writable place, a dangling link or a loop is False, as is any path
    that cannot be read.
    """
    try:
        pending = [c for c in str(path).split("/") if c not in ("", ".")]
        if not str(path).startswith("/") or not _holder_ok(os.lstat("/")):
            return False
        cur, hops = "/", 0
        while pending:
            name = pending.pop(0)
            if name == "..":
                cur = os.path.dirname(cur.rstrip("/")) or "/"
                continue
            holder = os.lstat(cur)
            if not _holder_ok(holder):
                return False
            full = os.path.join(cur, name)
            st = os.lstat(full)
            if st.st_uid != 0:
                return False
            if stat.S_ISLNK(st.st_mode):
                hops += 1
                if hops > MAX_LINK_HOPS:
                    return False
                target = os.readlink(full)
                if target.startswith("/"):
                    cur = "/"
                pending = [c for c in target.split("/") if c not in ("", ".")] + pending
                continue
            if pending:
                if not stat.S_ISDIR(st.st_mode):
                    return False
                cur = full
                continue
            return stat.S_ISREG(st.st_mode) and not st.st_mode & 0o022
        return False  # the path named a directory
    except OSError:
        return False


_KEY_PACKET_STARTS = (0x98, 0x99, 0xC6)
"""Leading byte of an OpenPGP public-key packet, as apt checks it (apt-pkg/contrib/gpgv.cc)."""


def _binary_keyrings(
    entry: SourceEntry, paths: AptPaths, scratch: Callable[[], Path]
) -> list[Path]:
    """The source's keyrings as gpgv reads them: armoured ones dearmoured into ``scratch()``."""
    keyrings: list[Path] = []
    for i, kr in enumerate(keyring_files(entry, paths)):
        if not kr.is_file():
            continue  # a FIFO or device is no keyring, and reading it could block for ever
        try:
            data = kr.read_bytes()
        except OSError:
            continue
        if data.lstrip().startswith(b"-----BEGIN PGP"):
            conv = scratch() / f"k{i}.gpg"
            conv.write_bytes(dearmor(data.decode("ascii", errors="replace")))
            keyrings.append(conv)
        elif data[:1] and data[0] in _KEY_PACKET_STARTS:
            keyrings.append(kr)
        # else: empty or not a keyring; both apt methods skip it ("unsupported filetype")
        # rather than let one stray file in trusted.gpg.d fail every verification.
    if entry.signed_by_form == "embedded":
        conv = scratch() / "embedded.gpg"
        conv.write_bytes(dearmor(entry.signed_by or ""))
        keyrings.append(conv)
    return keyrings


def _allowed_fingerprints(entry: SourceEntry) -> tuple[str, ...]:
    """The fingerprint ``Signed-By`` tokens, upper-cased, ``!`` kept (empty: any key).

    How they admit a signer depends on the verifier, as in apt: gpgv's method reads
    ``!`` and subkeys (:func:`~aegis.ecosystems.apt.evidence.gpgv_status.signed_by_admits`),
    the sqv method compares each token with sqv's signer line as it is.
    """
    if entry.signed_by_form in ("embedded", "none"):
        return ()
    # apt splits Signed-By into keyrings ("/...") and fingerprints (everything else):
    # fingerprints beside keyring paths still restrict which key in them may sign.
    return tuple(t.upper() for t in signed_by_tokens(entry.signed_by or "") if t[0] != "/")


def _signed_parts(files: ReleaseFiles, stack: ExitStack) -> tuple[Path, Path] | str:
    """(detached signature, message) to verify, or why there are none (split error).

    An InRelease's two parts are anonymous in-memory files (``memfd``), named
    ``/dev/fd/N`` for the verifier, which inherits them: nothing is written to disk and no
    directory is made and removed per repository (that cost more than the verifier).
    """
    if files.inrelease is not None:
        try:
            message, sig = split_clearsigned(files.inrelease.read_bytes())
        except SplitError as exc:
            return f"InRelease {exc}"
        return _memfile(stack, "Release.sig", sig), _memfile(stack, "Release.msg", message)
    assert files.release is not None
    assert files.release_gpg is not None
    try:
        check_detached_signature(files.release_gpg.read_bytes())
    except SplitError as exc:
        return f"Release.gpg {exc}"
    return files.release_gpg, files.release


def _memfile(stack: ExitStack, name: str, data: bytes) -> Path:
    """``data`` in an anonymous in-memory file, closed with ``stack``; its /dev/fd path."""
    fd = os.memfd_create(f"aegis-{name}", os.MFD_CLOEXEC)
    stack.callback(os.close, fd)
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]
    return Path(f"/dev/fd/{fd}")


def _fds(parts: tuple[Path, Path]) -> tuple[int, ...]:
    """The descriptors behind ``/dev/fd/N`` parts, for the verifier to inherit."""
    return tuple(int(p.name) for p in parts if str(p.parent) == "/dev/fd")


BACKDATE_SLACK = timedelta(days=1)


def _not_before(message: Path) -> list[str]:
    """``--not-before`` for sqv: no signature made long before the Release's own Date.

    sqv judges a key at the signature's creation time, so a signature backdated to
    when a since-expired (or revoked-later) key was valid passes it, and apt 3 with
    it; gpgv reports such a key as EXPKEYSIG, which apt refuses. A real archive signs
    its Release after writing its Date; a day of slack covers clocks. (A backdated
    Date itself is caught by the freeze and Valid-Until checks.) Stricter than apt 3.
    """
    date = release_date(message.read_text(errors="replace"))
    if date is None:
        return []
    when = datetime.strptime(date, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC) - BACKDATE_SLACK
    return ["--not-before", when.strftime("%Y-%m-%dT%H:%M:%SZ")]


def _run_verifier(
    verifier: Verifier,
    keyrings: list[Path],
    parts: tuple[Path, Path],
    allowed: tuple[str, ...],
    *,
    scratch: Callable[[], Path],
    timeout_s: float,
) -> tuple[str, tuple[str, ...], tuple[str, ...], str]:
    """(status, good signers' fingerprints, weaknesses, detail) from one run of ``verifier``."""
    sig, msg = parts
    rings = [a for kr in keyrings for a in ("--keyring", str(kr))]
    if verifier.tool == "sqv":
        env = {"SEQUOIA_CRYPTO_POLICY": verifier.policy} if verifier.policy else None
        res = run_tool(
            [verifier.path, *rings, *_not_before(msg), "--", str(sig), str(msg)],
            apt_config=None,
            timeout_s=timeout_s,
            extra_env=env,
            pass_fds=_fds(parts),
        )
        status = sqv_outcome(res.returncode, res.stderr)
        signers = [ln.strip().upper() for ln in res.stdout.splitlines() if ln.strip()]
        if status == "good" and allowed:
            # apt 3's sqv method keeps a signer only if a Signed-By token is that very
            # string (sqv prints the primary fingerprint): no subkey, no "!" form.
            signers = [f for f in signers if f in allowed]
        if status == "good" and not signers:
            status = "no-pubkey" if allowed else "error"
        good = tuple(signers) if status == "good" else ()
        return status, good, (), res.stderr.strip()[:200]
    home = scratch() / "home"
    home.mkdir(mode=0o700, exist_ok=True)
    asserted = [f"--assert-pubkey-algo={verifier.policy}"] if verifier.policy else []
    argv = [verifier.path, "--homedir", str(home), "--status-fd", "1", *asserted, *rings]
    argv += [str(sig), str(msg)]
    res = run_tool(argv, apt_config=None, timeout_s=timeout_s, pass_fds=_fds(parts))
    ring_bytes = [kr.read_bytes() for kr in keyrings]
    verdict = judge_gpgv_status(res.stdout, ring_bytes, allowed)
    status = verdict.status
    if status == "good" and res.returncode not in (0, 2):
        status = "error"  # 2: a further signature by a key not given (apt accepts that)
    good = verdict.fingerprints if status == "good" else ()
    return status, good, (verdict.weak if status == "good" else ()), verdict.detail


def _tempdir() -> tempfile.TemporaryDirectory[str]:
    return tempfile.TemporaryDirectory(prefix="aegis-verify-")


def verify_release(
    files: ReleaseFiles,
    entry: SourceEntry,
    paths: AptPaths,
    *,
    timeout_s: float,
    verifier: Verifier | None = None,
) -> SignatureCheck:
    """Check the release signature as this host's apt would, against exactly the source's keyring.

    ``verifier`` defaults to :func:`choose_verifier` (the tool apt uses here).
    """
    chosen = verifier or choose_verifier(paths)
    if files.inrelease is None and files.release is None:
        return SignatureCheck("missing", None, None, chosen.describe(), chosen.policy)
    if files.inrelease is None and files.release_gpg is None:
        assert files.release is not None
        text = files.release.read_text(errors="replace")
        return SignatureCheck("unsigned", None, text, chosen.describe(), chosen.policy)

    def unverified() -> str | None:
        # Only a failed check reports the text it could not trust; a good one reports the
        # verified text, so the common path does not split the file twice.
        if files.inrelease is not None:
            return release_body(files.inrelease.read_text(errors="replace"))
        return files.release.read_text(errors="replace") if files.release else None

    with ExitStack() as stack:
        made: list[Path] = []

        def scratch() -> Path:
            # A private directory only when one is needed (an armoured keyring to
            # dearmour, gpgv's home): sqv with binary keyrings runs without any.
            if not made:
                made.append(Path(stack.enter_context(_tempdir())))
            return made[0]

        keyrings = _binary_keyrings(entry, paths, scratch)
        parts = _signed_parts(files, stack)
        if isinstance(parts, str):
            return SignatureCheck(
                "error",
                None,
                unverified(),
                chosen.describe(),
                chosen.policy,
                detail=parts,
                malformed=parts,
            )
        if not keyrings:
            return SignatureCheck("no-pubkey", None, unverified(), chosen.describe(), chosen.policy)
        allowed = _allowed_fingerprints(entry)
        status, fprs, weak, detail = _run_verifier(
            chosen, keyrings, parts, allowed, scratch=scratch, timeout_s=timeout_s
        )
        if status == "good":
            text = parts[1].read_text(errors="replace")
            text = text if text.endswith("\n") else text + "\n"
            return SignatureCheck(
                "good", fprs[0], text, chosen.describe(), chosen.policy, weak, detail, fprs
            )
        return SignatureCheck(
            status, None, unverified(), chosen.describe(), chosen.policy, detail=detail
        )
