r"""gpgv's ``--status-fd`` stream judged whole, as apt's gpgv method judges it.

apt (methods/gpgv.cc) counts a signature as good only with ``GOODSIG`` and a
``VALIDSIG`` whose digest it trusts; ``EXPKEYSIG``, ``EXPSIG``, ``REVKEYSIG`` and
``ERRSIG`` make that signature worthless, any ``BADSIG`` fails the whole file, and
``NODATA``/``ERROR`` are errors. gpgv starts every signature with ``NEWSIG``, so the
stream is cut there and each signature is judged on its own lines (``KEYEXPIRED``
and ``KEYREVOKED`` carry no key id; inside a block they belong to its signature).
A keyword this module does not know is not "good": the whole verdict is ``error``.

Digest ids are OpenPGP's (RFC 4880 9.4): 1 MD5, 2 SHA1, 3 RIPEMD160 are refused by
apt everywhere; 11 SHA224 is accepted by bookworm's apt (gpgv) and refused by apt
3's Sequoia policy, so here it is a named weakness. Public-key algorithm 17 (DSA),
RSA under 2048 bits and v3 signatures are the other weaknesses apt 3 refuses.

Pure: :func:`judge_gpgv_status` over the status text and the keyrings' bytes.

Example:
    >>> fpr = "6E5F118784F866DE7E1ACE844AA30A6B01A79418"
    >>> text = f"[GNUPG:] NEWSIG\\n[GNUPG:] GOODSIG 4AA30A6B01A79418 n\\n" \\
    ...        f"[GNUPG:] VALIDSIG {fpr} 2026-01-01 1 0 4 0 22 8 01 {fpr}\\n"
    >>> v = judge_gpgv_status(text, ())
    >>> (v.status, v.fingerprints, v.weak)
    ('good', ('6E5F118784F866DE7E1ACE844AA30A6B01A79418',), ())
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

UNTRUSTED_DIGESTS = {"1": "MD5", "2": "SHA1", "3": "RIPEMD160"}
"""Refused by apt's gpgv method (``Digests[]`` in methods/gpgv.cc)."""
WEAK_DIGESTS = {"11": "sha224"}
"""Accepted by apt 2.6's gpgv method, refused by apt 3's Sequoia policy since 2026-02-01."""
_DSA = {"17"}
_RSA = {"1", "2", "3"}
MIN_RSA_BITS = 2048

# Status keywords that say nothing against a signature (GnuPG doc/DETAILS).
_NEUTRAL = frozenset(
    {
        "NEWSIG",
        "KEY_CONSIDERED",
        "SIG_ID",
        "PLAINTEXT",
        "PLAINTEXT_LENGTH",
        "NOTATION_NAME",
        "NOTATION_FLAGS",
        "NOTATION_DATA",
        "POLICY_URL",
        "VERIFICATION_COMPLIANCE_MODE",
        "TRUST_UNDEFINED",
        "TRUST_NEVER",
        "TRUST_MARGINAL",
        "TRUST_FULLY",
        "TRUST_ULTIMATE",
    }
)
_WORTHLESS = frozenset({"EXPKEYSIG", "EXPSIG", "REVKEYSIG", "KEYEXPIRED", "KEYREVOKED", "ERRSIG"})
_FATAL = frozenset({"NODATA", "ERROR", "FAILURE", "BADARMOR", "UNEXPECTED", "WARNING"})
_KNOWN = _NEUTRAL | _WORTHLESS | _FATAL | {"GOODSIG", "VALIDSIG", "BADSIG", "NO_PUBKEY"}
_KNOWN |= {"ASSERT_PUBKEY_ALGO"}  # <fpr> <0|1> <algo>: 0 is apt's "untrusted public key algorithm"
# VALIDSIG <fpr> <date> <ts> <expire> <ver> <reserved> <pkalgo> <hashalgo> <class> <primary>
_V_VER, _V_PK, _V_HASH, _V_PRIMARY = 4, 6, 7, 9
_ERRSIG_RC, _RC_NO_PUBKEY = 5, "9"
_MAX_PACKETS = 10_000
# RFC 4880 4.2.2 new-format length octets; key packet layout (5.5.2).
_LEN_ONE, _LEN_TWO, _LEN_FOUR = 192, 224, 255
_OLD_INDETERMINATE = 3
_KEY_TAGS, _KEY_V4, _KEY_MIN, _KEY_MAX = (6, 14), 4, 8, 0xFFFF


