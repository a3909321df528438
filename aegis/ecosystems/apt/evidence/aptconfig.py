r"""apt and dpkg configuration evidence (model :class:`ConfigEvidence`).

From ``apt-config dump`` (run through :mod:`aegis.ecosystems.apt.run` with Aegis's
APT_CONFIG) we record its SHA-256 and flags with stable names:

- ``allow-insecure``: ``Acquire::AllowInsecureRepositories`` or
  ``Acquire::AllowDowngradeToInsecureRepositories`` true
- ``allow-unauthenticated``: ``APT::Get::AllowUnauthenticated`` true
- ``trusted-yes``: a source marked ``trusted=yes``
- ``check-valid-until-false``: ``Acquire::Check-Valid-Until`` false
- ``dpkg-pre-invoke`` / ``dpkg-post-invoke``: ``DPkg::Pre-Invoke`` / ``Post-Invoke`` hooks
- ``apt-hooks``: other command hooks (``DPkg::Pre-Install-Pkgs``,
  ``APT::Update::Pre-Invoke``/``Post-Invoke``[``-Success``], ``DPkg::Post-Invoke-Success``)
- ``packaged-hooks``: hooks that an installed package ships, unmodified, in ``apt.conf.d``
  (debconf's ``dpkg-preconfigure`` on every Debian host): recorded, not a finding. A
  packaged file that was edited, or a hook set anywhere else, keeps its own flag above.

dpkg's configuration hash covers ``dpkg.cfg`` and ``dpkg.cfg.d/*`` (contents and names).

Pure: :func:`assess_apt_config` over the dump text and the dpkg files.

Example:
    >>> ev = assess_apt_config('Acquire::Check-Valid-Until "false";\n', {}, trusted_yes=False)
    >>> ev.flags
    ('check-valid-until-false',)
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping
from pathlib import Path

from aegis.canonical import canonical_hash, sha256_hex
from aegis.ecosystems.apt.parse import parse_apt_config_dump
from aegis.errors import InputError
from aegis.model import ConfigEvidence
from aegis.safe_read import open_regular

_TRUE = ("1", "true", "yes", "on", "enable")
_FALSE = ("0", "false", "no", "off", "disable")
_HOOK_FLAGS = {
    "dpkg::pre-invoke": "dpkg-pre-invoke",
    "dpkg::post-invoke": "dpkg-post-invoke",
    "dpkg::pre-install-pkgs": "apt-hooks",
    "dpkg::post-invoke-success": "apt-hooks",
    "apt::update::pre-invoke": "apt-hooks",
    "apt::update::post-invoke": "apt-hooks",
    "apt::update::post-invoke-success": "apt-hooks",
}


def assess_apt_config(
    dump: str,
    dpkg_files: Mapping[str, bytes],
    *,
    trusted_yes: bool,
    packaged: tuple[str, ...] = (),
) -> ConfigEvidence:
    """Config evidence from ``apt-config dump`` text and dpkg config files (path -> bytes).

    ``packaged``: the text of the ``apt.conf.d`` files installed packages ship unmodified
    (:func:`packaged_conf_texts`).
    """
    flags: set[str] = set()
    hooks: list[str] = []
    for key, value in parse_apt_config_dump(dump):
        low = key.lower()
        v = value.strip().lower()
        if (
            low
            in (
                "acquire::allowinsecurerepositories",
                "acquire::allowdowngradetoinsecurerepositories",
            )
            and v in _TRUE
        ):
            flags.add("allow-insecure")
        elif low == "apt::get::allowunauthenticated" and v in _TRUE:
            flags.add("allow-unauthenticated")
        elif low == "acquire::check-valid-until" and v in _FALSE:
            flags.add("check-valid-until-false")
        base = low[:-2] if low.endswith("::") else low
        if base in _HOOK_FLAGS and value.strip():
            if _shipped(value, packaged):
                flags.add("packaged-hooks")
                hooks.append(f"{key.rstrip(':')}: {value} (shipped unmodified by a package)")
            else:
                flags.add(_HOOK_FLAGS[base])
                hooks.append(f"{key.rstrip(':')}: {value}")
    if trusted_yes:
        flags.add("trusted-yes")
    dpkg_hash = canonical_hash({k: sha256_hex(v) for k, v in sorted(dpkg_files.items())})
    return ConfigEvidence(
        apt_config_hash=sha256_hex(dump.encode()),
        dpkg_config_hash=dpkg_hash,
        flags=tuple(sorted(flags)),
        hooks=tuple(hooks),
    )


def read_dpkg_config(dpkg_root: Path | None) -> dict[str, bytes]:
    """dpkg.cfg and dpkg.cfg.d/* under ``dpkg_root`` (or /)."""
    base = (dpkg_root or Path("/")) / "etc/dpkg"
    out: dict[str, bytes] = {}
    main = base / "dpkg.cfg"
    if main.is_file():
        out[str(main)] = main.read_bytes()
    parts = base / "dpkg.cfg.d"
    if parts.is_dir():
        for p in sorted(parts.iterdir()):
            if p.is_file():
                out[str(p)] = p.read_bytes()
    return out


def _shipped(value: str, packaged: tuple[str, ...]) -> bool:
    """Whether ``value`` is set, quoted, on a non-comment line of a packaged file."""
    quoted = f'"{value}"'
    for text in packaged:
        for line in text.splitlines():
            stripped = line.strip()
            if stripped.startswith(("//", "#")):
                continue
            if quoted in stripped:
                return True
    return False


_CONF_PARTS = "etc/apt/apt.conf.d"
_MAX_STATUS = 64 << 20
_MAX_PART = 64 << 10
_MD5_HEX = 32


def packaged_conf_texts(conf_parts: str, status: str) -> tuple[str, ...]:
    """The text of each ``apt.conf.d`` file an installed package ships, unmodified.

    A file counts only when dpkg's status lists it in a package's ``Conffiles`` field
    (not obsolete, not remove-on-upgrade) with the MD5 of its bytes now, it is a regular
    file (never a link) and apt reads it from ``<root>/etc/apt/apt.conf.d`` of the
    status file's root. The status is
    parsed field by field (our own small scan, bounded): a path with a hash in some other
    field, such as a package's description, never counts.
    """
    # dpkg records conffiles by their path inside its root: the apt.conf.d apt reads and
    # the status file must belong to the same root (``/`` on a host, a throwaway root's
    # directory in tests, where apt's ``Dir`` stays ``/``).
    parts = os.path.normpath(conf_parts)
    if not parts.endswith("/" + _CONF_PARTS):
        return ()
    base = parts[: -len(_CONF_PARTS)]
    if os.path.normpath(status) != os.path.normpath(base + "var/lib/dpkg/status"):
        return ()
    try:
        with open(status, "rb") as fh:
            status_text = fh.read(_MAX_STATUS + 1)
    except (OSError, ValueError):
        return ()
    if len(status_text) > _MAX_STATUS:
        return ()
    shipped = _conffile_md5s(status_text.decode("utf-8", "replace"))
    out = []
    for name, md5 in sorted(shipped.items()):
        path = os.path.join(conf_parts, name)
        try:
            with open_regular(Path(path), "apt config part", follow=False) as f:
                data = f.read(_MAX_PART + 1)
        except (InputError, OSError):  # absent, a link, a FIFO or device: not a shipped part
            continue
        if len(data) <= _MAX_PART and hashlib.md5(data, usedforsecurity=False).hexdigest() == md5:
            out.append(data.decode("utf-8", "replace"))
    return tuple(out)


def _conffile_md5s(status_text: str) -> dict[str, str]:
    """``name -> md5`` for ``/etc/apt/apt.conf.d/<name>`` conffiles in dpkg's status."""
    prefix = "/" + _CONF_PARTS + "/"
    found: dict[str, str] = {}
    field = ""
    for line in status_text.splitlines():
        if not line:
            field = ""
            continue
        if not line[0].isspace():
            field = line.split(":", 1)[0].lower()
            continue
        if field != "conffiles":
            continue
        # " <path> <md5>" with an optional flag (obsolete, newconffile, remove-on-upgrade).
        match line.split():
            case [path, md5] | [path, md5, "newconffile"]:
                pass
            case _:
                continue
        name = path[len(prefix) :] if path.startswith(prefix) else ""
        if not name or "/" in name or len(md5) != _MD5_HEX:
            continue
        found[name] = md5.lower()
    return found
