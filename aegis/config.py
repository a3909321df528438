"""Configuration: ``/etc/aegis/aegis.toml`` plus ``AEGIS_*`` environment.

``AEGIS_HOME`` relocates every path (store, plans, log, config, sockets) under
one directory, for tests and the demo. Without it the host layout of docs/design.md
"Where files live" applies. The config file is read from ``<etc>/aegis.toml``;
environment variables override it.

Loading is an edge (reads files and the environment); everything downstream
receives a :class:`Config` value and stays pure.

Example:
    >>> cfg = load_config({"AEGIS_HOME": "/tmp/h"})
    >>> str(cfg.store_path)
    '/tmp/h/var/lib/aegis/state.db'
"""

from __future__ import annotations

import grp
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aegis.errors import EnvironmentFailure, InputError
from aegis.toml_doc import load_toml

MAX_CONFIG_BYTES = 1024 * 1024
DEFAULT_AI_MAX_TOKENS = 4096
"""Output cap for the review: reasoning models spend most of it thinking (512 was cut off)."""
DEFAULT_GROUP = "aegis"
"""The group that plans and reads (docs/design.md "Who may do what")."""


@dataclass(frozen=True)
class Config:
    """Every path and setting Aegis uses; build with :func:`load_config`."""

    home: Path | None
    """AEGIS_HOME, or None on a host install."""
    state_dir: Path
    """Store directory: state.db, plans/, reviews/, policy/, execution-plans/."""
    aegisd_dir: Path
    """aegisd's root-only directory: ledger and rollback cache."""
    log_dir: Path
    etc_dir: Path
    run_dir: Path
    cache_dir: Path
    """Aegis's private apt and .deb cache (planning never writes apt's own)."""
    apt_config: Path | None
    """APT_CONFIG passed to every apt child; None means apt's default."""
    dpkg_root: Path | None
    """Throwaway root for tests and the demo (``dpkg --root``); None is the host."""
    ai_base_url: str
    ai_model: str | None
    ai_timeout_s: int
    ai_max_tokens: int
    review_enabled: bool
    apt_timeout_s: int
    host_id: str | None
    """Overrides /etc/machine-id (tests and demo only)."""
    vuln_release: str = "bookworm"
    """Debian codename whose security-tracker entries ``aegis vulndb import`` indexes."""
    ai_reasoning: str = "off"
    """How much a reasoning model may think for a review: off, low or model (its own
    default); see :func:`aegis.review.client.reasoning_controls`."""
    cargo: str = "/usr/bin/cargo"
    """The cargo binary planning and aegisd run (Debian's by default; ``AEGIS_CARGO``)."""
    docker_socket: str = "/var/run/docker.sock"
    """The one docker daemon image pulls go to (``AEGIS_DOCKER_SOCKET``): aegisd derives
    no argv for a plan that names another."""

    @property
    def store_path(self) -> Path:
        """SQLite store of plans, reviews and policy results (group ``aegis``)."""
        return self.state_dir / "state.db"

    @property
    def plans_dir(self) -> Path:
        """Operation plans as ``<plan_id>.json``, written by ``aegis plan``."""
        return self.state_dir / "plans"

    @property
    def reviews_dir(self) -> Path:
        """Signed model reviews as ``<plan_id>.review.json``."""
        return self.state_dir / "reviews"

    @property
    def policy_dir(self) -> Path:
        """Policy results as ``<plan_id>.policy.json``."""
        return self.state_dir / "policy"

    @property
    def execution_plans_dir(self) -> Path:
        """Signed execution plans as ``<execution_id>.json`` for aegisd."""
        return self.state_dir / "execution-plans"

    @property
    def approvals_dir(self) -> Path:
        """Approvals as ``<plan_id>.<approver_id>.approval.json``, collected before signing."""
        return self.state_dir / "approvals"

    @property
    def audit_path(self) -> Path:
        """Tamper-evident audit log; aegisd is its only writer."""
        return self.log_dir / "audit.jsonl"

    @property
    def policy_path(self) -> Path:
        """Operator policy (``policy.toml``), root-owned on a host."""
        return self.etc_dir / "policy.toml"

    @property
    def keys_dir(self) -> Path:
        """Trusted public keys (root-owned on a host)."""
        return self.etc_dir / "keys"

    @property
    def aegisd_socket(self) -> Path:
        """The socket aegisd serves requests on (its own systemd .socket unit)."""
        return self.run_dir / "aegisd.sock"

    @property
    def reviewd_socket(self) -> Path:
        """The socket aegis-reviewd serves reviews on (its own systemd .socket unit)."""
        return self.run_dir / "aegis-reviewd.sock"

    @property
    def ledger_path(self) -> Path:
        """Root-only ledger where aegisd records used and revoked execution ids."""
        return self.aegisd_dir / "ledger.db"

    @property
    def rollback_cache_dir(self) -> Path:
        """Root-only cache where aegisd keeps the .debs a rollback reinstalls."""
        return self.aegisd_dir / "rollback-cache"

    @property
    def deb_dir(self) -> Path:
        """Root-only directory where aegisd keeps the verified .debs an apply installs."""
        return self.aegisd_dir / "debs"

    @property
    def vulndb_path(self) -> Path:
        """Vulnerability index built by ``aegis vulndb import``."""
        return self.state_dir / "vulndb.json"

    @property
    def cargo_root(self) -> Path:
        """The Aegis-managed ``cargo install --root``: binaries land in its ``bin/``."""
        return (self.home or Path("/")) / "usr/local/lib/aegis/cargo"

    @property
    def metrics_dir(self) -> Path:
        """Prometheus textfile (``aegis.prom``): workflow counts and stuck items."""
        return self.state_dir / "metrics"


