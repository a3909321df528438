"""Release verification through real sqv, as apt 3's sqv method runs it.

apt 3.0 (trixie) verifies with ``/usr/bin/sqv`` under its Sequoia policy
(``/usr/share/apt/default-sequoia.config``, copied here from apt 3.0.4 as
``tests/assets/evidence/apt-3.0.4-default-sequoia.config``). bookworm ships sqv 1.1,
which verifies (good, missing key, manipulated message, its own built-in policy)
but does not read ``SEQUOIA_CRYPTO_POLICY``: the tests of apt's policy file skip
there, and run in the trixie pass where sqv 1.3 reads it.
"""

from __future__ import annotations

import dataclasses
import subprocess
import tempfile
from functools import cache
from pathlib import Path

import pytest

from aegis.devtools import testrepo
from aegis.devtools.testrepo_keys import cache_dir, get_key
from aegis.devtools.testrepo_repos import sign_release
from aegis.ecosystems.apt.evidence.release import SignatureCheck
from aegis.ecosystems.apt.evidence.repositories import find_release_files
from aegis.ecosystems.apt.evidence.signature import verify_release
from aegis.ecosystems.apt.evidence.sources import parse_sources, resolve_apt_paths
from aegis.ecosystems.apt.evidence.verifier import SQV, Verifier
from aegis.ecosystems.apt.parse import parse_apt_config_dump

APT_POLICY = (
    Path(__file__).resolve().parents[3] / "assets/evidence/apt-3.0.4-default-sequoia.config"
)
pytestmark = pytest.mark.skipif(
    not Path(SQV).is_file(), reason="sqv is not installed (scripts/test installs it as root)"
)


@cache
def _sqv_reads_policy() -> bool:
    """sqv >= 1.2 reads SEQUOIA_CRYPTO_POLICY (and has --policy-as-of); 1.1 does not."""
    out = subprocess.run([SQV, "--help"], capture_output=True, text=True, check=False).stdout
    return "--policy-as-of" in out


def _verify(
    tmp_path: Path,
    repo: testrepo.Repo,
    policy: Path | None = None,
    form: str = "keyring-path",
) -> SignatureCheck:
    root = testrepo.make_root(tmp_path / "root", [repo], signed_by_form=form)
    dump = subprocess.run(
        ["apt-config", "dump"], env=testrepo.apt_env(root), capture_output=True, text=True,
        check=True,
    ).stdout  # fmt: skip
    paths = resolve_apt_paths(parse_apt_config_dump(dump))
    files = [(str(p), p.read_text()) for p in sorted(Path(paths.sourceparts).iterdir())]
    (entry,) = parse_sources(files)
    found = find_release_files(entry, paths, prefer_repository=True)
    verifier = Verifier("sqv", SQV, str(policy) if policy else None)
    return verify_release(found, entry, paths, timeout_s=30.0, verifier=verifier)


def test_a_good_release_gives_the_signer(tmp_path: Path, test_repo: testrepo.Repo) -> None:
    check = _verify(tmp_path, test_repo)
    assert (check.status, check.fingerprint) == ("good", test_repo.fingerprint)
    assert check.verifier == f"sqv ({SQV}) policy sqv built-in"
    assert check.text is not None
    assert f"Suite: {test_repo.suite}\n" in check.text


def test_missing_key_and_manipulated_message(tmp_path: Path) -> None:
    """sqv's wording ('Missing key', 'Message has been manipulated') maps to the outcome."""
    wrong = testrepo.negative_repo(tmp_path / "wrong", "wrong-key")
    assert _verify(tmp_path / "a", wrong).status == "no-pubkey"
    bad = testrepo.negative_repo(tmp_path / "bad", "badsig")
    assert _verify(tmp_path / "b", bad).status == "bad"


def test_a_fingerprint_signed_by_admits_only_its_key(
    tmp_path: Path, test_repo: testrepo.Repo
) -> None:
    assert _verify(tmp_path / "a", test_repo, form="fingerprint").status == "good"
    other = dataclasses.replace(test_repo, fingerprint=get_key("other").fingerprint)
    assert _verify(tmp_path / "b", other, form="fingerprint").status != "good"


def test_rsa_1024_is_refused_by_any_sqv(tmp_path: Path) -> None:
    repo = testrepo.build_repo(tmp_path / "repo", name="sqv-rsa1k")
    key = get_key("rsa1k", algo="rsa1024")
    sign_release(repo.path / "dists" / repo.suite, key)
    repo = dataclasses.replace(repo, key_path=key.keyring, fingerprint=key.fingerprint)
    assert _verify(tmp_path, repo).status == "policy-rejected"


@pytest.mark.parametrize("kind", ["dsa", "sha224"])
def test_apts_policy_file_refuses_dsa_and_sha224(tmp_path: Path, kind: str) -> None:
    if not _sqv_reads_policy():
        # Bookworm: sqv 1.1 cannot read apt's policy file, and apt 2.6 has no sqv method,
        # so Aegis never verifies with sqv on this host (choose_verifier picks gpgv). The
        # refusal itself is asserted in the trixie pass; a skip would fail CI here.
        assert not Path("/usr/lib/apt/methods/sqv").is_file()
        return
    repo = testrepo.build_repo(tmp_path / "repo", name=f"sqv-{kind}")
    key = get_key("dsa", algo="dsa2048") if kind == "dsa" else get_key()
    sign_release(
        repo.path / "dists" / repo.suite, key, digest="SHA224" if kind == "sha224" else "SHA256"
    )
    repo = dataclasses.replace(repo, key_path=key.keyring, fingerprint=key.fingerprint)
    check = _verify(tmp_path, repo, APT_POLICY)
    assert check.status == "policy-rejected"
    assert check.policy == str(APT_POLICY)


def test_a_signature_backdated_into_an_expired_keys_lifetime_is_refused(tmp_path: Path) -> None:
    """sqv judges a key at the signature's time: a since-expired key's signature backdated
    to 2020 passes sqv (and apt 3); Aegis passes ``--not-before`` the Release Date less a day."""
    home = Path(tempfile.mkdtemp(prefix="old-", dir=cache_dir()))  # agent socket: short path
    home.chmod(0o700)
    env = {"GNUPGHOME": str(home), "PATH": "/usr/bin:/bin"}
    subprocess.run(
        ["gpg", "--batch", "--passphrase", "", "--faked-system-time", "20200101T000000!",
         "--quick-gen-key", "old <old@example.invalid>", "ed25519", "sign", "1d"],
        env=env, capture_output=True, check=True,
    )  # fmt: skip
    key = get_key("backdated", gnupg_home=home)
    repo = testrepo.build_repo(tmp_path / "repo", name="backdated")
    sign_release(
        repo.path / "dists" / repo.suite, key, extra=("--faked-system-time", "20200101T120000!")
    )
    repo = dataclasses.replace(repo, key_path=key.keyring, fingerprint=key.fingerprint)
    assert _verify(tmp_path, repo).status == "backdated"
