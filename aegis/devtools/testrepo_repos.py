"""Signed test repositories: build, index, sign (``InRelease``, ``Release.gpg``), break.

Part of :mod:`aegis.devtools.testrepo` (which re-exports :class:`Repo`,
:func:`build_repo`, :func:`negative_repo` and :func:`debian_lookalike_repo`).
Recipes follow docs/testing.md "Test repository": ``apt-ftparchive`` indexes the pool,
a throwaway ed25519 key from :mod:`aegis.devtools.testrepo_keys` signs the
Release, and the negative kinds break exactly one thing apt checks at update.

Example::

    repo = build_repo(tmp / "repo")
    bad = negative_repo(tmp / "bad", "badsig")
    assert bad.expect_update_error == "bad-signature"
"""

from __future__ import annotations

import dataclasses
import gzip
import os
import shutil
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from aegis.devtools.testrepo_keys import Key, get_key, run_tool
from aegis.devtools.testrepo_packages import (
    DEBIAN_LOOKALIKE_PACKAGES,
    DEFAULT_PACKAGES,
    PackageSpec,
    build_deb,
)

NEGATIVE_KINDS = ("wrong-key", "unsigned", "badsig", "hash-mismatch", "expired", "no-signed-by")


@dataclass(frozen=True)
class Repo:
    """A built repository and the key apt should trust for it."""

    path: Path
    suite: str
    component: str
    origin: str
    key_path: Path
    """Binary keyring apt should use (Signed-By)."""
    armored_key_path: Path
    fingerprint: str
    """Fingerprint of ``key_path`` (not necessarily the signer: see ``wrong-key``)."""
    uri: str
    """``file://`` URI of :attr:`path`."""
    name: str = "aegis-test"
    signed_by_override: str | None = None
    """Signed-By form forced for this repo by :func:`make_root` (``no-signed-by``)."""
    expect_update_error: str | None = None
    """Why apt-get update refuses a negative repo, as
    :func:`aegis.ecosystems.apt.parse.update_refusal` names it from apt's output
    (``missing-key``, ``bad-signature`` ...): gpgv and sqv word the same refusal differently."""
    packages: tuple[PackageSpec, ...] = ()

    @property
    def copy_uri(self) -> str:
        """``copy://`` URI (what mmdebstrap needs)."""
        return "copy://" + str(self.path)


def _release_time(dt: datetime) -> str:
    return dt.astimezone(UTC).strftime("%a, %d %b %Y %H:%M:%S UTC")


def build_repo(
    dest: Path | str,
    *,
    suite: str = "aegis-test",
    origin: str = "Aegis Test",
    component: str = "main",
    packages: Iterable[PackageSpec] | None = None,
    gnupg_home: Path | None = None,
    key_name: str = "default",
    valid_until: datetime | None = None,
    date: datetime | None = None,
    sign: bool = True,
    name: str | None = None,
    digest: str = "SHA256",
    key: Key | None = None,
) -> Repo:
    """Build a signed repository under ``dest`` and return its :class:`Repo`.

    ``date`` overrides the Release ``Date`` (freeze tests); ``valid_until`` adds
    ``Valid-Until``. ``sign=False`` leaves the repository unsigned. ``digest`` is
    gpg's ``--digest-algo`` and ``key`` a ready key (weak-algorithm fixtures).
    """
    dest = Path(dest).resolve()
    specs = tuple(DEFAULT_PACKAGES if packages is None else packages)
    key = key or get_key(key_name, gnupg_home=gnupg_home)
    pool = dest / "pool" / component
    pool.mkdir(parents=True, exist_ok=True)
    for spec in specs:
        deb = build_deb(spec)
        target = pool / f"{spec.name}_{spec.version}_all.deb"
        if target.exists():
            target.unlink()
        try:
            os.link(deb, target)
        except OSError:
            shutil.copyfile(deb, target)
    dist = dest / "dists" / suite
    for arch in ("amd64", "all"):
        bdir = dist / component / f"binary-{arch}"
        bdir.mkdir(parents=True, exist_ok=True)
        run_tool(
            ["apt-ftparchive", "packages", f"pool/{component}"],
            cwd=dest,
            stdout_path=bdir / "Packages",
        )
        (bdir / "Packages.gz").write_bytes(gzip.compress((bdir / "Packages").read_bytes(), mtime=0))
    pfx = "APT::FTPArchive::Release::"
    release = run_tool(
        [
            "apt-ftparchive",
            "-o",
            f"{pfx}Origin={origin}",
            "-o",
            f"{pfx}Label={origin}",
            "-o",
            f"{pfx}Suite={suite}",
            "-o",
            f"{pfx}Codename={suite}",
            "-o",
            f"{pfx}Architectures=amd64 all",
            "-o",
            f"{pfx}Components={component}",
            "release",
            f"dists/{suite}",
        ],
        cwd=dest,
    )
    release = _patch_release(release, date=date, valid_until=valid_until)
    (dist / "Release").write_text(release)
    for stale in ("InRelease", "Release.gpg"):
        (dist / stale).unlink(missing_ok=True)
    if sign:
        sign_release(dist, key, digest=digest)
    return Repo(
        path=dest,
        suite=suite,
        component=component,
        origin=origin,
        key_path=key.keyring,
        armored_key_path=key.armored,
        fingerprint=key.fingerprint,
        uri="file://" + str(dest),
        name=name or _safe_name(dest.name),
        packages=specs,
    )


