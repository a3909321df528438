"""Aegis's own Release verification against what apt refuses (issues 12 and 18).

Every repository here is real: built and signed with gpg (expired and revoked keys,
``--digest-algo SHA1``/``SHA224``, DSA and RSA-1024 keys, ``--faked-system-time``),
verified by the verifier this host's apt uses (gpgv on bookworm, sqv under apt's
Sequoia policy on trixie), and judged by the real policy engine. Where apt on this
host refuses a repository, the plan is denied; where bookworm's apt accepts a
signature apt 3 refuses, the plan names the weakness and a human decides.
"""

from __future__ import annotations

import dataclasses
import subprocess
import tempfile
from datetime import UTC, datetime
from pathlib import Path

import pytest

from aegis.config import Config, load_config
from aegis.devtools import testrepo
from aegis.devtools.testrepo_keys import Key, cache_dir, get_key, run_tool
from aegis.devtools.testrepo_repos import sign_release
from aegis.ecosystems.apt.evidence.sources import resolve_apt_paths
from aegis.ecosystems.apt.evidence.verifier import choose_verifier
from aegis.ecosystems.apt.plan import analyze_apt
from aegis.model import Intent, Operation, Plan, Tool
from aegis.policy.engine import evaluate
from aegis.policy.result import Effect, PolicyResult
from aegis.policy.run import load_policy

APT_USES_SQV = Path("/usr/lib/apt/methods/sqv").is_file() and Path("/usr/bin/sqv").is_file()
_TAIL = '\n[review]\nrequired = false\n\n[rules."vuln.db-missing"]\nenabled = false\n'


def _policy(cfg: Config, repo: testrepo.Repo, extra: str = "") -> None:
    head = 'format = "aegis.policy-config/1"\nruleset = "aegis.rules/1"\nname = "t"\n\n'
    src = (
        f'[[sources]]\nname = "t"\nuri = "{repo.uri}"\nsuite = "{repo.suite}"\n'
        f'component = "{repo.component}"\nsigner_fingerprint = "{repo.fingerprint}"\n'
        f"distribution = true\n{extra}"
    )
    cfg.policy_path.parent.mkdir(parents=True, exist_ok=True)
    cfg.policy_path.write_text(head + src + _TAIL, encoding="utf-8")


def _plan(
    tmp_path: Path, repo: testrepo.Repo, op: str = "update", *targets: str, extra: str = ""
) -> tuple[Plan, PolicyResult]:
    root = testrepo.make_root(tmp_path / f"root-{op}", [repo])
    if op != "update":
        # The host's apt decides what reaches its lists; a refused update leaves none,
        # and Aegis then reads the repository itself.
        subprocess.run(
            ["apt-get", "update"],
            env=testrepo.apt_env(root),
            capture_output=True,
            check=False,
        )
    cfg = load_config(
        {
            "AEGIS_HOME": str(tmp_path / f"home-{op}"),
            "AEGIS_APT_CONFIG": str(root.apt_config),
            "AEGIS_HOST_ID": "test-host",
        }
    )
    _policy(cfg, repo, extra)
    # Now, not the module's import time: a Release built minutes into a long run is
    # otherwise dated beyond the 60 s clock skew.
    now = datetime.now(UTC).replace(microsecond=0)
    intent = Intent(Tool.APT, Operation(op), targets, "tester", now.strftime("%Y-%m-%dT%H:%M:%SZ"))
    plan = analyze_apt(cfg, intent, now=now, inspect_contents=False)
    return plan, evaluate(plan, None, load_policy(cfg), now)


def _fired(result: PolicyResult) -> dict[str, str]:
    return {f.rule_id: f.reason for f in result.fired}


