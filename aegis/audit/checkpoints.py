"""Signed audit checkpoints and where they go besides the log.

A checkpoint says "event ``seq`` of host ``host`` has hash ``head_hash``", signed with
aegisd's audit key (Ed25519 over canonical JSON, :mod:`aegis.sign.keys`). The log
writer appends it as a ``checkpoint`` event, then publishes the same document
(``{"checkpoint": body, "signature": hex}``) off the log:

- journald/syslog (``syslog`` module, facility AUTHPRIV; fleets ship it off the host),
- an optional witness command (an argv list; the JSON arrives on stdin),
- an optional witness file (JSON lines) kept somewhere the ``aegis`` group cannot write.

Publishing is best effort: the event is already durable in the log, and an absent
syslog or a failing witness never fails the append; failures are logged as warnings.
A verifier compares the log with the newest checkpoint it holds off the log, which is
what catches truncation (deleting the tail leaves no trace in the log itself).

Example:
    >>> body = checkpoint_body(host="h", seq=7, head_hash="ab" * 32,
    ...                        time="2026-01-01T00:00:00.000000Z", public_key_hex=pub)
    >>> doc = sign_checkpoint(body, key)
    >>> verify_checkpoint(doc, pub)
    True
"""

from __future__ import annotations

import logging
import os
import stat
import subprocess
import syslog
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aegis.canonical import canonical_bytes, loads_strict
from aegis.config import group_gid
from aegis.ed25519 import sign_canonical, verify_canonical
from aegis.errors import InputError

if TYPE_CHECKING:
    from nacl.signing import SigningKey

log = logging.getLogger(__name__)

CHECKPOINT_SCHEMA = "aegis.audit.checkpoint/1"
SYSLOG_IDENT = "aegis-audit"
SYSLOG_TAG = "aegis-audit-checkpoint"
WITNESS_TIMEOUT_S = 10
MAX_WITNESS_BYTES = 64 * 1024 * 1024
_BODY_KEYS = frozenset(
    {"schema_version", "host", "seq", "head_hash", "time", "audit_public_key_hex"}
)


def checkpoint_body(
    *, host: str, seq: int, head_hash: str, time: str, public_key_hex: str
) -> dict[str, Any]:
    """Return the checkpoint body that gets signed (pure)."""
    return {
        "schema_version": CHECKPOINT_SCHEMA,
        "host": host,
        "seq": seq,
        "head_hash": head_hash,
        "time": time,
        "audit_public_key_hex": public_key_hex,
    }


def sign_checkpoint(body: dict[str, Any], key: SigningKey) -> dict[str, Any]:
    """Return ``{"checkpoint": body, "signature": hex}`` signed by ``key``."""
    return {"checkpoint": body, "signature": sign_canonical(body, key)}


def verify_checkpoint(doc: Any, public_key_hex: str) -> bool:
    """Return True when ``doc`` is a well-formed checkpoint signed by ``public_key_hex``.

    The key inside the body is informational only: the trusted key is the argument.
    """
    if not isinstance(doc, dict) or set(doc) != {"checkpoint", "signature"}:
        return False
    body, sig = doc["checkpoint"], doc["signature"]
    if not isinstance(body, dict) or set(body) != _BODY_KEYS or not isinstance(sig, str):
        return False
    if body["schema_version"] != CHECKPOINT_SCHEMA or type(body["seq"]) is not int:
        return False
    return verify_canonical(body, sig, public_key_hex)


def checkpoint_line(doc: dict[str, Any]) -> bytes:
    """Return the canonical JSON line of a signed checkpoint (what witnesses receive)."""
    return canonical_bytes(doc) + b"\n"


