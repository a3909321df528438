"""Release and InRelease files of an apt source: where they are and what they say.

Pure text functions over Release data (:func:`assess_release`, :func:`release_fields`,
:func:`release_sha256`, :func:`release_body`, :func:`parse_gpgv_status`,
:func:`dearmor`) plus the :class:`ReleaseFiles` / :class:`SignatureCheck` records
that :mod:`aegis.ecosystems.apt.evidence.signature` fills in and
:mod:`aegis.ecosystems.apt.evidence.repositories` turns into a
:class:`~aegis.model.Repository`. Kept apart from those edges so that the parsing
is tested on recorded text alone (no gpgv, no files).

Dates are judged at a given ``now``: an expired Valid-Until is expired, and a
Release without Valid-Until whose Date is older than the source's freeze window
(policy ``freeze_after_s``, default :data:`FREEZE_AFTER`) looks frozen (a mirror
stuck in time).

Example:
    >>> text = "Date: Sat, 02 May 2026 00:00:00 UTC"
    >>> assess_release(text, datetime(2026, 5, 3, tzinfo=UTC))[0]
    '2026-05-02T00:00:00Z'
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from pathlib import Path

from aegis.ecosystems.apt.evidence.gpgv_status import judge_gpgv_status
from aegis.policy.config import DEFAULT_FREEZE_AFTER_S

FREEZE_AFTER = timedelta(seconds=DEFAULT_FREEZE_AFTER_S)
"""Default freeze window: the policy's ``[thresholds] freeze_after_s`` default (180 days).

Debian's own stable Release carries no Valid-Until and is re-dated only at each point
release (every two to three months), so a shorter window would flag it routinely."""
DEFAULT_CLOCK_SKEW = timedelta(seconds=60)
"""A Release Date further ahead than the policy's ``thresholds.clock_skew_s`` (this by
default) is ``date-future``: apt refuses a Release from the future
(``Acquire::Max-FutureTime``, 10 s), and a far Date would defer the freeze check."""
STRONG_HASHES = ("SHA256", "SHA512")
WEAK_HASHES = ("MD5Sum", "SHA1")
"""apt trusts neither alone: a Release listing only these "provides only weak security
information" and is refused; an index listed only with these is not verified."""


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
    """The verifier's verdict."""

    status: str
    """good, bad, no-pubkey, unsigned, error, missing; also expired-key, expired-sig,
    revoked, weak-digest (gpgv), policy-rejected (the verifier's algorithm policy refused
    it) and backdated (sqv: made long before the Release's own Date)."""
    fingerprint: str | None
    text: str | None
    """The verified Release text (only when good) or the unverified body."""
    verifier: str | None = None
    """Which tool judged it (:meth:`~aegis.ecosystems.apt.evidence.verifier.Verifier.describe`)."""
    policy: str | None = None
    """The algorithm policy file it judged under (sqv), or None (gpgv has none)."""
    weak: tuple[str, ...] = ()
    """Weak algorithms of a good signature that no policy refused (gpgv hosts)."""
    detail: str = ""
    fingerprints: tuple[str, ...] = ()
    """Every key that made a good signature (Debian signs with several; gpgv and sqv
    list them in different orders, so approval looks for any of them)."""
    malformed: str = ""
    """Why apt refuses the signed file's structure before verifying it (text outside
    the clear-signed block, data after a detached signature, a binary signature), or
    empty; no verifier saw such a file."""


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
    """(status, first good primary fingerprint) of gpgv's status text, judged whole.

    See :func:`aegis.ecosystems.apt.evidence.gpgv_status.judge_gpgv_status`.
    """
    verdict = judge_gpgv_status(status, ())
    return verdict.status, (verdict.fingerprints[0] if verdict.fingerprints else None)


def release_body(inrelease_text: str) -> str:
    """The cleartext of a clearsigned InRelease (unverified; for display only)."""
    seen_begin = in_body = False
    out: list[str] = []
    for ln in inrelease_text.splitlines():
        if in_body:
            if ln.startswith("-----BEGIN PGP SIGNATURE"):
                break
            out.append(ln[2:] if ln.startswith("- ") else ln)
        elif seen_begin:
            # The armour headers (Hash: ...) end at the first blank line.
            in_body = not ln.strip()
        elif ln.startswith("-----BEGIN PGP SIGNED MESSAGE"):
            seen_begin = True
    return "\n".join(out) + "\n" if seen_begin else inrelease_text


# The Release readers below are hand-written for speed: python-debian's deb822.Release
# reads the same fields and SHA256 list about 10 times slower (40 ms against 3-5 ms for
# bookworm's Release, measured), once per repository of every plan. Their input is the
# body gpgv or sqv verified; nothing here decides trust on its own.


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
    return release_hashes(text, "SHA256")


def release_hashes(text: str, section: str) -> dict[str, str]:
    """One hash section (``SHA256``, ``SHA512``, ``MD5Sum``...) of a Release: path -> digest."""
    out: dict[str, str] = {}
    in_section = False
    for ln in text.splitlines():
        if not ln.startswith(" "):
            in_section = ln.startswith(f"{section}:")
            continue
        if in_section:
            match ln.split():
                case [digest, _size, path]:
                    out[path] = digest.lower()
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


