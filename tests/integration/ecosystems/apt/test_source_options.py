"""Source options and Signed-By as each release's apt reads them (issue 20 item 2).

- ``[trusted=no]`` / ``Trusted: no``: apt refuses to install from the source ("cannot
  be authenticated") even with a good signature; Aegis denies and names the option.
- A fingerprint ``Signed-By`` and a Release signed by a *subkey*: apt 2.6 with gpgv
  reads a fingerprint without ``!`` as that key and its subkeys, one with ``!`` as
  exactly that (sub)key; apt 3 with sqv matches only the primary fingerprint, without
  ``!``. Every form is tried with the host's apt first; Aegis must agree with it.
"""

from __future__ import annotations

import re
import subprocess
import tempfile
from pathlib import Path

import pytest

from aegis.devtools import testrepo
from aegis.devtools.testrepo_keys import Key, cache_dir, get_key, run_tool
from aegis.devtools.testrepo_repos import sign_release
from aegis.policy.result import Effect

from .apt_parity import (
    approve,
    apt_refused,
    apt_update,
    cli_plan,
    config,
    copy_repo,
    decide,
    dist,
    fired,
)

APT_USES_SQV = Path("/usr/lib/apt/methods/sqv").is_file() and Path("/usr/bin/sqv").is_file()


def _write_option(root: testrepo.AptRoot, line: str) -> None:
    (src,) = root.sources_dir.glob("*.sources")
    src.write_text(src.read_text() + line + "\n")


@pytest.mark.parametrize("form", ["deb822", "one-line"])
def test_trusted_no_is_denied_with_the_option_named(
    tmp_path: Path, test_repo: testrepo.Repo, form: str
) -> None:
    repo = copy_repo(test_repo, tmp_path / "repo")
    root = testrepo.make_root(tmp_path / "root", [repo], source_format=form)
    if form == "deb822":
        _write_option(root, "Trusted: no")
    else:
        (src,) = root.sources_dir.glob("*.list")
        src.write_text(src.read_text().replace("[signed-by=", "[trusted=no signed-by=", 1))
    testrepo.apt_update(root, check=False)
    proc = subprocess.run(
        ["apt-get", "install", "-y", "aegis-tool"],
        env=testrepo.apt_env(root),
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode != 0
    assert "cannot be authenticated" in proc.stdout + proc.stderr
    cfg = config(tmp_path / "home", root)
    approve(cfg, repo)
    plan = cli_plan(cfg, root, "install", "aegis-tool")
    used = [r for r in plan.repositories if r.uri == repo.uri]
    assert used
    assert "trusted-no" in used[0].problems
    result = decide(cfg, plan)
    assert result.decision is Effect.DENY
    assert "trusted=no" in fired(result)["repo.untrusted"]


def _subkey_key(tmp_path: Path) -> tuple[Key, str]:
    """A certify-only primary key with an ed25519 signing subkey: (key, subkey fpr)."""
    home = Path(tempfile.mkdtemp(prefix="subkey-", dir=cache_dir()))
    home.chmod(0o700)
    env = {"GNUPGHOME": str(home)}
    uid = "Aegis Subkey <subkey@example.invalid>"
    run_tool(["gpg", "--batch", "--passphrase", "", "--quick-gen-key", uid,
              "ed25519", "cert", "never"], env=env)  # fmt: skip
    listing = run_tool(["gpg", "--batch", "--with-colons", "--list-keys"], env=env)
    primary = next(ln.split(":")[9] for ln in listing.splitlines() if ln.startswith("fpr:"))
    run_tool(["gpg", "--batch", "--passphrase", "", "--quick-add-key", primary,
              "ed25519", "sign", "never"], env=env)  # fmt: skip
    listing = run_tool(["gpg", "--batch", "--with-colons", "--list-keys"], env=env)
    fprs = [ln.split(":")[9] for ln in listing.splitlines() if ln.startswith("fpr:")]
    return get_key("subkey", gnupg_home=home), fprs[1]


@pytest.fixture(scope="module")
def subkey_repo(tmp_path_factory: pytest.TempPathFactory) -> tuple[testrepo.Repo, str]:
    """The test repository signed by a subkey; (repo, subkey fingerprint)."""
    tmp = tmp_path_factory.mktemp("subkey")
    key, sub = _subkey_key(tmp)
    repo = testrepo.build_repo(tmp / "repo", key=key, name="subkeyed")
    sign_release(dist(repo), key)
    return repo, sub


def _variants(repo: testrepo.Repo, sub: str) -> dict[str, str]:
    return {
        "primary": repo.fingerprint,
        "primary!": repo.fingerprint + "!",
        "subkey": sub,
        "subkey!": sub + "!",
    }


# What each release's apt does (checked against the host's apt in the test, too).
GPGV_ACCEPTS = {"primary": True, "primary!": False, "subkey": True, "subkey!": True}
SQV_ACCEPTS = {"primary": True, "primary!": False, "subkey": False, "subkey!": False}


@pytest.mark.parametrize("variant", sorted(GPGV_ACCEPTS))
def test_signed_by_fingerprints_with_subkeys_are_judged_as_apt_judges_them(
    tmp_path: Path, subkey_repo: tuple[testrepo.Repo, str], variant: str
) -> None:
    base, sub = subkey_repo
    repo = copy_repo(base, tmp_path / "repo")
    value = _variants(repo, sub)[variant]
    root = testrepo.make_root(tmp_path / "root", [repo], signed_by_form="fingerprint")
    (src,) = root.sources_dir.glob("*.sources")
    src.write_text(re.sub(r"^Signed-By: .*$", f"Signed-By: {value}", src.read_text(), flags=re.M))
    out = apt_update(root)
    apt_accepts = not apt_refused(out)
    expected = (SQV_ACCEPTS if APT_USES_SQV else GPGV_ACCEPTS)[variant]
    assert apt_accepts is expected, out
    cfg = config(tmp_path / "home", root)
    approve(cfg, repo)
    plan = cli_plan(cfg, root, "update")
    (ev,) = plan.repositories
    assert (ev.signature == "good") is apt_accepts, (ev.signature, ev.problems)
    if apt_accepts:
        # The primary fingerprint is the signer identity policy approves.
        assert ev.signer_fingerprint == repo.fingerprint
        assert "repo.untrusted" not in fired(decide(cfg, plan))
    else:
        assert decide(cfg, plan).decision is Effect.DENY


@pytest.mark.parametrize("whose", ["signer", "other"])
def test_a_fingerprint_beside_a_keyring_path_restricts_the_signer(
    tmp_path: Path, test_repo: testrepo.Repo, whose: str
) -> None:
    """``Signed-By: /k.gpg,FPR``: apt verifies with the keyring, then keeps FPR's signatures."""
    repo = copy_repo(test_repo, tmp_path / "repo")
    fpr = repo.fingerprint if whose == "signer" else get_key("other").fingerprint
    root = testrepo.make_root(tmp_path / "root", [repo])
    (src,) = root.sources_dir.glob("*.sources")
    src.write_text(re.sub(r"^(Signed-By: .*)$", rf"\1,{fpr}", src.read_text(), flags=re.M))
    apt_accepts = not apt_refused(apt_update(root))
    assert apt_accepts is (whose == "signer")
    cfg = config(tmp_path / "home", root)
    approve(cfg, repo)
    (ev,) = cli_plan(cfg, root, "update").repositories
    assert (ev.signature == "good") is apt_accepts, ev.signature
