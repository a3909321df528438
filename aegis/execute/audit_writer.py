"""aegisd's handle on the audit log: its audit key, one writer, thread-safe appends.

aegisd is the only writer of ``cfg.audit_path``. Its audit key signs checkpoints;
on first start, when no key is configured (``audit_key`` in aegisd.toml) and none
exists at ``<aegisd_dir>/audit.key``, aegisd creates one (owner-only) and publishes
the public half at ``<etc>/keys/audit.pub`` for ``aegis audit verify``.
"""

from __future__ import annotations

import os
import socket
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from aegis.audit.chain import AuditLog
from aegis.audit.checkpoints import append_witness_file
from aegis.audit.journal import configured_socket
from aegis.audit.verify import default_witness_path, legacy_witness_path
from aegis.config import Config
from aegis.ed25519 import public_hex
from aegis.errors import AegisError
from aegis.execute.settings import DaemonSettings
from aegis.sign.keys import load_signing_key, write_keypair

AUDIT_KEY_NAME = "audit"


def audit_key_path(cfg: Config, settings: DaemonSettings) -> Path:
    """Where aegisd's audit secret key lives."""
    return settings.audit_key or (cfg.aegisd_dir / f"{AUDIT_KEY_NAME}.key")


def host_identity(cfg: Config) -> str:
    """The host name written into audit events (machine-id override in tests)."""
    return cfg.host_id or socket.gethostname()


def _move_legacy_witness(cfg: Config, settings: DaemonSettings) -> None:
    """Carry the checkpoints of the old root-only default witness to the new default.

    Earlier versions kept the witness in aegisd's own (0700) directory, where no member
    of ``aegis`` could read it. Without this, the first verify after an upgrade would
    find the new witness missing while the log holds checkpoints.
    """
    new = settings.witness_file
    old = legacy_witness_path(cfg.aegisd_dir)
    if new is None or new != default_witness_path(cfg.log_dir) or new.exists():
        return
    try:
        data = old.read_bytes()
    except FileNotFoundError:
        return
    new.parent.mkdir(parents=True, exist_ok=True)
    append_witness_file(new, data)


class AuditWriter:
    """Thread-safe appends to the audit log (the log itself locks across processes)."""

    def __init__(self, cfg: Config, settings: DaemonSettings) -> None:
        """Open the log, creating aegisd's audit key on first start."""
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
        _move_legacy_witness(cfg, settings)
        self._lock = threading.Lock()
        self._closed = False
        self.failures = 0
        """Appends, checkpoints and probes that failed since aegisd started."""
        self.last_failure: str | None = None
        self.on_failure: Callable[[], None] | None = None
        """Called after each counted failure (aegisd republishes its status file)."""
        self._log = AuditLog(
            cfg.audit_path,
            key,
            host_identity(cfg),
            checkpoint_every=settings.checkpoint_every,
            witness_cmd=list(settings.witness_command) or None,
            witness_file=settings.witness_file,
            use_syslog=os.environ.get("AEGIS_AUDIT_SYSLOG", "1") != "0",
            journal_socket=configured_socket(os.environ),
        )
        self._start_witness(settings.witness_file)

    def _start_witness(self, witness: Path | None) -> None:
        """Make sure the witness exists from aegisd's first start on.

        ``aegis audit verify`` treats a missing witness beside a non-empty log as
        removed (:mod:`aegis.audit.witness`), so a fresh host gets an empty one with its
        first (empty) log; a log that has events but no witness yet (witness turned on
        later, or an older aegisd that never checkpointed) gets a checkpoint of its
        current head, which creates the witness.
        """
        if witness is None or witness.exists():
            return
        if self._log.checkpoint() is None:
            witness.parent.mkdir(parents=True, exist_ok=True)
            append_witness_file(witness, b"")

    def append(self, kind: str, fields: dict[str, Any]) -> dict[str, Any]:
        """Append one event (fsync'd) and return it with its hash.

        Raises:
            AegisError: the event was not appended (the log is as it was); counted.
        """
        with self._lock:
            try:
                event = self._log.append(kind, fields)
            except AegisError as e:
                self._failed(kind, e.message)
                raise
            for problem in self._log.problems:
                self._failed("checkpoint", problem)
            self._log.problems.clear()
            return event

    def checkpoint(self) -> str | None:
        """Sign and publish the current head (at every apply).

        Returns:
            None, or why the checkpoint could not be written (counted and logged; the
            events before it are on disk, the log is as it was before the attempt).
        """
        with self._lock:
            try:
                self._log.checkpoint()
            except AegisError as e:
                self._failed("checkpoint", e.message)
                return e.message
            return None

    def probe(self, *, count: bool = True) -> None:
        """Check the log can be opened and extended, writing nothing (before a run).

        Raises:
            AegisError: it cannot (a symlink in its place, a corrupt tail); counted
                unless ``count`` is false (a ping asking, not a run refused).
        """
        with self._lock:
            try:
                self._log.probe()
            except AegisError as e:
                if count:
                    self._failed("probe", e.message)
                raise

    def _failed(self, what: str, message: str) -> None:
        # Loud: aegisd's journal, and a counter in ping answers and the status file.
        self.failures += 1
        self.last_failure = f"{what}: {message}"
        sys.stderr.write(f"aegisd: AUDIT LOG FAILURE ({what}): {message}\n")
        sys.stderr.flush()
        if self.on_failure is not None:
            self.on_failure()

    def close(self) -> None:
        """Close the log (once; a second call does nothing)."""
        with self._lock:
            if not self._closed:
                self._closed = True
                self._log.close()