@dataclass(frozen=True)
class GpgvVerdict:
    """The whole stream's verdict."""

    status: str
    """good, bad, no-pubkey, expired-key, expired-sig, revoked, weak-digest,
    policy-rejected (``--assert-pubkey-algo`` refused the key), error."""
    fingerprints: tuple[str, ...] = ()
    """Primary fingerprints of the good signatures, in stream order."""
    weak: tuple[str, ...] = ()
    """Named weaknesses of the good signatures (``weak-algorithm:dsa`` ...)."""
    detail: str = ""


@dataclass
class _Sig:
    words: list[tuple[str, list[str]]] = field(default_factory=list)

    def keywords(self) -> set[str]:
        return {k for k, _ in self.words}

    def validsig(self) -> list[str] | None:
        return next((a for k, a in self.words if k == "VALIDSIG" and a), None)


def _blocks(status: str) -> tuple[list[_Sig], set[str]]:
    blocks: list[_Sig] = [_Sig()]
    unknown: set[str] = set()
    for line in status.splitlines():
        tag, _, rest = line.partition(" ")
        words = rest.split()
        if tag != "[GNUPG:]" or not words:
            continue  # gpgv writes only status lines to the status fd; the rest is noise
        keyword, args = words[0], words[1:]
        if keyword not in _KNOWN:
            unknown.add(keyword)
        if keyword == "NEWSIG":
            blocks.append(_Sig())
        blocks[-1].words.append((keyword, args))
    return [b for b in blocks if b.words], unknown


def _weaknesses(valid: Sequence[str], keyrings: Iterable[bytes]) -> list[str]:
    out: list[str] = []
    if len(valid) > _V_HASH and valid[_V_HASH] in WEAK_DIGESTS:
        out.append(f"weak-algorithm:{WEAK_DIGESTS[valid[_V_HASH]]}")
    if len(valid) > _V_PK and valid[_V_PK] in _DSA:
        out.append("weak-algorithm:dsa")
    if len(valid) > _V_PK and valid[_V_PK] in _RSA:
        bits = rsa_bits(valid[0], keyrings)
        if bits is None or bits < MIN_RSA_BITS:
            out.append(f"weak-algorithm:rsa{bits or 'unknown'}")
    if len(valid) > _V_VER and valid[_V_VER] == "3":
        out.append("weak-algorithm:v3-signature")
    return out


def judge_gpgv_status(
    status: str, keyrings: Iterable[bytes], allowed: Sequence[str] = ()
) -> GpgvVerdict:
    """Judge gpgv's status text as apt's gpgv method does.

    Args:
        status: everything gpgv wrote to its status fd.
        keyrings: the binary keyrings given to gpgv (for RSA key sizes).
        allowed: the tokens of a fingerprint ``Signed-By``, ``!`` kept (empty: any key);
            see :func:`signed_by_admits`.
    """
    blocks, unknown = _blocks(status)
    words = {k for b in blocks for k in b.keywords()}
    if unknown:
        return GpgvVerdict("error", detail=f"unknown gpgv status {', '.join(sorted(unknown))}")
    if "BADSIG" in words:
        return GpgvVerdict("bad", detail="BADSIG")
    if words & _FATAL:
        return GpgvVerdict("error", detail=", ".join(sorted(words & _FATAL)))
    good, weak, reasons = _good_signatures(blocks, tuple(keyrings), allowed)
    if good:
        return GpgvVerdict("good", tuple(good), tuple(sorted(set(weak))))
    return _why_not_good(blocks, words, reasons)


def _good_signatures(
    blocks: Sequence[_Sig], keyrings: tuple[bytes, ...], allowed: Sequence[str]
) -> tuple[list[str], list[str], set[str]]:
    """(good primary fingerprints, their weaknesses, reasons the others are not good)."""
    good: list[str] = []
    weak: list[str] = []
    reasons: set[str] = set()
    for b in blocks:
        kw = b.keywords()
        valid = b.validsig()
        if kw & _WORTHLESS:
            reasons |= kw & _WORTHLESS
            continue
        if any(k == "ASSERT_PUBKEY_ALGO" and a[1:2] != ["1"] for k, a in b.words):
            reasons.add("weak-key")
            continue
        if "GOODSIG" not in kw or valid is None:
            continue
        if len(valid) > _V_HASH and valid[_V_HASH] in UNTRUSTED_DIGESTS:
            reasons.add("weak-digest")
            continue
        primary = (valid[_V_PRIMARY] if len(valid) > _V_PRIMARY else valid[0]).upper()
        if allowed and not signed_by_admits(allowed, valid[0].upper(), primary):
            reasons.add("NO_PUBKEY")  # apt: a good signature by a key not named is NoPubKey
            continue
        good.append(primary)
        weak.extend(_weaknesses(valid, keyrings))
    return good, weak, reasons


