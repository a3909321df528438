"""Package contents evidence: maintainer scripts and data-archive members of one .deb.

Called by the apt analyzer for every package the plan installs, upgrades or
downgrades, on a .deb already fetched into Aegis's private cache and verified
against the signed index (:mod:`aegis.ecosystems.apt.evidence.download`). Nothing is
extracted onto the system (:mod:`aegis.ecosystems.apt.evidence.debfile`).

Public API:

- :func:`inspect_deb` (edge: reads the .deb and dpkg's info directory) ->
  :class:`Inspection` (findings, the untrusted Description, control fields);
  :func:`scan` -> just the findings.
- :func:`scan_members` (pure) and :func:`aegis.analyze.evidence.scripts.scan_scripts`
  (pure; script rules and ``script.new``/``script.changed`` for upgrades).
- :func:`installed_scripts` (edge) reads an installed package's scripts from
  ``<root>/var/lib/dpkg/info`` (``<pkg>.<script>`` or ``<pkg>:<arch>.<script>``);
  :func:`dpkg_info_dir` builds that path for a dpkg root.

Member rules (stable ids; ``file`` is the member path; ``line`` is 0 unless the
rule read the file, as for apt hooks):

==========================  =========  ===================================================
id                          severity   member
==========================  =========  ===================================================
content.apt-hook            sensitive  any file in /etc/apt/apt.conf.d (line = first hook:
                                       ``Pre-Invoke``/``Post-Invoke``/``Pre-Install-Pkgs``)
                            hostile    ... that disables verification (AllowInsecure...,
                                       AllowUnauthenticated, Check-Valid-Until false) or
                                       whose hook command trips a hostile script rule
content.apt-source          sensitive  /etc/apt/sources.list[.d]
content.apt-keyring         sensitive  /etc/apt/trusted.gpg[.d], /etc/apt/keyrings
content.apt-pin             sensitive  /etc/apt/preferences[.d]
content.sudoers             sensitive  /etc/sudoers, /etc/sudoers.d/* (hostile: NOPASSWD)
content.cron                sensitive  /etc/crontab, /etc/cron.*/, /var/spool/cron
content.systemd-unit        sensitive  systemd system/user unit and generator directories
content.init-script         sensitive  /etc/init.d, /etc/rc?.d
content.ld-preload          hostile    /etc/ld.so.preload
content.ld-config           sensitive  /etc/ld.so.conf[.d]
content.pam                 sensitive  /etc/pam.d, /etc/pam.conf, /etc/security, PAM modules
content.profile-d           sensitive  /etc/profile[.d], shell rc files, /etc/environment
content.udev                sensitive  udev rules directories
content.sshd                sensitive  /etc/ssh/sshd_config[.d]
content.authorized-keys     hostile    any authorized_keys file
content.setuid              sensitive  setuid/setgid regular files (hostile: a shell or
                                       interpreter, or also world-writable)
content.world-writable      sensitive  world-writable file (not a sticky directory)
content.device              hostile    character or block device nodes
content.home-dir            sensitive  files under /root, /home, /tmp, /var/tmp, /dev/shm
content.path-traversal      hostile    a member name with ``..`` components
content.symlink-path        hostile    a member under a symlink the archive itself ships
                                       (rules then judge the path it resolves to)
content.hardlink-outside    hostile    a hard link to a file the package does not ship
content.bad-name            hostile    a member name with a control character (newline, ESC)
content.malformed           hostile    the .deb cannot be read within bounds
content.identity-mismatch   hostile    control Package/Version differ from the plan's
==========================  =========  ===================================================

Example:
    >>> from aegis.ecosystems.apt.evidence.debfile import Member
    >>> [f.rule for f in scan_members("p", [Member("/usr/bin/x", 0o4755, "file")])]
    ['content.setuid']
"""

from __future__ import annotations

import io
import os
import posixpath
import re
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path

from aegis.analyze.evidence.script_rules import DANGEROUS_SUID
from aegis.analyze.evidence.script_text import HOSTILE, SENSITIVE
from aegis.analyze.evidence.scripts import scan_script, scan_scripts
from aegis.ecosystems.apt.evidence.debfile import (
    MAINTAINER_SCRIPTS,
    DebContents,
    DebFormatError,
    DebLimits,
    Member,
    read_deb,
    read_deb_stream,
)
from aegis.ecosystems.apt.evidence.model_text import scan_scripts as model_directed
from aegis.ecosystems.apt.evidence.model_text import scan_text
from aegis.model import Finding

