"""The signature verifier this host's apt uses, chosen and run as apt runs it.

How apt chooses (read from apt's own code, not guessed):

- apt 3.0 (trixie) ships an ``sqv`` acquire method beside ``gpgv``. libapt sends a
  Release to ``sqv:`` unless ``APT::Key::GPGVCommand`` is set or ``/usr/bin/sqv`` is
  missing (apt 3.0 depends on ``sqv (>= 1.3.0)``); setting ``APT::Key::GPGVCommand``
  is the documented way back to gpgv.
- The sqv method exports ``SEQUOIA_CRYPTO_POLICY`` as the first of these that exists
  (methods/sqv.cc ``SetPolicy``): ``$APT_SEQUOIA_CRYPTO_POLICY``,
  ``/etc/crypto-policies/back-ends/apt-sequoia.config``,
  ``/var/lib/crypto-config/profiles/current/apt-sequoia.config``,
  ``$SEQUOIA_CRYPTO_POLICY``, ``/etc/crypto-policies/back-ends/sequoia.config``,
  ``/var/lib/crypto-config/profiles/current/sequoia.config``,
  ``/usr/share/apt/default-sequoia.config``. Aegis runs apt with a fixed minimal
  environment, so the two variables never apply and only the files are looked at.
- apt 2.6 (bookworm) has only the gpgv method; it runs the first of
  ``APT::Key::GPGVCommand``, ``gpgv-sq``, ``gpgv``, ``gpgv2``, ``gpgv1`` that answers.
  apt 3 also passes ``--assert-pubkey-algo=`` its ``APT::Key::Assert-Pubkey-Algo``
  (``>=rsa2048,ed25519,...``) when that gpgv lists the option in ``--dump-options``
  (gpgv 2.4 does, bookworm's 2.2 does not); the key is then refused by gpgv's
  ``ASSERT_PUBKEY_ALGO`` status, which :mod:`.gpgv_status` reads.

Both methods split a clear-signed InRelease themselves (``SplitClearSignedFile``)
and verify the detached signature over the message; :func:`split_clearsigned`
does the same, so the bytes verified are exactly the bytes Aegis then parses, and
whatever apt refuses to split (text outside the signed block, a second message) is
an error here too.

Example::

    v = choose_verifier(paths)
    v.describe()  # 'sqv (/usr/bin/sqv) policy /usr/share/apt/default-sequoia.config'
"""

from __future__ import annotations

import functools
import shutil
from dataclasses import dataclass
from pathlib import Path

from aegis.ecosystems.apt.evidence.sources import AptPaths
from aegis.ecosystems.apt.run import run_tool

SQV = "/usr/bin/sqv"
"""apt's ``SQV_EXECUTABLE``."""
GPGV_CANDIDATES = ("/usr/bin/gpgv-sq", "/usr/bin/gpgv", "/usr/bin/gpgv2", "/usr/bin/gpgv1")
SEQUOIA_POLICIES = (
    "/etc/crypto-policies/back-ends/apt-sequoia.config",
    "/var/lib/crypto-config/profiles/current/apt-sequoia.config",
    "/etc/crypto-policies/back-ends/sequoia.config",
    "/var/lib/crypto-config/profiles/current/sequoia.config",
    "/usr/share/apt/default-sequoia.config",
)


@dataclass(frozen=True)
class Verifier:
    """The tool that judges a Release signature, and the policy it judges under."""

    tool: str
    """``sqv`` or ``gpgv``."""
    path: str
    policy: str | None = None
    """The Sequoia policy file sqv reads (``SEQUOIA_CRYPTO_POLICY``); for gpgv the
    ``--assert-pubkey-algo`` value apt passes, or None (weak algorithms are then named
    problems, not refusals)."""

    def describe(self) -> str:
        """One line for evidence and ``aegis doctor``."""
        where = f"{self.tool} ({self.path})"
        if self.tool == "sqv":
            return f"{where} policy {self.policy or 'sqv built-in'}"
        if self.policy:
            return f"{where} --assert-pubkey-algo={self.policy}"
        return f"{where} no algorithm policy"


def choose_verifier(paths: AptPaths) -> Verifier:
    """The verifier apt would use with this configuration on this host."""
    apt_has_sqv = Path(paths.methods, "sqv").is_file()
    if apt_has_sqv and not paths.gpgv_command and Path(SQV).is_file():
        policy = next((p for p in SEQUOIA_POLICIES if Path(p).is_file()), None)
        return Verifier("sqv", SQV, policy)
    for cand in (paths.gpgv_command, *GPGV_CANDIDATES):
        if not cand:
            continue
        found = cand if cand.startswith("/") else shutil.which(cand, path="/usr/bin:/bin")
        if found and Path(found).is_file():
            asserted = paths.assert_pubkey_algo if paths.assert_pubkey_algo else None
            if asserted and "--assert-pubkey-algo" not in gpgv_options(found):
                asserted = None
            return Verifier("gpgv", found, asserted)
    return Verifier("gpgv", "/usr/bin/gpgv")  # missing: the run fails, closed


@functools.cache
def gpgv_options(path: str) -> frozenset[str]:
    """The options this gpgv lists in ``--dump-options`` (apt's ``CheckGPGV``)."""
    res = run_tool([path, "--dump-options"], apt_config=None, timeout_s=10.0)
    return frozenset(ln.strip() for ln in res.stdout.splitlines() if ln.strip())