def signed_by_admits(allowed: Sequence[str], signing: str, primary: str) -> bool:
    """Whether a fingerprint ``Signed-By`` admits a signature, as apt's gpgv method reads it.

    ``signing`` is the fingerprint of the key that made the signature (a subkey or the
    primary), ``primary`` its primary key's. A fingerprint without ``!`` admits that key
    and its subkeys; with ``!`` exactly that (sub)key (methods/gpgv.cc). Only whole
    fingerprints match, as apt compares them (it refuses anything shorter).
    """
    for token in allowed:
        exact = token.endswith("!")
        fpr = token.rstrip("!").upper()
        if fpr == signing or (not exact and fpr == primary):
            return True
    return False


def _why_not_good(blocks: Sequence[_Sig], words: set[str], reasons: set[str]) -> GpgvVerdict:
    if reasons & {"REVKEYSIG", "KEYREVOKED"}:
        return GpgvVerdict("revoked", detail="REVKEYSIG")
    if reasons & {"EXPKEYSIG", "KEYEXPIRED"}:
        return GpgvVerdict("expired-key", detail="EXPKEYSIG")
    if "EXPSIG" in reasons:
        return GpgvVerdict("expired-sig", detail="EXPSIG")
    if "weak-digest" in reasons:
        return GpgvVerdict("weak-digest", detail="untrusted digest algorithm")
    if "weak-key" in reasons:
        return GpgvVerdict("policy-rejected", detail="untrusted public key algorithm")
    errsig_nopub = any(
        k == "ERRSIG" and len(a) > _ERRSIG_RC and a[_ERRSIG_RC] == _RC_NO_PUBKEY
        for b in blocks
        for k, a in b.words
    )
    if "NO_PUBKEY" in words or "NO_PUBKEY" in reasons or errsig_nopub:
        return GpgvVerdict("no-pubkey", detail="NO_PUBKEY")
    return GpgvVerdict("error", detail="no good signature")


def _packets(data: bytes) -> Iterable[tuple[int, bytes]]:
    """(tag, body) of each OpenPGP packet (RFC 4880 4.2); stops at anything malformed.

    Hand-parsed on purpose: only the key packets' header and first MPI are read, with
    every length bounded by the data, to learn a signing key's RSA size, which gpgv
    does not report and no library on a minimal host offers.
    """
    i, n = 0, 0
    while i < len(data) and n < _MAX_PACKETS:
        n += 1
        ctb = data[i]
        if not ctb & 0x80:
            return
        if ctb & 0x40:  # new format
            tag = ctb & 0x3F
            if i + 1 >= len(data):
                return
            o1 = data[i + 1]
            if o1 < _LEN_ONE:
                length, hdr = o1, 2
            elif o1 < _LEN_TWO and i + 2 < len(data):
                length, hdr = ((o1 - _LEN_ONE) << 8) + data[i + 2] + _LEN_ONE, 3
            elif o1 == _LEN_FOUR and i + 5 < len(data):
                length, hdr = int.from_bytes(data[i + 2 : i + 6], "big"), 6
            else:
                return  # partial lengths never occur in key packets
        else:
            tag, ltype = (ctb >> 2) & 0x0F, ctb & 3
            if ltype == _OLD_INDETERMINATE:
                return
            size = 1 << ltype
            if i + size >= len(data):
                return
            length, hdr = int.from_bytes(data[i + 1 : i + 1 + size], "big"), 1 + size
        body = data[i + hdr : i + hdr + length]
        if len(body) != length:
            return
        yield tag, body
        i += hdr + length


def rsa_bits(fingerprint: str, keyrings: Iterable[bytes]) -> int | None:
    """Modulus size of the v4 RSA (sub)key with this fingerprint, or None if not found."""
    want = fingerprint.upper()
    for data in keyrings:
        for tag, body in _packets(data):
            if tag not in _KEY_TAGS or not _KEY_MIN <= len(body) <= _KEY_MAX or body[0] != _KEY_V4:
                continue
            # The v4 fingerprint is defined as SHA-1 (RFC 4880 12.2): identification only.
            prefix = b"\x99" + len(body).to_bytes(2, "big")
            fpr = hashlib.sha1(prefix + body, usedforsecurity=False).hexdigest()
            if fpr.upper() == want and str(body[5]) in _RSA:
                return int.from_bytes(body[6:8], "big")
    return None