MAX_INSTALLED_SCRIPT = 1024 * 1024
"""Bytes read of one installed script from dpkg's info directory."""


@dataclass(frozen=True)
class Inspection:
    """What :func:`inspect_deb` learned about one package file."""

    package: str
    version: str
    findings: tuple[Finding, ...]
    description: str
    """The package's Description, untrusted: for the reviewer, shown only via aegis.text."""
    control: dict[str, str] = field(default_factory=dict)
    """All control fields (untrusted)."""
    scripts: tuple[str, ...] = ()
    """Names of the maintainer scripts the package ships."""
    member_count: int = 0


# --- member rules (pure) -------------------------------------------------------------

_PATH_RULES: tuple[tuple[str, str, re.Pattern[str]], ...] = tuple(
    (rule, severity, re.compile(pattern))
    for rule, severity, pattern in (
        ("content.apt-source", SENSITIVE, r"^/etc/apt/sources\.list(?:$|\.d/.)"),
        ("content.apt-keyring", SENSITIVE, r"^/etc/apt/(?:trusted\.gpg(?:$|\.d/.)|keyrings/.)"),
        ("content.apt-pin", SENSITIVE, r"^/etc/apt/preferences(?:$|\.d/.)"),
        ("content.cron", SENSITIVE, r"^/etc/crontab$|^/etc/cron\.[a-z]+/.|^/var/spool/cron/."),
        (
            "content.systemd-unit",
            SENSITIVE,
            r"^(?:/usr)?/(?:etc|lib|run)/systemd/(?:system|user)(?:-generators|-preset)?/."
            r"|^/etc/systemd/(?:system|user)/.",
        ),
        ("content.init-script", SENSITIVE, r"^/etc/(?:init\.d|rc[0-6S]\.d)/."),
        ("content.ld-preload", HOSTILE, r"^/etc/ld\.so\.preload$"),
        ("content.ld-config", SENSITIVE, r"^/etc/ld\.so\.conf(?:$|\.d/.)"),
        (
            "content.pam",
            SENSITIVE,
            r"^/etc/pam\.(?:d/.|conf$)|^/etc/security/."
            r"|^(?:/usr)?/lib/(?:[\w-]+/)?security/pam_[^/]*\.so$",
        ),
        (
            "content.profile-d",
            SENSITIVE,
            r"^/etc/profile(?:$|\.d/.)|^/etc/(?:bash\.bashrc|zsh/\w+|environment|skel/\.\w+)$"
            r"|^/root/\.(?:bashrc|profile|bash_profile|zshrc)$",
        ),
        ("content.udev", SENSITIVE, r"^(?:/usr)?/(?:etc|lib)/udev/rules\.d/."),
        ("content.sshd", SENSITIVE, r"^/etc/ssh/sshd_config(?:$|\.d/.)"),
        ("content.authorized-keys", HOSTILE, r"(?:^|/)authorized_keys2?$"),
        ("content.home-dir", SENSITIVE, r"^/(?:root|home|tmp|var/tmp|dev/shm)/."),
    )
)

_APT_INSECURE = re.compile(
    r"AllowInsecureRepositories|AllowUnauthenticated|AllowDowngradeToInsecureRepositories"
    r"|AllowWeakRepositories|Check-Valid-Until\s*(?:\"?\s*(?:false|no|0))"
    r"|Check-Date\s*\"?\s*(?:false|no|0)|trusted\s*=\s*yes",
    re.IGNORECASE,
)
_APT_HOOK = re.compile(r"Pre-Invoke|Post-Invoke|Pre-Install-Pkgs|Post-Invoke-Success", re.I)


def _apt_hook(package: str, member: Member) -> Finding:
    text = (member.content or b"").decode("utf-8", "replace")
    first_hook = 0
    excerpt = ""
    for number, line in enumerate(text.splitlines(), start=1):
        if _APT_INSECURE.search(line):
            return Finding("content.apt-hook", package, member.path, number, HOSTILE, line.strip())
        if _APT_HOOK.search(line) and not first_hook:
            first_hook, excerpt = number, line.strip()
    if first_hook:
        # Judge the hook's commands with the script rules: a hook that fetches and runs
        # code is as hostile as a postinst that does.
        hostile = [
            f for f in scan_script(package, member.path, text.encode()) if f.severity == HOSTILE
        ]
        if hostile:
            return Finding(
                "content.apt-hook",
                package,
                member.path,
                hostile[0].line,
                HOSTILE,
                hostile[0].excerpt,
            )
    return Finding("content.apt-hook", package, member.path, first_hook, SENSITIVE, excerpt)


