"""gpgv's status stream judged whole, and InRelease split as apt splits it.

The status texts are recorded from gpgv 2.2.40 (bookworm) and 2.4.7 (trixie, with
apt's ``--assert-pubkey-algo``); each case is what apt's gpgv method would decide.
"""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aegis.ecosystems.apt.evidence.gpgv_status import judge_gpgv_status
from aegis.ecosystems.apt.evidence.verifier import SplitError, split_clearsigned, sqv_outcome

F = "403CA62BC0B159FFE821D2D2B67E7088F8E116C9"
G = "DCB3BBB58BEB38FCF1F6D13857C347E7229FDCA6"


def _sig(
    fpr: str = F, *, pk: str = "22", digest: str = "8", ver: str = "4", extra: str = ""
) -> str:
    return (
        "[GNUPG:] NEWSIG repo@example.invalid\n"
        f"[GNUPG:] KEY_CONSIDERED {fpr} 0\n"
        f"[GNUPG:] SIG_ID K2yvbWlvT2VOnDrgEPOBrSk0sJM 2026-12-07 1796611681\n"
        f"{extra}"
        f"[GNUPG:] GOODSIG {fpr[-16:]} Repo <repo@example.invalid>\n"
        f"[GNUPG:] VALIDSIG {fpr} 2026-12-07 1796611681 0 {ver} 0 {pk} {digest} 01 {fpr}\n"
    )


def test_a_plain_good_signature_is_good() -> None:
    v = judge_gpgv_status("[GNUPG:] PLAINTEXT 74 0 \n" + _sig(), ())
    assert (v.status, v.fingerprints, v.weak) == ("good", (F,), ())


@pytest.mark.parametrize(
    ("line", "status"),
    [
        (f"[GNUPG:] KEYEXPIRED 1577923200\n[GNUPG:] EXPKEYSIG {F[-16:]} R\n", "expired-key"),
        (f"[GNUPG:] EXPSIG {F[-16:]} R\n", "expired-sig"),
        (f"[GNUPG:] KEYREVOKED\n[GNUPG:] REVKEYSIG {F[-16:]} R\n", "revoked"),
        ("[GNUPG:] KEYEXPIRED 1577923200\n", "expired-key"),
        ("[GNUPG:] KEYREVOKED\n", "revoked"),
    ],
    ids=["expkeysig", "expsig", "revkeysig", "keyexpired", "keyrevoked"],
)
def test_expired_and_revoked_signatures_are_not_good(line: str, status: str) -> None:
    """gpgv prints VALIDSIG beside EXPKEYSIG: apt counts such a signature as worthless."""
    text = _sig().replace("[GNUPG:] GOODSIG", line + "[GNUPG:] GOODSIG")
    assert judge_gpgv_status(text, ()).status == status


def test_one_worthless_signature_beside_a_good_one_is_still_good() -> None:
    """apt accepts a file while at least one signature is good and none is BAD."""
    expired = _sig(G).replace("[GNUPG:] GOODSIG", f"[GNUPG:] EXPKEYSIG {G[-16:]} x\n#")
    v = judge_gpgv_status(expired.replace("\n#", "\n[GNUPG:] PLAINTEXT 1 0\n#") + _sig(), ())
    assert v.status == "good"
    assert v.fingerprints == (F,)


@pytest.mark.parametrize(
    ("text", "status"),
    [
        (f"[GNUPG:] NEWSIG\n[GNUPG:] BADSIG {F[-16:]} R\n", "bad"),
        ("[GNUPG:] ERRSIG 57C347E7229FDCA6 17 8 01 1796611681 9 -\n"
         "[GNUPG:] NO_PUBKEY 57C347E7229FDCA6\n", "no-pubkey"),
        ("[GNUPG:] NODATA 1\n", "error"),
        ("", "error"),
    ],
    ids=["badsig", "no-pubkey", "nodata", "empty"],
)  # fmt: skip
def test_bad_missing_and_empty_streams(text: str, status: str) -> None:
    assert judge_gpgv_status(text, ()).status == status


def test_a_badsig_anywhere_fails_the_whole_file() -> None:
    bad = f"[GNUPG:] NEWSIG\n[GNUPG:] BADSIG {G[-16:]} R\n"
    assert judge_gpgv_status(_sig() + bad, ()).status == "bad"


def test_an_unknown_status_line_is_not_good() -> None:
    v = judge_gpgv_status(_sig(extra="[GNUPG:] SOMETHING_NEW x\n"), ())
    assert v.status == "error"
    assert "SOMETHING_NEW" in v.detail


@pytest.mark.parametrize(("digest", "name"), [("1", "MD5"), ("2", "SHA1"), ("3", "RIPEMD160")])
def test_untrusted_digests_are_refused(digest: str, name: str) -> None:
    assert judge_gpgv_status(_sig(digest=digest), ()).status == "weak-digest", name


@pytest.mark.parametrize(
    ("kw", "weak"),
    [
        ({"digest": "11"}, "weak-algorithm:sha224"),
        ({"pk": "17"}, "weak-algorithm:dsa"),
        ({"ver": "3"}, "weak-algorithm:v3-signature"),
        ({"pk": "1"}, "weak-algorithm:rsaunknown"),
    ],
)
def test_algorithms_apt_3_refuses_are_named_on_a_gpgv_host(kw: dict[str, str], weak: str) -> None:
    v = judge_gpgv_status(_sig(**kw), ())
    assert v.status == "good"
    assert weak in v.weak