class SplitError(ValueError):
    """A clear-signed file apt would refuse to split."""


def _strip(line: str) -> str:
    # RFC 4880 7.1: trailing spaces and tabs are not part of the signed text.
    return line.rstrip("\r\n").rstrip(" \t")


def _skip_headers(lines: list[str]) -> int:
    """Index of the first message line (armour headers end at the first empty line)."""
    if not lines or lines[0] != "-----BEGIN PGP SIGNED MESSAGE-----":
        raise SplitError("does not start with a signed message block")
    for i in range(1, len(lines)):
        if not lines[i]:
            return i + 1
        if lines[i].startswith("-"):
            raise SplitError("unexpected line starting with a dash (armor)")
    raise SplitError("ends inside the armour headers")


def _message(lines: list[str], i: int) -> tuple[list[str], int]:
    msg: list[str] = []
    for j in range(i, len(lines)):
        ln = lines[j]
        if ln == "-----BEGIN PGP SIGNATURE-----":
            return msg, j
        if ln.startswith("- "):
            msg.append(ln[2:])
        elif ln.startswith("-"):
            raise SplitError("unexpected line starting with a dash (msg)")
        else:
            msg.append(ln)
    raise SplitError("has no signature")


def _signatures(lines: list[str]) -> list[str]:
    open_sig = False
    for ln in lines:
        if open_sig:
            if ln == "-----END PGP SIGNATURE-----":
                open_sig = False
            elif ln.startswith("-"):
                raise SplitError("unexpected line starting with a dash (sig)")
        elif ln == "-----BEGIN PGP SIGNATURE-----":
            open_sig = True
        else:
            raise SplitError("contains unsigned lines")
    if open_sig:
        raise SplitError("signature is not closed")
    return lines


def split_clearsigned(raw: bytes) -> tuple[bytes, bytes]:
    """(message, detached armoured signature) of a clear-signed file, split as apt does.

    Raises:
        SplitError: not clear-signed, a dash line apt would not accept, unsigned lines
            after the signature, or an unclosed signature.
    """
    lines = [_strip(ln) for ln in raw.decode("utf-8", errors="surrogateescape").split("\n")]
    if lines and lines[-1] == "" and raw.endswith(b"\n"):
        lines.pop()
    msg, at = _message(lines, _skip_headers(lines))
    sig = _signatures(lines[at:])
    message = "\n".join(msg).encode("utf-8", errors="surrogateescape")
    return message, ("\n".join(sig) + "\n").encode("utf-8", errors="surrogateescape")


def _scan_detached(lines: list[str]) -> tuple[int, bool, bool]:
    """(signatures begun, stray lines seen, a signature left open), stopping as apt does."""
    open_sig, bad, found = False, False, 0
    for ln in lines:
        if open_sig:
            if ln == "-----END PGP SIGNATURE-----":
                open_sig = False
            elif ln.startswith("-"):
                raise SplitError("contains unexpected line starting with a dash")
        elif ln == "-----BEGIN PGP SIGNATURE-----":
            open_sig, found = True, found + 1
            if bad:
                break
        else:
            bad = True
            if found:
                break
    return found, bad, open_sig


def check_detached_signature(raw: bytes) -> None:
    """Refuse a ``Release.gpg`` apt refuses before any verifier sees it.

    As apt's ``VerifyDetachedSignatureFile`` (apt-pkg/contrib/gpgv.cc, used by both
    the gpgv and the sqv method): the file must be nothing but armoured signature
    blocks. gpgv itself ignores what follows the armour and reads binary signatures,
    so a payload appended after the signature (CVE-2019-3462) or a binary signature
    would pass it.

    Raises:
        SplitError: no armoured signature (binary, empty or other data), lines that
            do not belong to a signature, a dash line inside one, or an unclosed one.
    """
    lines = [_strip(ln) for ln in raw.decode("utf-8", errors="surrogateescape").split("\n")]
    if lines and lines[-1] == "" and raw.endswith(b"\n"):
        lines.pop()
    found, bad, open_sig = _scan_detached(lines)
    if not found:
        # apt: NODATA, and an old-format OpenPGP packet tag is named as binary.
        if raw[:1] and raw[0] & 0x80 and not raw[0] & 0x40:
            raise SplitError("is in unsupported binary format")
        raise SplitError("holds no armoured signature (NODATA)")
    if bad:
        raise SplitError("contains lines not belonging to a signature")
    if open_sig:
        raise SplitError("contains unclosed signatures")


def sqv_outcome(returncode: int, stderr: str) -> str:
    """Signature status from a failed sqv run, understanding its wording.

    sqv answers only with an exit code and prose; these are its phrasings for the
    cases gpgv reports as NO_PUBKEY and BADSIG, and for a policy refusal.
    """
    if returncode == 0:
        return "good"
    if "Missing key" in stderr or "no keyring" in stderr.lower():
        return "no-pubkey"
    if "manipulated" in stderr or "Bad signature" in stderr:
        return "bad"
    if "Policy rejected" in stderr or "not considered secure" in stderr:
        return "policy-rejected"
    if "before the --not-before" in stderr:
        return "backdated"
    if "expired" in stderr.lower() or "not live" in stderr.lower():
        return "expired-key"
    if "revoked" in stderr.lower():
        return "revoked"
    return "error"
