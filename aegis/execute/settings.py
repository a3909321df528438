"""aegisd's own configuration: trusted keys and limits, from root-owned sources only.

aegisd trusts the keys in ``<etc>/aegisd.toml`` (or ``--config F``) and on its own
command line (``--public-key-hex``, ``--approval-public-key-hex``); it never takes
a key from a client. The file must be root-owned and not writable by others when
aegisd runs as root. With no signer key, aegisd still starts and refuses every
apply, saying why.

Example ``/etc/aegis/aegisd.toml``::

    signer_public_keys = ["3b6a27bc..."]
    approver_public_keys = ["8f0c11aa..."]
    snapshot_command = ["/usr/local/sbin/fs-snapshot", "--tag", "aegis"]
    run_timeout_s = 3600
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aegis.config import Config
from aegis.errors import InputError
from aegis.execute.protocol import MAX_FRAME_BYTES, READ_TIMEOUT_S
from aegis.execute.runner import check_root_owned
from aegis.text import toml_error_reason

_HEX64 = re.compile(r"\A[0-9a-f]{64}\Z")
_KEYS = {
    "signer_public_keys",
    "approver_public_keys",
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
    ``<aegisd_dir>/audit-witness.jsonl`` (``witness_file = ""`` turns it off)."""
    checkpoint_every: int = 64
    sources: tuple[str, ...] = field(default_factory=tuple)
    """Where keys came from (for the startup line)."""

    @property
    def keys_problem(self) -> str | None:
        """Why aegisd must refuse every apply, or None."""
        if not self.signer_keys:
            return (
                "aegisd has no trusted execution-plan signer key; configure "
                "signer_public_keys in aegisd.toml or pass --public-key-hex"
            )
        return None


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


def _key_dirs(cfg: Config, sources: list[str]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    from aegis.sign.files import APPROVERS_DIR, SIGNERS_DIR, trusted_keys

    out: list[tuple[str, ...]] = []
    for name in (SIGNERS_DIR, APPROVERS_DIR):
        directory = cfg.keys_dir / name
        found = tuple(sorted(trusted_keys(directory)))
        if found:
            check_root_owned(directory)
            for pub in directory.glob("*.pub"):
                check_root_owned(pub)
            sources.append(str(directory))
        out.append(found)
    return out[0], out[1]


def _witness_file(cfg: Config, data: dict[str, Any]) -> Path | None:
    from aegis.audit.verify import default_witness_path

    if "witness_file" not in data:
        # On by default, so truncation is caught against the witness on a default install.
        return default_witness_path(cfg.aegisd_dir)
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
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):  # ValueError: TOMLDecodeError, UnicodeDecodeError, huge int
        data = {}
    try:
        return _witness_file(cfg, data)
    except InputError:
        from aegis.audit.verify import default_witness_path

        return default_witness_path(cfg.aegisd_dir)


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
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except ValueError as e:  # TOMLDecodeError, UnicodeDecodeError, an int past 4300 digits
            raise InputError(
                f"aegisd config {path} is not valid TOML: {toml_error_reason(e)}"
            ) from e
        unknown = sorted(set(data) - _KEYS)
        if unknown:
            raise InputError(f"aegisd config {path}: unknown key(s) {', '.join(unknown)}")
        sources.append(str(path))
    elif config_path is not None:
        raise InputError(f"aegisd config {path} does not exist")
    signer = _hex_keys(data.get("signer_public_keys", []), "signer_public_keys")
    approver = _hex_keys(data.get("approver_public_keys", []), "approver_public_keys")
    # Trusted key directories (root-owned /etc/aegis/keys/{signers,approvers}/*.pub).
    signer_dir_keys, approver_dir_keys = _key_dirs(cfg, sources)
    signer += signer_dir_keys
    approver += approver_dir_keys
    if public_keys or approval_keys:
        sources.append("command line")
    signer += _hex_keys(list(public_keys), "--public-key-hex")
    approver += _hex_keys(list(approval_keys), "--approval-public-key-hex")
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
    )