def _layout(home: Path | None) -> dict[str, Path]:
    root = home if home is not None else Path("/")
    return {
        "state_dir": root / "var/lib/aegis",
        "aegisd_dir": root / "var/lib/aegis/aegisd",
        "log_dir": root / "var/log/aegis",
        "etc_dir": root / "etc/aegis",
        "run_dir": root / "run/aegis",
        "cache_dir": root / "var/cache/aegis",
    }


def _read_file(path: Path) -> dict[str, Any]:
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return {}
    except PermissionError as e:
        raise EnvironmentFailure(
            f"cannot read config {path}: {e.strerror}",
            hint=None if in_group(group_gid()) else join_group_hint(),
        ) from e
    except OSError as e:
        raise InputError(f"cannot read config {path}: {e.strerror}") from e
    return load_toml(raw, what=f"config {path}", max_bytes=MAX_CONFIG_BYTES)


_KEYS = {
    "apt_config": "AEGIS_APT_CONFIG",
    "dpkg_root": "AEGIS_DPKG_ROOT",
    "ai_base_url": "AEGIS_AI_BASE_URL",
    "ai_model": "AEGIS_AI_MODEL",
    "ai_timeout_s": "AEGIS_AI_TIMEOUT",
    "ai_max_tokens": "AEGIS_AI_MAX_TOKENS",
    "review_enabled": "AEGIS_REVIEW",
    "apt_timeout_s": "AEGIS_APT_TIMEOUT",
    "host_id": "AEGIS_HOST_ID",
    "vuln_release": "AEGIS_VULN_RELEASE",
    "ai_reasoning": "AEGIS_AI_REASONING",
    "state_dir": "AEGIS_STATE_DIR",
    "log_dir": "AEGIS_LOG_DIR",
    "run_dir": "AEGIS_RUN_DIR",
    "cargo": "AEGIS_CARGO",
    "docker_socket": "AEGIS_DOCKER_SOCKET",
}


MAX_CONFIG_INT = 1_000_000_000
"""Upper bound of every integer setting (timeouts in seconds, token counts)."""


def _int(name: str, value: Any) -> int:
    try:
        out = int(value)
    except (TypeError, ValueError) as e:
        raise InputError(f"config {name} must be an integer, got {value!r}") from e
    if out <= 0:
        raise InputError(f"config {name} must be positive, got {out}")
    if out > MAX_CONFIG_INT:
        # A timeout past this overflows the C time types subprocess and socket use.
        raise InputError(f"config {name} must be at most {MAX_CONFIG_INT}, got {out}")
    return out