def _sudoers(package: str, member: Member) -> Finding:
    text = (member.content or b"").decode("utf-8", "replace")
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.lstrip().startswith("#") and "NOPASSWD" in line:
            return Finding("content.sudoers", package, member.path, number, HOSTILE, line.strip())
    return Finding("content.sudoers", package, member.path, 0, SENSITIVE)


def _setuid(package: str, member: Member) -> Finding:
    name = member.path.rsplit("/", 1)[-1]
    hostile = bool(DANGEROUS_SUID.fullmatch(name)) or bool(member.mode & 0o002)
    bits = "setuid" if member.mode & 0o4000 else "setgid"
    excerpt = f"{bits} mode {member.mode:04o} uid {member.uid} gid {member.gid}"
    return Finding(
        "content.setuid", package, member.path, 0, HOSTILE if hostile else SENSITIVE, excerpt
    )


def _traverses(raw: str) -> bool:
    return ".." in raw.replace("\\", "/").split("/")


def _member_findings(package: str, member: Member) -> list[Finding]:
    path = member.path
    out: list[Finding] = []
    if _traverses(member.raw_path or path):
        out.append(
            Finding("content.path-traversal", package, member.raw_path, 0, HOSTILE, member.raw_path)
        )
    if member.type in ("char", "block"):
        out.append(Finding("content.device", package, path, 0, HOSTILE, f"{member.type} device"))
    if member.type == "dir":
        if member.mode & 0o002 and not member.mode & 0o1000:
            out.append(Finding("content.world-writable", package, path, 0, SENSITIVE, "directory"))
        return out
    if path.startswith("/etc/apt/apt.conf.d/"):
        out.append(_apt_hook(package, member))
    elif path == "/etc/sudoers" or path.startswith("/etc/sudoers.d/"):
        out.append(_sudoers(package, member))
    for rule, severity, pattern in _PATH_RULES:
        if pattern.search(path):
            out.append(Finding(rule, package, path, 0, severity))
    if member.type in ("file", "hardlink") and member.mode & 0o6000:
        out.append(_setuid(package, member))
    elif member.type == "file" and member.mode & 0o002:
        out.append(
            Finding("content.world-writable", package, path, 0, SENSITIVE, f"{member.mode:04o}")
        )
    return out


_MAX_LINK_HOPS = 40
"""Symlinks followed when resolving one member path (the kernel's own limit)."""


def _through_links(path: str, links: dict[str, str]) -> str:
    """``path`` with parent directories that are symlinks of this archive resolved."""
    parts = path.strip("/").split("/")
    hops = 0
    i = 0
    while i < len(parts) - 1:
        prefix = "/" + "/".join(parts[: i + 1])
        target = links.get(prefix)
        if target is None:
            i += 1
            continue
        hops += 1
        if hops > _MAX_LINK_HOPS:
            return "/" + "/".join(parts) + " (symlink loop)"
        base = (
            target if target.startswith("/") else posixpath.join(posixpath.dirname(prefix), target)
        )
        parts = [*posixpath.normpath("/" + base).strip("/").split("/"), *parts[i + 1 :]]
        parts = [p for p in parts if p]
        i = 0
    return "/" + "/".join(parts)


def _link_findings(
    package: str, member: Member, links: dict[str, str], shipped: set[str]
) -> tuple[list[Finding], Member]:
    """Findings for link tricks dpkg-deb --build cannot produce.

    A member written through a symlink the archive itself created
    (``/usr/lib/x -> /etc/sudoers.d`` then ``/usr/lib/x/evil``: dpkg follows it), or
    a hard link to a file the package does not ship (dpkg links to whatever is at
    that path on the system). Returns them and the member with its path resolved,
    so the path rules judge where it really lands.
    """
    out: list[Finding] = []
    resolved = _through_links(member.path, links)
    if resolved != member.path:
        out.append(
            Finding(
                "content.symlink-path", package, member.path, 0, HOSTILE, f"lands in {resolved}"
            )
        )
        member = replace(member, path=resolved)
    if member.type == "hardlink":
        target = posixpath.normpath("/" + member.linkname.lstrip("/"))
        if target not in shipped:
            out.append(
                Finding(
                    "content.hardlink-outside",
                    package,
                    member.path,
                    0,
                    HOSTILE,
                    f"hard link to {target}, not shipped by the package",
                )
            )
    if member.type == "symlink":
        links[member.path] = member.linkname
    shipped.add(member.path)
    return out, member


