r"""apt and dpkg configuration evidence (model :class:`ConfigEvidence`).

From ``apt-config dump`` (run through :mod:`aegis.analyze.run` with Aegis's
APT_CONFIG) we record its SHA-256 and flags with stable names:

- ``allow-insecure``: ``Acquire::AllowInsecureRepositories`` or
  ``Acquire::AllowDowngradeToInsecureRepositories`` true
- ``allow-unauthenticated``: ``APT::Get::AllowUnauthenticated`` true
- ``trusted-yes``: a source marked ``trusted=yes``
- ``check-valid-until-false``: ``Acquire::Check-Valid-Until`` false
- ``dpkg-pre-invoke`` / ``dpkg-post-invoke``: ``DPkg::Pre-Invoke`` / ``Post-Invoke`` hooks
- ``apt-hooks``: other command hooks (``DPkg::Pre-Install-Pkgs``,
  ``APT::Update::Pre-Invoke``/``Post-Invoke``[``-Success``], ``DPkg::Post-Invoke-Success``)

dpkg's configuration hash covers ``dpkg.cfg`` and ``dpkg.cfg.d/*`` (contents and names).

Pure: :func:`assess_apt_config` over the dump text and the dpkg files.

Example:
    >>> ev = assess_apt_config('Acquire::Check-Valid-Until "false";\n', {}, trusted_yes=False)
    >>> ev.flags
    ('check-valid-until-false',)
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from aegis.analyze.apt import parse_apt_config_dump
from aegis.canonical import canonical_hash, sha256_hex
from aegis.model import ConfigEvidence

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
    dump: str, dpkg_files: Mapping[str, bytes], *, trusted_yes: bool
) -> ConfigEvidence:
    """Config evidence from ``apt-config dump`` text and dpkg config files (path -> bytes)."""
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
