"""aegisd's handle on the audit log: its audit key, one writer, thread-safe appends.

aegisd is the only writer of ``cfg.audit_path``. Its audit key signs checkpoints;
on first start, when no key is configured (``audit_key`` in aegisd.toml) and none
exists at ``<aegisd_dir>/audit.key``, aegisd creates one (owner-only) and publishes
the public half at ``<etc>/keys/audit.pub`` for ``aegis audit verify``.
"""

from __future__ import annotations

import os
import socket
import threading
from pathlib import Path
from typing import Any

from aegis.config import Config
from aegis.execute.settings import DaemonSettings

AUDIT_KEY_NAME = "audit"


def audit_key_path(cfg: Config, settings: DaemonSettings) -> Path:
    """Where aegisd's audit secret key lives."""
    return settings.audit_key or (cfg.aegisd_dir / f"{AUDIT_KEY_NAME}.key")


def host_identity(cfg: Config) -> str:
    """The host name written into audit events (machine-id override in tests)."""
    return cfg.host_id or socket.gethostname()


class AuditWriter:
    """Thread-safe appends to the audit log (the log itself locks across processes)."""

    def __init__(self, cfg: Config, settings: DaemonSettings) -> None:
        """Open the log, creating aegisd's audit key on first start."""
        from aegis.audit.chain import AuditLog
        from aegis.sign.keys import load_signing_key, public_hex, write_keypair

        path = audit_key_path(cfg, settings)
        if not path.exists():
            cfg.aegisd_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
            path, _ = write_keypair(path.parent, "audit", name=path.stem)
        key = load_signing_key(path)
        pub = public_hex(key)
        cfg.keys_dir.mkdir(parents=True, exist_ok=True)
        pub_path = cfg.keys_dir / "audit.pub"
        if not pub_path.exists() or pub_path.read_text().strip() != pub:
            tmp = pub_path.with_name(".audit.pub.tmp")
            tmp.write_text(pub + "\n", encoding="ascii")
            os.chmod(tmp, 0o644)
            os.replace(tmp, pub_path)
        self.public_key_hex = pub
        self._lock = threading.Lock()
        self._log = AuditLog(
            cfg.audit_path,
            key,
            host_identity(cfg),
            checkpoint_every=settings.checkpoint_every,
            witness_cmd=list(settings.witness_command) or None,
            witness_file=settings.witness_file,
            use_syslog=os.environ.get("AEGIS_AUDIT_SYSLOG", "1") != "0",
        )

    def append(self, kind: str, fields: dict[str, Any]) -> dict[str, Any]:
        """Append one event (fsync'd) and return it with its hash."""
        with self._lock:
            return self._log.append(kind, fields)

    def checkpoint(self) -> None:
        """Sign and publish the current head (at every apply)."""
        with self._lock:
            self._log.checkpoint()

    def close(self) -> None:
        """Close the log."""
        with self._lock:
            self._log.close()