def _key(tmp_path: Path, name: str, *, algo: str = "ed25519", expire: str = "never",
         at: str | None = None) -> Key:  # fmt: skip
    """A fresh key in its own GNUPGHOME (``at``: gpg's --faked-system-time).

    The home lives in the process's short key cache directory (removed, agents
    stopped, at exit): gpg-agent's socket path must fit in 108 bytes.
    """
    home = Path(tempfile.mkdtemp(prefix=f"{name[:8]}-", dir=cache_dir()))
    home.chmod(0o700)
    faked = ["--faked-system-time", at] if at else []
    run_tool(
        ["gpg", "--batch", "--passphrase", "", *faked, "--quick-gen-key",
         f"{name} <{name}@example.invalid>", algo, "sign", expire],
        env={"GNUPGHOME": str(home)},
    )  # fmt: skip
    return get_key(name, gnupg_home=home)


def _resign(repo: testrepo.Repo, key: Key, **kw: object) -> testrepo.Repo:
    sign_release(repo.path / "dists" / repo.suite, key, **kw)  # type: ignore[arg-type]
    return dataclasses.replace(
        repo, key_path=key.keyring, armored_key_path=key.armored, fingerprint=key.fingerprint
    )


def _apt_update_refuses(repo: testrepo.Repo, tmp_path: Path) -> bool:
    root = testrepo.make_root(tmp_path / "apt-judge", [repo])
    proc = subprocess.run(
        ["apt-get", "update"],
        env=testrepo.apt_env(root),
        capture_output=True,
        text=True,
        check=False,
    )
    out = proc.stdout + proc.stderr
    return proc.returncode != 0 or "E: " in out or "W: OpenPGP signature verification" in out


# --- keys and signatures apt refuses on every release -----------------------------------


def test_a_release_signed_by_an_expired_key_is_denied(tmp_path: Path) -> None:
    """EXPKEYSIG beside VALIDSIG was 'good' before; apt's gpgv method calls it worthless."""
    repo = testrepo.build_repo(tmp_path / "repo", name="expired")
    key = _key(tmp_path, "expkey", expire="1d", at="20200101T000000!")
    repo = _resign(repo, key, extra=("--faked-system-time", "20200101T120000!"))
    plan, result = _plan(tmp_path, repo)
    (ev,) = plan.repositories
    if ev.verifier and ev.verifier.startswith("gpgv"):
        assert _apt_update_refuses(repo, tmp_path)  # EXPKEYSIG
        assert ev.signature == "expired-key"
    else:
        # sqv judges the key at the signature's (backdated) time, and apt 3 accepts it;
        # Aegis refuses a signature made long before the Release's own Date.
        assert ev.signature == "backdated"
    assert result.decision is Effect.DENY
    assert "InRelease signature" in _fired(result)["repo.untrusted"]