def _safe_name(text: str) -> str:
    cleaned = "".join(c if c.isalnum() or c in "-_" else "-" for c in text.lower())
    return cleaned.strip("-") or "repo"


def _patch_release(text: str, *, date: datetime | None, valid_until: datetime | None) -> str:
    lines = text.splitlines()
    out: list[str] = []
    for original in lines:
        line = original
        if date is not None and line.startswith("Date:"):
            line = f"Date: {_release_time(date)}"
        if line.startswith("Valid-Until:"):
            continue
        out.append(line)
        if line.startswith("Date:") and valid_until is not None:
            out.append(f"Valid-Until: {_release_time(valid_until)}")
    return "\n".join(out) + "\n"


def sign_release(
    dist: Path, key: Key, *, digest: str = "SHA256", extra: tuple[str, ...] = ()
) -> None:
    """(Re-)sign ``dist/Release`` into ``InRelease`` and ``Release.gpg`` with ``key``.

    ``extra`` goes to gpg (``--faked-system-time``, ``--force-v3-sigs`` ...).
    """
    env = {"GNUPGHOME": str(key.gnupg_home)}
    base = [
        "gpg",
        "--batch",
        "--yes",
        "--pinentry-mode",
        "loopback",
        "--passphrase",
        "",
        "--local-user",
        key.fingerprint,
        "--digest-algo",
        digest,
        *extra,
    ]
    run_tool([*base, "--clearsign", "-o", str(dist / "InRelease"), str(dist / "Release")], env=env)
    run_tool([*base, "-abs", "-o", str(dist / "Release.gpg"), str(dist / "Release")], env=env)


def negative_repo(dest: Path | str, kind: str, **kwargs: object) -> Repo:
    """Build a repository that apt must reject at update (docs/testing.md "Test repository").

    kinds: ``wrong-key`` (signed by another key than the one apt is given),
    ``unsigned``, ``badsig`` (Release edited after signing), ``hash-mismatch``
    (Packages edited after signing), ``expired`` (Valid-Until passed),
    ``no-signed-by`` (valid repo, source without Signed-By and no key).
    """
    if kind not in NEGATIVE_KINDS:
        raise ValueError(f"unknown negative kind {kind!r}")
    dest = Path(dest)
    opts: dict[str, object] = dict(kwargs)
    opts.setdefault("name", f"neg-{kind}")
    if kind == "wrong-key":
        opts["key_name"] = "other"
    if kind == "unsigned":
        opts["sign"] = False
    if kind == "expired":
        now = datetime.now(UTC)
        opts["date"] = now - timedelta(days=10)
        opts["valid_until"] = now - timedelta(days=1)
    repo = build_repo(dest, **opts)  # type: ignore[arg-type]
    dist = repo.path / "dists" / repo.suite
    expect = {
        "wrong-key": "missing-key",
        "unsigned": "unsigned",
        "badsig": "bad-signature",
        "hash-mismatch": "hash-mismatch",
        "expired": "expired",
        "no-signed-by": "missing-key",
    }[kind]
    if kind == "wrong-key":
        default = get_key("default")
        repo = dataclasses.replace(
            repo,
            key_path=default.keyring,
            armored_key_path=default.armored,
            fingerprint=default.fingerprint,
        )
    elif kind == "badsig":
        for fname in ("InRelease", "Release"):
            p = dist / fname
            p.write_text(p.read_text().replace(f"Origin: {repo.origin}", "Origin: Tampered", 1))
    elif kind == "hash-mismatch":
        for bdir in (dist / repo.component).glob("binary-*"):
            p = bdir / "Packages"
            p.write_text(p.read_text().replace("Description: ", "Description: tampered ", 1))
            (bdir / "Packages.gz").write_bytes(gzip.compress(p.read_bytes(), mtime=0))
    elif kind == "no-signed-by":
        repo = dataclasses.replace(repo, signed_by_override="none")
    return dataclasses.replace(repo, expect_update_error=expect)


def debian_lookalike_repo(dest: Path | str, **kwargs: object) -> Repo:
    """A validly signed third-party repo whose Release says ``Origin: Debian``.

    It carries higher ``aegis-base`` and ``libssl3`` versions (docs/testing.md "Facts
    about apt and Debian").
    """
    opts: dict[str, object] = {
        "origin": "Debian",
        "suite": "aegis-lookalike",
        "packages": DEBIAN_LOOKALIKE_PACKAGES,
        "key_name": "lookalike",
        "name": "lookalike",
    }
    opts.update(kwargs)
    return build_repo(dest, **opts)  # type: ignore[arg-type]