@dataclass(frozen=True)
class Publisher:
    """Where a checkpoint goes besides the log.

    Attributes:
        witness_cmd: argv of a witness command (no shell); gets the JSON line on stdin.
        witness_file: a JSON-lines file held off the log, appended and fsync'd.
        use_syslog: send a copy to syslog/journald.
    """

    witness_cmd: Sequence[str] | None = None
    witness_file: Path | None = None
    use_syslog: bool = True

    def publish(self, doc: dict[str, Any]) -> list[str]:
        """Send ``doc`` everywhere configured; return the failures (never raises)."""
        line = checkpoint_line(doc)
        failures: list[str] = []
        if self.use_syslog:
            _to_syslog(line)
        if self.witness_file is not None:
            try:
                append_witness_file(self.witness_file, line)
            except OSError as e:
                failures.append(f"witness file {self.witness_file}: {e.strerror or e}")
        if self.witness_cmd:
            failure = _to_witness_cmd(list(self.witness_cmd), line)
            if failure:
                failures.append(failure)
        for failure in failures:
            log.warning(
                "audit checkpoint seq %s not witnessed: %s", doc["checkpoint"]["seq"], failure
            )
        return failures


def _to_syslog(line: bytes) -> None:
    # Best effort: syslog(3) silently drops messages when /dev/log is absent.
    try:
        syslog.openlog(SYSLOG_IDENT, syslog.LOG_PID, syslog.LOG_AUTHPRIV)
        syslog.syslog(syslog.LOG_INFO, f"{SYSLOG_TAG} {line.decode('utf-8').rstrip()}")
    except (ImportError, OSError, ValueError) as e:
        log.warning("audit checkpoint not sent to syslog: %s", e)


def _to_witness_cmd(argv: list[str], line: bytes) -> str | None:
    try:
        proc = subprocess.run(
            argv,
            input=line,
            capture_output=True,
            timeout=WITNESS_TIMEOUT_S,
            check=False,
            env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C"},
        )
    except (OSError, subprocess.TimeoutExpired) as e:
        return f"witness command {argv[0]}: {e}"
    if proc.returncode != 0:
        err = proc.stderr.decode("utf-8", "replace").strip()[-200:]
        return f"witness command {argv[0]} exited {proc.returncode}: {err}"
    return None


WITNESS_MODE = 0o640


def append_witness_file(path: Path, line: bytes) -> None:
    """Append one checkpoint line to a witness file and fsync it.

    The file is 0640, group ``aegis`` when aegisd (root) writes it: it holds signed
    checkpoints only, and every member's ``aegis audit verify`` needs it to see
    truncation. A file left 0600 by an older aegisd is opened up on the next append.
    """
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, WITNESS_MODE)
    try:
        st = os.fstat(fd)
        gid = group_gid()
        if os.geteuid() == 0 and gid is not None and st.st_gid != gid:
            os.fchown(fd, -1, gid)
        if stat.S_IMODE(st.st_mode) != WITNESS_MODE and st.st_uid == os.geteuid():
            os.fchmod(fd, WITNESS_MODE)  # the umask may have narrowed it
        os.write(fd, line)
        os.fsync(fd)
    finally:
        os.close(fd)


def read_witness(path: Path, public_key_hex: str | None) -> tuple[dict[str, Any] | None, list[str]]:
    """Return the newest valid checkpoint in a witness file and the problems found.

    A witness file holds JSON lines of signed checkpoints, or a single JSON document.
    Lines whose signature does not verify with ``public_key_hex`` are reported and
    ignored; without a key no line is trusted.

    Raises:
        InputError: the file cannot be read.
    """
    try:
        raw = path.read_bytes()[:MAX_WITNESS_BYTES]
    except OSError as e:
        raise InputError(f"cannot read witness {path}: {e.strerror}") from e
    problems: list[str] = []
    best: dict[str, Any] | None = None
    if public_key_hex is None:
        return None, ["no audit public key: the witness cannot be trusted"]
    for number, text in enumerate(raw.splitlines(), start=1):
        if not text.strip():
            continue
        try:
            doc = loads_strict(text)
        except InputError as e:
            problems.append(f"witness line {number}: {e.message}")
            continue
        if not verify_checkpoint(doc, public_key_hex):
            problems.append(f"witness line {number}: signature does not verify")
            continue
        if best is None or doc["checkpoint"]["seq"] > best["checkpoint"]["seq"]:
            best = doc
    return best, problems