_CONTROL_CHARS = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def scan_members(package: str, members: Iterable[Member]) -> tuple[Finding, ...]:
    """Apply the member rules to a data archive's entries. Pure.

    Args:
        package: binary package name the findings are attributed to.
        members: entries of the data archive (:class:`~debfile.Member`).

    Returns:
        Findings in archive order, one per (rule, path).
    """
    out: list[Finding] = []
    seen: set[tuple[str, str]] = set()
    links: dict[str, str] = {}
    shipped: set[str] = set()
    for original in members:
        found, member = _link_findings(package, original, links, shipped)
        if _CONTROL_CHARS.search(original.raw_path or original.path):
            # dpkg refuses a newline mid-unpack; escapes spoof the terminal.
            found.append(
                Finding("content.bad-name", package, original.path, 0, HOSTILE, "control character")
            )
        for finding in [*found, *_member_findings(package, member)]:
            key = (finding.rule, finding.file)
            if key not in seen:
                seen.add(key)
                out.append(finding)
    return tuple(out)


def findings_for(
    contents: DebContents,
    package: str,
    version: str,
    previous: dict[str, bytes] | None,
) -> tuple[Finding, ...]:
    """All findings for already-read ``contents`` of ``package`` ``version``. Pure.

    Args:
        contents: the parsed .deb.
        package: the package name the plan expects this file to be.
        version: the version the plan expects.
        previous: installed scripts for an upgrade/downgrade, or None for a fresh install.
    """
    out: list[Finding] = []
    got_pkg = contents.control.get("Package", "")
    got_ver = contents.control.get("Version", "")
    if got_pkg != package or got_ver != version:
        out.append(
            Finding(
                "content.identity-mismatch",
                package,
                "control",
                0,
                HOSTILE,
                f"file says {got_pkg} {got_ver}, plan expects {package} {version}",
            )
        )
    out.extend(scan_scripts(package, contents.scripts, previous))
    out.extend(scan_members(package, contents.members))

    # content.model-directed-text: the full Description (the indexes carry its first line)
    # and the maintainer scripts, comments included.
    out.extend(scan_text(package, "control:Description", contents.control.get("Description", "")))
    out.extend(model_directed(package, contents.scripts))
    return tuple(out)


# --- edge: files ---------------------------------------------------------------------


def dpkg_info_dir(dpkg_root: Path | None) -> Path:
    """Return dpkg's info directory under a root (``/var/lib/dpkg/info`` on the host)."""
    return (dpkg_root or Path("/")) / "var/lib/dpkg/info"


def _read_capped(path: str) -> bytes | None:
    # Reading one byte past the cap keeps an oversized script different from any
    # script truncated to exactly the cap, so the comparison still reports a change.
    try:
        with open(path, "rb") as fh:
            return fh.read(MAX_INSTALLED_SCRIPT + 1)
    except OSError:
        return None


def installed_scripts(
    info_dir: Path, package: str, arch: str | None, names: frozenset[str] | None = None
) -> dict[str, bytes] | None:
    """The installed version's maintainer scripts, or None when ``package`` is not installed.

    dpkg names the files ``<pkg>.<script>``, or ``<pkg>:<arch>.<script>`` for
    Multi-Arch: same packages; the qualified name wins when both exist. A package
    counts as installed when its ``.list`` file exists. ``names``: the directory's
    listing, when the caller made one (:class:`InstalledInfo`): only listed files are
    looked at then.
    """
    stems = [f"{package}:{arch}", package] if arch else [package]
    # Plain strings: for hundreds of packages, building Path objects cost more than the
    # file system checks themselves.
    base = str(info_dir)
    for stem in stems:
        listed = f"{stem}.list" in names if names is not None else None
        if listed or (listed is None and os.path.exists(f"{base}/{stem}.list")):
            out: dict[str, bytes] = {}
            for name in MAINTAINER_SCRIPTS:
                if names is not None and f"{stem}.{name}" not in names:
                    continue
                data = _read_capped(f"{base}/{stem}.{name}")
                if data is not None:
                    out[name] = data
            return out
    return None