def test_apt_3s_assert_pubkey_algo_refusal_is_a_policy_refusal() -> None:
    """Recorded from trixie's gpgv 2.4.7 with apt's --assert-pubkey-algo and a DSA key."""
    text = (
        "[GNUPG:] NEWSIG\n"
        f"[GNUPG:] KEY_CONSIDERED {G} 0\n"
        "[GNUPG:] SIG_ID HfuRrhmd2H+BpOV3j82hHTRwBMc 2026-12-07 1796612252\n"
        f"[GNUPG:] GOODSIG {G[-16:]} Aegis Test Repo dsa <repo-dsa@example.invalid>\n"
        f"[GNUPG:] VALIDSIG {G} 2026-12-07 1796612252 0 4 0 17 8 00 {G}\n"
        f"[GNUPG:] ASSERT_PUBKEY_ALGO {G} 0 dsa2048\n"
    )
    assert judge_gpgv_status(text, ()).status == "policy-rejected"
    ok = text.replace(" 0 dsa2048", " 1 ed25519").replace(" 17 8 00 ", " 22 8 00 ")
    assert judge_gpgv_status(ok, ()).status == "good"


def test_a_fingerprint_signed_by_admits_only_the_keys_it_names() -> None:
    assert judge_gpgv_status(_sig(), (), allowed=(G,)).status == "no-pubkey"
    assert judge_gpgv_status(_sig(), (), allowed=(F,)).fingerprints == (F,)


# --- InRelease split as apt's SplitClearSignedFile splits it ----------------------------

SIG = "-----BEGIN PGP SIGNATURE-----\n\niHUEARYIAB0=\n=abcd\n-----END PGP SIGNATURE-----\n"
CLEAR = "-----BEGIN PGP SIGNED MESSAGE-----\nHash: SHA256\n\nOrigin: X\nSuite: s  \n- -dash\n" + SIG


def test_split_gives_the_signed_message_and_the_detached_signature() -> None:
    message, sig = split_clearsigned(CLEAR.encode())
    assert message == b"Origin: X\nSuite: s\n-dash"  # trailing blanks and dash escapes go
    assert sig.decode() == SIG


@pytest.mark.parametrize(
    "raw",
    [
        "Origin: Debian\n\n" + CLEAR,
        CLEAR + "Origin: Debian\n",
        CLEAR + CLEAR,
        CLEAR.replace("Suite: s", "-Suite: s"),
        CLEAR.replace("-----END PGP SIGNATURE-----\n", ""),
        "Origin: X\n",
    ],
    ids=["text-before", "text-after", "second-message", "dash-line", "unclosed", "unsigned"],
)
def test_split_refuses_what_apt_refuses(raw: str) -> None:
    with pytest.raises(SplitError):
        split_clearsigned(raw.encode())


@pytest.mark.parametrize(
    ("stderr", "status"),
    [
        ("Missing key 403C..., which is needed to verify signature.", "no-pubkey"),
        ("Error: The signatures couldn't be verified because no keyring is specified", "no-pubkey"),
        ("Verifying signature:\n  Message has been manipulated", "bad"),
        ("Policy rejected asymmetric algorithm\n because: DSA2048 is not considered secure",
         "policy-rejected"),
        ("Signature by 6135 was created before the --not-before date.", "backdated"),
        ("something else", "error"),
    ],
)  # fmt: skip
def test_sqv_wordings_are_understood(stderr: str, status: str) -> None:
    assert sqv_outcome(1, stderr) == status
    assert sqv_outcome(0, "") == "good"


P, S = "A" * 40, "B" * 40  # a primary key and its signing subkey


@pytest.mark.parametrize(
    ("signed_by", "signing", "admits"),
    [
        ((P,), S, True),  # no "!": the key and its subkeys
        ((P + "!",), S, False),  # "!": exactly that key, and the subkey signed
        ((S,), S, True),
        ((S + "!",), S, True),
        ((P + "!",), P, True),
        ((P[:16],), S, False),  # apt takes whole fingerprints only
        ((S.lower() + "!",), S, True),
    ],
)
def test_signed_by_admits_as_apts_gpgv_method(
    signed_by: tuple[str, ...], signing: str, admits: bool
) -> None:
    from aegis.ecosystems.apt.evidence.gpgv_status import signed_by_admits

    assert signed_by_admits(signed_by, signing, P) is admits


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=400) | st.text(max_size=400).map(str.encode))
def test_the_detached_signature_check_fails_only_with_split_error(raw: bytes) -> None:
    from aegis.ecosystems.apt.evidence.verifier import check_detached_signature

    with contextlib.suppress(SplitError):
        check_detached_signature(raw)


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=300), st.text(max_size=300))
def test_comparing_releases_never_raises(new: str, old: str) -> None:
    from aegis.ecosystems.apt.evidence.release import compare_with_lists

    assert all(isinstance(p, str) for p in compare_with_lists(new, old))