def test_a_release_signed_by_a_revoked_key_is_denied(tmp_path: Path) -> None:
    repo = testrepo.build_repo(tmp_path / "repo", name="revoked")
    key = _key(tmp_path, "revkey")
    repo = _resign(repo, key)
    rev = next((key.gnupg_home / "openpgp-revocs.d").glob("*.rev")).read_text()
    (tmp_path / "rev.asc").write_text(rev.replace(":-----BEGIN", "-----BEGIN"))
    env = {"GNUPGHOME": str(key.gnupg_home)}
    run_tool(["gpg", "--batch", "--import", str(tmp_path / "rev.asc")], env=env)
    exported = subprocess.run(
        ["gpg", "--batch", "--export", key.fingerprint],
        env={"GNUPGHOME": str(key.gnupg_home), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        check=True,
    ).stdout
    revoked = tmp_path / "revoked.gpg"
    revoked.write_bytes(exported)
    repo = dataclasses.replace(repo, key_path=revoked)
    assert _apt_update_refuses(repo, tmp_path)
    plan, result = _plan(tmp_path, repo)
    (ev,) = plan.repositories
    assert ev.signature != "good"
    assert result.decision is Effect.DENY


@pytest.mark.parametrize("digest", ["SHA1", "MD5", "RIPEMD160"])
def test_a_weak_digest_signature_is_denied(tmp_path: Path, digest: str) -> None:
    """apt refuses VALIDSIG hash algorithms 1-3 (gpgv) and SHA-1 by policy (sqv)."""
    repo = testrepo.build_repo(tmp_path / "repo", name=f"d-{digest.lower()}")
    try:
        repo = _resign(repo, get_key(), digest=digest)
    except RuntimeError as exc:  # gpg may refuse to make it at all (ed25519 and MD5)
        pytest.skip(f"gpg here cannot sign with {digest}: {exc}")
    assert _apt_update_refuses(repo, tmp_path)
    plan, result = _plan(tmp_path, repo)
    (ev,) = plan.repositories
    assert ev.signature in ("weak-digest", "policy-rejected", "error")
    assert result.decision is Effect.DENY


# --- algorithms apt 3 refuses, bookworm's apt accepts -----------------------------------

_WEAK = {
    "sha224": ({"digest": "SHA224"}, None),
    "dsa": ({}, "dsa2048"),
    "rsa1024": ({}, "rsa1024"),
}


@pytest.mark.parametrize("kind", sorted(_WEAK))
def test_weak_algorithms_are_denied_under_sqv_and_named_under_gpgv(
    tmp_path: Path, kind: str
) -> None:
    """apt 3 (sqv, default-sequoia.config) refuses each; apt 2.6 (gpgv) accepts each.

    On an sqv host the update and install plans are denied; on a gpgv host the
    weakness is a named problem (repo.weak-algorithm) that needs an approval.
    """
    opts, algo = _WEAK[kind]
    repo = testrepo.build_repo(tmp_path / "repo", name=f"w-{kind}")
    key = _key(tmp_path, f"w{kind}", algo=algo) if algo else get_key()
    repo = _resign(repo, key, **opts)
    for op, targets in (("update", ()), ("install", ("aegis-tool",))):
        plan, result = _plan(tmp_path, repo, op, *targets)
        if op == "install" and not plan.repositories:
            # apt 3 itself refused the repository at update (sqv): nothing can be planned
            # from it, and the plan is denied (the package is unknown).
            assert APT_USES_SQV, plan
            assert result.decision is Effect.DENY
            continue
        (ev,) = plan.repositories
        fired = _fired(result)
        if APT_USES_SQV and ev.verifier and ev.verifier.startswith("sqv"):
            assert ev.signature == "policy-rejected", (op, ev)
            assert ev.verifier_policy
            assert result.decision is Effect.DENY
        elif ev.verifier and "--assert-pubkey-algo" in ev.verifier and kind != "sha224":
            assert ev.signature == "policy-rejected"  # trixie's gpgv with apt's assertion
            assert result.decision is Effect.DENY
        else:
            assert ev.signature == "good"
            assert any(p.startswith("weak-algorithm:") for p in ev.problems), ev.problems
            assert "repo.weak-algorithm" in fired, fired
            assert result.decision in (Effect.REQUIRE_APPROVAL, Effect.DENY)


def test_an_rsa_2048_key_and_sha256_are_clean(tmp_path: Path) -> None:
    repo = testrepo.build_repo(tmp_path / "repo", name="rsa2048")
    repo = _resign(repo, _key(tmp_path, "rsa2k", algo="rsa2048"))
    plan, result = _plan(tmp_path, repo)
    (ev,) = plan.repositories
    assert ev.signature == "good"
    assert not [p for p in ev.problems if p.startswith("weak-")]
    assert result.decision is Effect.ALLOW


# --- the Release's own contents -------------------------------------------------------


def _edit_release(repo: testrepo.Repo, edit: object) -> testrepo.Repo:
    rel = repo.path / "dists" / repo.suite / "Release"
    rel.write_text(edit(rel.read_text()))  # type: ignore[operator]
    return _resign(repo, get_key())


def _only_weak_hashes(text: str) -> str:
    out, skip = [], False
    for ln in text.splitlines():
        if not ln.startswith(" "):
            skip = ln.startswith(("SHA256:", "SHA512:"))
        if not skip:
            out.append(ln)
    return "\n".join(out) + "\n"


def test_a_release_with_only_md5_and_sha1_hashes_is_denied(tmp_path: Path) -> None:
    """apt: "provides only weak security information"; the index check skipped it before."""
    repo = testrepo.build_repo(tmp_path / "repo", name="weakhash")
    rel = (repo.path / "dists" / repo.suite / "Release").read_text()
    if "MD5Sum:" not in rel:
        rel = rel.replace("SHA256:", "MD5Sum:\n" + _md5_lines(repo) + "SHA256:", 1)
        (repo.path / "dists" / repo.suite / "Release").write_text(rel)
    repo = _edit_release(repo, _only_weak_hashes)
    assert _apt_update_refuses(repo, tmp_path)
    plan, result = _plan(tmp_path, repo)
    (ev,) = plan.repositories
    assert ev.signature == "good"
    assert "weak-hashes" in ev.problems
    assert result.decision is Effect.DENY
    assert "weak-hashes" in _fired(result)["repo.untrusted"]


def _md5_lines(repo: testrepo.Repo) -> str:
    import hashlib

    dist = repo.path / "dists" / repo.suite
    return "".join(
        f" {hashlib.md5(p.read_bytes(), usedforsecurity=False).hexdigest()} "
        f"{p.stat().st_size} {p.relative_to(dist)}\n"
        for p in sorted(dist.glob(f"{repo.component}/binary-*/Packages*"))
    )


def test_an_index_listed_only_with_md5_is_not_verified_evidence(tmp_path: Path) -> None:
    repo = testrepo.build_repo(tmp_path / "repo", name="weakindex")

    def drop_one(text: str) -> str:
        return (
            "\n".join(
                ln
                for ln in text.splitlines()
                if not (
                    ln.startswith(" ") and len(ln.split()[0]) > 40 and "amd64/Packages.gz" in ln
                )
            )
            + "\n"
        )

    rel = repo.path / "dists" / repo.suite / "Release"
    rel.write_text(
        rel.read_text().replace("SHA256:", "MD5Sum:\n" + _md5_lines(repo) + "SHA256:", 1)
    )
    repo = _edit_release(repo, drop_one)
    plan, result = _plan(tmp_path, repo)
    (ev,) = plan.repositories
    assert "weak-index-hash:main/binary-amd64/Packages.gz" in ev.problems
    assert result.decision is Effect.DENY


def test_a_release_of_another_suite_signed_by_the_approved_key_is_denied(
    tmp_path: Path,
) -> None:
    """An archive key signs experimental too: the signed Suite/Codename must match the entry."""
    repo = testrepo.build_repo(tmp_path / "repo", name="othersuite")
    repo = _edit_release(
        repo,
        lambda t: t.replace(f"Suite: {repo.suite}", "Suite: experimental").replace(
            f"Codename: {repo.suite}", "Codename: rc-buggy"
        ),
    )
    plan, result = _plan(tmp_path, repo)
    (ev,) = plan.repositories
    assert (ev.signed_suite, ev.signed_codename) == ("experimental", "rc-buggy")
    assert "suite-mismatch:experimental/rc-buggy" in ev.problems
    assert result.decision is Effect.DENY
    assert "experimental/rc-buggy" in _fired(result)["repo.untrusted"]
    # The operator may approve exactly that: then it no longer denies.
    _, approved = _plan(tmp_path / "ok", repo, extra='signed_suites = ["rc-buggy"]\n')
    assert approved.decision is Effect.ALLOW, approved.fired


def test_the_signed_suite_and_codename_are_recorded(tmp_path: Path) -> None:
    repo = testrepo.build_repo(tmp_path / "repo", name="suite")
    plan, result = _plan(tmp_path, repo)
    (ev,) = plan.repositories
    assert (ev.signed_suite, ev.signed_codename) == (repo.suite, repo.suite)
    assert ev.verifier
    assert result.decision is Effect.ALLOW


# --- the verifier apt would choose ------------------------------------------------------


def test_the_verifier_is_chosen_as_apt_chooses_it(tmp_path: Path) -> None:
    """apt 3 (an sqv method) verifies with /usr/bin/sqv unless APT::Key::GPGVCommand is set."""
    methods = tmp_path / "methods"
    methods.mkdir()
    bookworm = choose_verifier(resolve_apt_paths([("Dir::Bin::methods", str(methods))]))
    assert bookworm.tool == "gpgv"  # apt 2.6 has no sqv method: gpgv whatever is installed
    (methods / "sqv").write_bytes(b"")
    apt3 = choose_verifier(resolve_apt_paths([("Dir::Bin::methods", str(methods))]))
    assert apt3.tool == ("sqv" if Path("/usr/bin/sqv").is_file() else "gpgv")
    if apt3.tool == "sqv":
        assert apt3.describe().startswith("sqv (/usr/bin/sqv) policy ")
    forced = choose_verifier(
        resolve_apt_paths(
            [("Dir::Bin::methods", str(methods)), ("APT::Key::GPGVCommand", "/usr/bin/gpgv")]
        )
    )
    assert (forced.tool, forced.path) == ("gpgv", "/usr/bin/gpgv")


def test_any_good_signer_of_a_multiply_signed_release_may_be_the_approved_one(
    tmp_path: Path,
) -> None:
    """Debian signs each Release with several keys; gpgv and sqv list them in different
    orders, so the approved key is looked for among every good signer, not the first."""
    first = _key(tmp_path, "multi")
    env = {"GNUPGHOME": str(first.gnupg_home)}
    run_tool(
        ["gpg", "--batch", "--passphrase", "", "--quick-gen-key",
         "second <second@example.invalid>", "ed25519", "sign", "never"],
        env=env,
    )  # fmt: skip
    listing = run_tool(["gpg", "--batch", "--with-colons", "--list-secret-keys"], env=env)
    fprs = [ln.split(":")[9] for ln in listing.splitlines() if ln.startswith("fpr:")]
    second = next(f for f in fprs if f != first.fingerprint)
    repo = testrepo.build_repo(tmp_path / "repo", name="multi")
    dist = repo.path / "dists" / repo.suite
    (dist / "Release.gpg").unlink()
    run_tool(
        ["gpg", "--batch", "--yes", "--digest-algo", "SHA256", "-u", first.fingerprint,
         "-u", second, "--clearsign", "-o", str(dist / "InRelease"), str(dist / "Release")],
        env=env,
    )  # fmt: skip
    both = tmp_path / "both.gpg"
    both.write_bytes(
        subprocess.run(
            ["gpg", "--batch", "--export"], env={**env, "PATH": "/usr/bin:/bin"},
            capture_output=True, check=True,
        ).stdout
    )  # fmt: skip
    for approved in (first.fingerprint, second):
        mine = dataclasses.replace(repo, key_path=both, fingerprint=approved)
        plan, result = _plan(tmp_path / approved[:8], mine)
        (ev,) = plan.repositories
        assert ev.signer_fingerprint == approved
        assert ev.approved
        assert result.decision is Effect.ALLOW, result.fired


def test_stray_files_in_trusted_gpg_d_are_skipped_as_apt_skips_them(tmp_path: Path) -> None:
    """Both apt methods ignore empty files and files that are no keyring; so does Aegis."""
    repo = testrepo.build_repo(tmp_path / "repo", name="stray")
    root = testrepo.make_root(tmp_path / "root", [repo], signed_by_form="fingerprint")
    parts = root.root / "etc/apt/trusted.gpg.d"
    (parts / "empty.gpg").write_bytes(b"")
    (parts / "junk.gpg").write_bytes(b"not a keyring\n")
    testrepo.apt_update(root)  # apt accepts it
    cfg = load_config(
        {
            "AEGIS_HOME": str(tmp_path / "home"),
            "AEGIS_APT_CONFIG": str(root.apt_config),
            "AEGIS_HOST_ID": "test-host",
        }
    )
    _policy(cfg, repo)
    now = datetime.now(UTC).replace(microsecond=0)
    intent = Intent(Tool.APT, Operation.UPDATE, (), "tester", now.strftime("%Y-%m-%dT%H:%M:%SZ"))
    (ev,) = analyze_apt(cfg, intent, now=now, inspect_contents=False).repositories
    assert ev.signature == "good"
    assert ev.signer_fingerprint == repo.fingerprint