LIST_INFO_DIR_FROM = 32
"""Packages in a plan from which :class:`InstalledInfo` lists dpkg's info directory once."""


class InstalledInfo:
    """dpkg's info directory for one plan: each installed package's scripts, read once.

    The inspection compares a new package's scripts with the installed ones and the
    plan scans the installed ``prerm``/``postrm`` that will run: both read the same
    files, kept here. For a plan of :data:`LIST_INFO_DIR_FROM` packages or more, one
    listing of the directory replaces the two existence checks and six opens per
    package (each a trip through the interpreter lock while other threads work).
    """

    def __init__(self, info_dir: Path, packages: int) -> None:
        self.info_dir = info_dir
        self._names: frozenset[str] | None = None
        if packages >= LIST_INFO_DIR_FROM:
            try:
                self._names = frozenset(os.listdir(info_dir))
            except FileNotFoundError:
                self._names = frozenset()  # nothing is installed
            except OSError:
                self._names = None  # not listable: each file is looked at
        self._kept: dict[tuple[str, str | None], dict[str, bytes] | None] = {}
        self._lock = threading.Lock()

    def scripts(self, package: str, arch: str | None) -> dict[str, bytes] | None:
        """:func:`installed_scripts` of ``package``, read on first use."""
        key = (package, arch)
        with self._lock:
            if key in self._kept:
                return self._kept[key]
        found = installed_scripts(self.info_dir, package, arch, self._names)
        with self._lock:
            return self._kept.setdefault(key, found)


def inspect_deb(
    deb_path: Path | bytes,
    package: str,
    version: str,
    *,
    installed_info_dir: Path | None,
    arch: str | None = None,
    limits: DebLimits | None = None,
    parsed: DebContents | None = None,
    installed: InstalledInfo | None = None,
) -> Inspection:
    """Read ``deb_path`` (never extracting it) and return its findings and description.

    Args:
        deb_path: the verified .deb (a private copy), or its verified bytes.
        package: binary package name the plan expects.
        version: version the plan expects.
        installed_info_dir: dpkg's info directory to compare scripts with (upgrades,
            downgrades, reinstalls); None skips the comparison.
        arch: the package's architecture, for ``<pkg>:<arch>`` info files.
        limits: bounds for reading the archive.
        parsed: the archive already read from these very bytes with the default
            bounds (:mod:`aegis.ecosystems.apt.cache_warm`); not read again then.
        installed: the plan's reader of ``installed_info_dir`` (the same directory).

    Returns:
        An :class:`Inspection`. A malformed or oversized archive yields one hostile
        ``content.malformed`` finding rather than an exception: policy denies it.

    Raises:
        EnvironmentFailure: the file cannot be read at all.
    """
    kw = {"limits": limits} if limits else {}
    label = deb_path.name if isinstance(deb_path, Path) else f"{package}_{version}.deb"
    try:
        if parsed is not None and limits is None:
            contents = parsed
        elif isinstance(deb_path, Path):
            contents = read_deb(deb_path, **kw)
        else:
            contents = read_deb_stream(io.BytesIO(deb_path), **kw)
    except DebFormatError as e:
        return Inspection(
            package=package,
            version=version,
            findings=(Finding("content.malformed", package, label, 0, HOSTILE, e.message),),
            description="",
        )
    previous = None
    if installed_info_dir is not None:
        previous = (
            installed.scripts(package, arch)
            if installed is not None and installed.info_dir == installed_info_dir
            else installed_scripts(installed_info_dir, package, arch)
        )
    return Inspection(
        package=package,
        version=version,
        findings=findings_for(contents, package, version, previous),
        description=contents.control.get("Description", ""),
        control=dict(contents.control),
        scripts=tuple(sorted(contents.scripts)),
        member_count=len(contents.members),
    )


def scan(
    deb_path: Path,
    package: str,
    version: str,
    *,
    installed_info_dir: Path | None,
    arch: str | None = None,
) -> tuple[Finding, ...]:
    """The findings of :func:`inspect_deb` alone."""
    return inspect_deb(
        deb_path, package, version, installed_info_dir=installed_info_dir, arch=arch
    ).findings
