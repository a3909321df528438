"""aegisd's own configuration: trusted keys and limits, from root-owned sources only.

aegisd trusts the keys in ``<etc>/aegisd.toml`` (or ``--config F``), in the key
directories ``<etc>/keys/signers/*.pub`` and ``<etc>/keys/approvers/*.pub`` (a key in
``approvers/<role>/*.pub`` also holds ``<role>``), and on its own command line
(``--public-key-hex``, ``--approval-public-key-hex [ROLE:]KEY``); it never takes
a key from a client. The file must be root-owned and not writable by others when
aegisd runs as root. With no signer key, aegisd still starts and refuses every
apply, saying why.

Example ``/etc/aegis/aegisd.toml``::

    signer_public_keys = ["3b6a27bc..."]
    approver_public_keys = ["8f0c11aa..."]
    approver_roles = { security = ["8f0c11aa..."] }   # roles beyond "approver", per key
    snapshot_command = ["/usr/local/sbin/fs-snapshot", "--tag", "aegis"]
    run_timeout_s = 3600
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aegis.audit.verify import default_witness_path
from aegis.bounds import HEX64_RE as _HEX64
from aegis.config import Config
from aegis.errors import InputError
from aegis.execute.protocol import MAX_FRAME_BYTES, READ_TIMEOUT_S
from aegis.execute.runner import check_root_owned
from aegis.sign.files import (
    APPROVERS_DIR,
    SIGNERS_DIR,
    approver_keys_from_args,
    check_role_name,
    trusted_approver_grants,
    trusted_keys,
)
from aegis.toml_doc import load_toml

MAX_SETTINGS_BYTES = 1024 * 1024
"""aegisd.toml is a few keys; anything near this size is not a config."""
_KEYS = {
    "signer_public_keys",
    "approver_public_keys",
    "approver_roles",
    "apply_group",
    "socket_mode",
    "snapshot_command",
    "run_timeout_s",
    "max_request_bytes",
    "read_timeout_s",
    "audit_key",
    "witness_command",
    "witness_file",
    "checkpoint_every",
}


@dataclass(frozen=True)
class DaemonSettings:
    """Everything aegisd decides with besides the shared Config."""

    socket_path: Path
    signer_keys: tuple[str, ...] = ()
    """Trusted execution-plan signer public keys (hex)."""
    approver_keys: tuple[str, ...] = ()
    """Trusted approver public keys (hex); never the signer's own key for its plans."""
    approver_roles: tuple[tuple[str, str], ...] = ()
    """(key, role) grants beyond the ``approver`` role every approver key holds."""
    apply_group: str = "aegis-apply"
    socket_mode: int = 0o660
    snapshot_command: tuple[str, ...] = ()
    """Filesystem snapshot hook argv; ``{snapshot_id}`` is replaced. Empty: none."""
    run_timeout_s: int = 3600
    max_request_bytes: int = MAX_FRAME_BYTES
    read_timeout_s: float = READ_TIMEOUT_S
    audit_key: Path | None = None
    witness_command: tuple[str, ...] = ()
    witness_file: Path | None = None
    """Checkpoint copies held off the log; :func:`load_settings` defaults it to
    ``<log_dir>/audit-witness.jsonl``, 0640 root:aegis (``witness_file = ""`` turns it off)."""
    checkpoint_every: int = 64
    sources: tuple[str, ...] = field(default_factory=tuple)
    """Where keys came from (for the startup line)."""
    signers_dir: Path | None = None
    """The trusted signer key directory (``<etc>/keys/signers``), named in refusals."""

    @property
    def approver_grants(self) -> dict[str, frozenset[str]]:
        """Each trusted approver key -> the roles granted beyond ``approver``."""
        grants: dict[str, set[str]] = {k: set() for k in self.approver_keys}
        for key, role in self.approver_roles:
            grants.setdefault(key, set()).add(role)
        return {k: frozenset(r) for k, r in grants.items()}

    @property
    def keys_problem(self) -> str | None:
        """Why aegisd must refuse every apply, or None."""
        if not self.signer_keys:
            return f"aegisd has no trusted execution-plan signer key; {self.where_signers}"
        return None

    @property
    def where_signers(self) -> str:
        """Where an operator adds a trusted signer key, and how aegisd picks it up."""
        where = f"{self.signers_dir}/<name>.pub" if self.signers_dir else "keys/signers/<name>.pub"
        return (
            f"copy the signer's public key to {where} (root-owned) or list it in "
            "signer_public_keys in aegisd.toml (or pass --public-key-hex), then "
            "'systemctl reload aegisd'"
        )


def _hex_keys(values: Any, what: str) -> tuple[str, ...]:
    if not isinstance(values, list):
        raise InputError(f"aegisd config {what} must be a list of hex keys")
    out = []
    for v in values:
        text = str(v).strip().lower()
        if not _HEX64.match(text):
            raise InputError(f"aegisd config {what}: {str(v)[:20]!r} is not a 64-hex public key")
        out.append(text)
    return tuple(out)


def _role_grants(value: Any) -> tuple[tuple[str, str], ...]:
    """``[approver_roles]``: ``role = ["hex", ...]`` -> (key, role) pairs."""
    if not isinstance(value, dict):
        raise InputError("aegisd config approver_roles must be a table: role = [hex keys]")
    out: list[tuple[str, str]] = []
    for role, keys in value.items():
        name = check_role_name(str(role), "aegisd config approver_roles")
        out += [(k, name) for k in _hex_keys(keys, f"approver_roles.{name}")]
    return tuple(out)