def release_date(text: str) -> str | None:
    """The Release ``Date`` as ``YYYY-MM-DDTHH:MM:SSZ``, or None."""
    return _iso(release_fields(text).get("Date"))


def is_frozen(date: str | None, valid_until: str | None, now: datetime, window: timedelta) -> bool:
    """A Release without Valid-Until whose Date is older than ``window`` at ``now``.

    A zero ``window`` never freezes (a suite its distribution no longer re-dates). A
    Valid-Until binds instead (expiry); a Release with neither field is not judged
    here (apt itself refuses a Release without a usable Date when it checks dates).
    """
    if valid_until is not None or date is None or window <= timedelta(0):
        return False
    try:
        when = datetime.strptime(date, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    except ValueError:
        return False
    return now - when > window


def assess_release(
    text: str | None, now: datetime, freeze_after: timedelta = FREEZE_AFTER
) -> tuple[str | None, str | None, bool, bool, str | None]:
    """(date, valid_until, expired, frozen, origin) from Release text at ``now``.

    ``freeze_after`` is the source's freeze window (:func:`is_frozen`).
    """
    if text is None:
        return None, None, False, False, None
    fields = release_fields(text)
    date, until = _iso(fields.get("Date")), _iso(fields.get("Valid-Until"))
    fmt = "%Y-%m-%dT%H:%M:%SZ"
    expired = until is not None and datetime.strptime(until, fmt).replace(tzinfo=UTC) < now
    frozen = is_frozen(date, until, now, freeze_after)
    return date, until, expired, frozen, fields.get("Origin")


def release_problems(
    text: str | None, now: datetime, clock_skew: timedelta = DEFAULT_CLOCK_SKEW
) -> list[str]:
    """Self-contradictions and weaknesses of a Release that its signature cannot excuse.

    ``hash-conflict:<path>``: one path listed twice in ``SHA256:`` with different
    digests (which one apt would check is not ours to guess); ``date-future``: a
    Date more than ``clock_skew`` ahead of ``now``; ``weak-hashes``: files listed
    but no SHA256/SHA512 section (apt: "provides only weak security information");
    ``weak-index-hash:<path>``: a file listed only with MD5Sum/SHA1; ``undated``:
    neither a usable ``Date`` nor ``Valid-Until`` (apt: "Invalid 'Date' entry"), so
    neither freshness nor a rollback can be judged.
    """
    if text is None:
        return []
    out: list[str] = []
    seen: dict[str, str] = {}
    in_section = False
    for ln in text.splitlines():
        if not ln.startswith(" "):
            in_section = ln.startswith("SHA256:")
            continue
        match ln.split() if in_section else []:
            case [digest, _size, path]:
                if seen.setdefault(path, digest.lower()) != digest.lower():
                    out.append(f"hash-conflict:{path}")
    fields = release_fields(text)
    date = _iso(fields.get("Date"))
    if date is None and _iso(fields.get("Valid-Until")) is None:
        out.append("undated")
    fmt = "%Y-%m-%dT%H:%M:%SZ"
    if date is not None and datetime.strptime(date, fmt).replace(tzinfo=UTC) > now + clock_skew:
        out.append("date-future")
    strong = {p for h in STRONG_HASHES for p in release_hashes(text, h)}
    weak = {p for h in WEAK_HASHES for p in release_hashes(text, h)}
    if weak and not strong:
        out.append("weak-hashes")
    elif weak - strong:
        out.extend(f"weak-index-hash:{p}" for p in sorted(weak - strong))
    return sorted(set(out))


INFO_FIELDS = ("Origin", "Label", "Suite", "Codename")
"""Release fields whose change apt refuses without ``--allow-releaseinfo-change``
(``Suite``: apt only notes it; Aegis asks a human for all four)."""


def default_pin(fields: dict[str, str]) -> int:
    """The default priority apt gives a Release (``metaIndex::GetDefaultPin``): 1, 100, 500."""
    yes = {
        k: fields.get(k, "").strip().lower() == "yes"
        for k in ("NotAutomatic", "ButAutomaticUpgrades")
    }
    if yes["NotAutomatic"]:
        return 100 if yes["ButAutomaticUpgrades"] else 1
    return 500


def compare_with_lists(new: str, old: str) -> list[str]:
    """What apt's update would object to in ``new`` against the lists' ``old`` Release.

    ``release-info-changed:<Field> <old> -> <new>`` for Origin, Label, Suite, Codename
    and the default pin (``DefaultPin 500 -> 1``), as apt's ``VerifyVendor`` compares
    them; ``release-rollback:<new Date> before <old Date>`` when ``new`` is dated
    before ``old`` (apt keeps the old one silently; a replayed Release is an attack).
    """
    nf, of = release_fields(new), release_fields(old)
    out = [
        f"release-info-changed:{k} {of.get(k, '') or '-'} -> {nf.get(k, '') or '-'}"
        for k in INFO_FIELDS
        if nf.get(k, "") != of.get(k, "")
    ]
    if default_pin(nf) != default_pin(of):
        out.append(f"release-info-changed:DefaultPin {default_pin(of)} -> {default_pin(nf)}")
    new_date, old_date = _iso(nf.get("Date")), _iso(of.get("Date"))
    if new_date is not None and old_date is not None and new_date < old_date:
        out.append(f"release-rollback:{new_date} before {old_date}")
    return out