def _bool(name: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off"):
        return False
    raise InputError(f"config {name} must be true or false, got {value!r}")


def load_config(env: Mapping[str, str] | None = None) -> Config:
    """Build the configuration from the config file and ``env``.

    Args:
        env: environment to read; ``os.environ`` when None.

    Raises:
        InputError: the config file or a variable is malformed, or has unknown keys.
    """
    env = os.environ if env is None else env
    home_text = env.get("AEGIS_HOME")
    home = Path(home_text).absolute() if home_text else None
    paths = _layout(home)
    etc = Path(env["AEGIS_ETC_DIR"]) if env.get("AEGIS_ETC_DIR") else paths["etc_dir"]
    file_values = _read_file(etc / "aegis.toml")
    unknown = sorted(set(file_values) - set(_KEYS))
    if unknown:
        raise InputError(f"config {etc / 'aegis.toml'}: unknown key(s) {', '.join(unknown)}")
    values: dict[str, Any] = dict(file_values)
    for key, var in _KEYS.items():
        if env.get(var):
            values[key] = env[var]
    for key in ("state_dir", "log_dir", "run_dir"):
        if key in values:
            paths[key] = Path(values[key])
    if "state_dir" in values and "aegisd_dir" not in values:
        paths["aegisd_dir"] = paths["state_dir"] / "aegisd"
    apt_config = values.get("apt_config")
    dpkg_root = values.get("dpkg_root")
    model = values.get("ai_model")
    return Config(
        home=home,
        state_dir=paths["state_dir"],
        aegisd_dir=paths["aegisd_dir"],
        log_dir=paths["log_dir"],
        etc_dir=etc,
        run_dir=paths["run_dir"],
        cache_dir=paths["cache_dir"],
        apt_config=Path(apt_config) if apt_config else None,
        dpkg_root=Path(dpkg_root) if dpkg_root else None,
        ai_base_url=str(values.get("ai_base_url", "http://localhost:8000/v1")),
        ai_model=str(model) if model else None,
        ai_timeout_s=_int("ai_timeout_s", values.get("ai_timeout_s", 30)),
        ai_max_tokens=_int("ai_max_tokens", values.get("ai_max_tokens", DEFAULT_AI_MAX_TOKENS)),
        review_enabled=_bool("review_enabled", values.get("review_enabled", True)),
        apt_timeout_s=_int("apt_timeout_s", values.get("apt_timeout_s", 300)),
        host_id=str(values["host_id"]) if values.get("host_id") else None,
        vuln_release=str(values.get("vuln_release", "bookworm")),
        ai_reasoning=_reasoning(values.get("ai_reasoning", "off")),
        cargo=_abs_path("cargo", values.get("cargo", "/usr/bin/cargo")),
        docker_socket=_abs_path(
            "docker_socket", values.get("docker_socket", "/var/run/docker.sock")
        ),
    )


def _abs_path(name: str, value: Any) -> str:
    text = str(value)
    if not text.startswith("/") or not text.isascii() or any(c in text for c in "\x00\n =:"):
        raise InputError(f"config {name} must be an absolute path, got {text[:80]!r}")
    return text


_REASONING = ("off", "low", "model")  # aegis.review.client.REASONING_MODES (kept import-free)


def _reasoning(value: Any) -> str:
    text = str(value).strip().lower()
    if text not in _REASONING:
        raise InputError(
            f"ai_reasoning must be one of {', '.join(_REASONING)}, got {str(value)[:40]!r}"
        )
    return text


def group_name(env: Mapping[str, str] | None = None) -> str:
    """The group that shares the store and reads the audit log: ``AEGIS_GROUP`` or ``aegis``.

    A host-wide fact, read from the environment only (no config file: aegisd and the
    CLIs must agree before either can read one). A number names a gid directly, so a
    test can use a group that has no name.
    """
    env = os.environ if env is None else env
    return env.get("AEGIS_GROUP") or DEFAULT_GROUP


def group_gid(env: Mapping[str, str] | None = None) -> int | None:
    """The gid of :func:`group_name`, or None when no such group exists (a dev box)."""
    name = group_name(env)
    if name.isdigit():
        return int(name)
    try:
        return grp.getgrnam(name).gr_gid
    except KeyError:
        return None


def in_group(gid: int | None) -> bool:
    """True when this process is root or holds ``gid`` (primary or supplementary)."""
    if os.geteuid() == 0:
        return True
    return gid is not None and (gid == os.getegid() or gid in os.getgroups())


def join_group_hint(env: Mapping[str, str] | None = None) -> str:
    """What a user outside the group must do (one line, for error hints)."""
    name = group_name(env)
    return (
        f"this user is not in group {name}: ask an administrator to run "
        f"'adduser <user> {name}', then log in again (or run 'newgrp {name}')"
    )