def _argv(value: Any, what: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(x, str) for x in value):
        raise InputError(f"aegisd config {what} must be a list of strings")
    if value and not value[0].startswith("/"):
        raise InputError(f"aegisd config {what}: program must be an absolute path")
    return tuple(value)


def _positive(value: Any, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise InputError(f"aegisd config {what} must be a positive integer")
    return value


def _key_dirs(cfg: Config, sources: list[str]) -> tuple[tuple[str, ...], dict[str, frozenset[str]]]:
    """Signer keys and approver grants from the root-owned key directories."""
    signers = cfg.keys_dir / SIGNERS_DIR
    signer_keys = tuple(sorted(trusted_keys(signers)))
    approvers = cfg.keys_dir / APPROVERS_DIR
    grants = trusted_approver_grants(approvers)
    for directory, found in ((signers, bool(signer_keys)), (approvers, bool(grants))):
        if not found:
            continue
        check_root_owned(directory)
        # Role directories (approvers/<role>/) grant trust too: root-owned, like the keys.
        for sub in [directory, *(p for p in directory.iterdir() if p.is_dir())]:
            check_root_owned(sub)
            for pub in sub.glob("*.pub"):
                check_root_owned(pub)
        sources.append(str(directory))
    return signer_keys, grants


def _witness_file(cfg: Config, data: dict[str, Any]) -> Path | None:

    if "witness_file" not in data:
        # On by default, so truncation is caught against the witness on a default install.
        return default_witness_path(cfg.log_dir)
    value = data["witness_file"]
    if not isinstance(value, str):
        raise InputError('aegisd config witness_file must be a path (or "" for none)')
    return Path(value) if value else None


def configured_witness_file(cfg: Config) -> Path | None:
    """The witness file aegisd writes, for ``aegis audit verify`` and ``aegis doctor``.

    Reads only ``witness_file`` from ``<etc>/aegisd.toml``; a missing or unreadable file
    means the default. Never raises: verification falls back to the default path.
    """
    path = cfg.etc_dir / "aegisd.toml"
    data: dict[str, Any] = {}
    try:
        data = load_toml(path.read_bytes(), what="aegisd config", max_bytes=MAX_SETTINGS_BYTES)
    except (OSError, InputError):
        data = {}
    try:
        return _witness_file(cfg, data)
    except InputError:
        return default_witness_path(cfg.log_dir)


def load_settings(
    cfg: Config,
    *,
    socket_path: Path | None = None,
    config_path: Path | None = None,
    public_keys: tuple[str, ...] = (),
    approval_keys: tuple[str, ...] = (),
) -> DaemonSettings:
    """Read aegisd's configuration file (when present) and merge command-line keys.

    Raises:
        InputError: malformed file or keys.
        TrustError: the file is not root-owned (when running as root).
    """
    path = config_path or (cfg.etc_dir / "aegisd.toml")
    data: dict[str, Any] = {}
    sources: list[str] = []
    if path.exists():
        check_root_owned(path)
        data = load_toml(
            path.read_bytes(), what=f"aegisd config {path}", max_bytes=MAX_SETTINGS_BYTES
        )
        unknown = sorted(set(data) - _KEYS)
        if unknown:
            raise InputError(f"aegisd config {path}: unknown key(s) {', '.join(unknown)}")
        sources.append(str(path))
    elif config_path is not None:
        raise InputError(f"aegisd config {path} does not exist")
    signer = _hex_keys(data.get("signer_public_keys", []), "signer_public_keys")
    approver = _hex_keys(data.get("approver_public_keys", []), "approver_public_keys")
    # Trusted key directories (root-owned /etc/aegis/keys/{signers,approvers}/*.pub).

    roles = _role_grants(data.get("approver_roles", {}))
    signer_dir_keys, approver_dir_grants = _key_dirs(cfg, sources)
    signer += signer_dir_keys
    if public_keys or approval_keys:
        sources.append("command line")
    signer += _hex_keys(list(public_keys), "--public-key-hex")
    cli_grants = approver_keys_from_args(approval_keys, "--approval-public-key-hex")
    for grants in (approver_dir_grants, cli_grants):
        approver += tuple(grants)
        roles += tuple((k, r) for k, rs in grants.items() for r in sorted(rs))
    approver += tuple(k for k, _ in roles)
    mode_text = str(data.get("socket_mode", "0660"))
    try:
        mode = int(mode_text, 8)
    except ValueError as e:
        raise InputError(f"aegisd config socket_mode {mode_text!r} is not octal") from e
    audit_key = data.get("audit_key")
    return DaemonSettings(
        socket_path=socket_path or cfg.aegisd_socket,
        signer_keys=tuple(dict.fromkeys(signer)),
        approver_keys=tuple(dict.fromkeys(approver)),
        approver_roles=tuple(dict.fromkeys(roles)),
        apply_group=str(data.get("apply_group", "aegis-apply")),
        socket_mode=mode & 0o777,
        snapshot_command=_argv(data.get("snapshot_command", []), "snapshot_command"),
        run_timeout_s=_positive(data.get("run_timeout_s", 3600), "run_timeout_s"),
        max_request_bytes=_positive(
            data.get("max_request_bytes", MAX_FRAME_BYTES), "max_request_bytes"
        ),
        read_timeout_s=float(
            _positive(data.get("read_timeout_s", int(READ_TIMEOUT_S)), "read_timeout_s")
        ),
        audit_key=Path(audit_key) if audit_key else None,
        witness_command=_argv(data.get("witness_command", []), "witness_command"),
        witness_file=_witness_file(cfg, data),
        checkpoint_every=_positive(data.get("checkpoint_every", 64), "checkpoint_every"),
        sources=tuple(sources),
        signers_dir=cfg.keys_dir / SIGNERS_DIR,
    )
