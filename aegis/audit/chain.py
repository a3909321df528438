"""The audit log writer: a hash chain of fsync'd events, one per line.

API (aegisd is the only writer on a host)::

    log = AuditLog(cfg.audit_path, audit_signing_key, host_id,
                   checkpoint_every=64, witness_cmd=None, witness_file=None,
                   clock=lambda: datetime.now(UTC))
    event = log.append("apply-finished", {
        "actor": {"uid": 0, "pid": 123, "signer": "alice", "approvers": ["bob"]},
        "request_id": "...", "execution_id": "...",
        "decision": {"outcome": "allow", "rule_ids": ["..."], "reasons": ["..."]},
        "argv": [...], "exit_status": 0,
        "output_hashes": {"stdout_sha256": "...", "stderr_sha256": "..."},
        "details": {...},          # anything kind-specific; unknown keys land here too
    })                             # -> the event body plus "event_hash"
    log.checkpoint()               # at every apply; also automatic every N events
    log.rotate()                   # new segment; its first event carries the old head
    log.close()

Invariants:

- Every append takes an exclusive ``fcntl.flock`` on ``<log>.lock``, re-reads the tail if
  another process wrote since, writes one line with a single ``write`` and fsyncs it
  before returning. Concurrent appenders (threads or processes) are serialised.
- The file is created 0640, group ``aegis`` when that group exists and we are root.
- A last line without its newline (a crash mid-write) is never dropped silently: the
  next writer terminates it and appends a ``recovered-tail`` event holding the torn
  bytes' SHA-256, length and offset. A complete last line that lost only its newline
  is adopted as is.
- A corrupt last *complete* line stops the writer (:class:`AuditTailError`): appending
  after an unknown head would hide tampering.
- ``rotate()`` checkpoints, renames the file to ``<log>.<n>`` and starts the new
  segment with a ``segment-start`` event whose ``prev_hash`` is the old head, so the
  chain continues across segments.
- Checkpoints are signed with the audit key, written into the log as ``checkpoint``
  events, then published (syslog, witness command, witness file) outside the lock.
"""

from __future__ import annotations

import errno
import fcntl
import os
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aegis.audit.checkpoints import Publisher, checkpoint_body, sign_checkpoint
from aegis.audit.event import (
    GENESIS_HASH,
    KIND_CHECKPOINT,
    KIND_RECOVERED_TAIL,
    KIND_SEGMENT_START,
    RESERVED_KINDS,
    LineError,
    LineHashError,
    decode_line,
    encode_event,
    make_body,
)
from aegis.audit.journal import JournalSender, status_path_for
from aegis.canonical import sha256_hex
from aegis.config import group_gid
from aegis.ed25519 import public_hex
from aegis.errors import EnvironmentFailure, InputError

if TYPE_CHECKING:
    from nacl.signing import SigningKey

MAX_EVENT_BYTES = 1024 * 1024
LOG_MODE = 0o640
_CHUNK = 64 * 1024


class AuditTailError(EnvironmentFailure):
    """The log's last complete line is not a valid event; the writer will not append."""


class AuditWriteError(EnvironmentFailure):
    """The log cannot be opened or an append failed; the file is as it was before."""


def format_time(moment: datetime) -> str:
    """Return RFC 3339 UTC text with microseconds (``...Z``)."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _utcnow() -> datetime:
    return datetime.now(UTC)


def segment_paths(path: Path) -> list[Path]:
    """Return the rotated segments of ``path`` (``<name>.<n>``), oldest first."""
    pattern = re.compile(re.escape(path.name) + r"\.(\d+)$")
    found: list[tuple[int, Path]] = []
    if path.parent.is_dir():
        for child in path.parent.iterdir():
            match = pattern.match(child.name)
            if match:
                found.append((int(match.group(1)), child))
    return [p for _, p in sorted(found)]


@dataclass
class _Tail:
    """What the writer knows about the end of the current segment."""

    ino: int
    size: int
    seq: int
    head: str
    since_checkpoint: int
    last_line: bytes = b""
    """The bytes of the last line, to notice an in-place rewrite of the same size."""


def _read_tail(fd: int, size: int) -> tuple[bytes | None, bytes, int]:
    """Return (last complete line or None, torn bytes after it, offset of the torn bytes)."""
    end = size
    buf = b""
    # Read backwards until the buffer holds the last newline and the one before it.
    while True:
        start = max(0, end - _CHUNK)
        buf = os.pread(fd, end - start, start) + buf
        end = start
        last_nl = buf.rfind(b"\n")
        if last_nl >= 0:
            prev_nl = buf.rfind(b"\n", 0, last_nl)
            if prev_nl >= 0 or end == 0:
                torn = buf[last_nl + 1 :]
                return buf[prev_nl + 1 : last_nl + 1], torn, size - len(torn)
        elif end == 0:
            return None, buf, 0
        if size - end > MAX_EVENT_BYTES * 4:
            raise AuditTailError("audit log tail has no line break in the last 4 MiB")


def _decode_tail_line(line: bytes, where: Path) -> dict[str, Any]:
    try:
        body, digest = decode_line(line)
    except LineHashError as e:
        raise AuditTailError(
            f"the last event of {where} does not match its hash",
            hint="run `aegis audit verify`; the writer refuses to extend a tampered log",
        ) from e
    except LineError as e:
        raise AuditTailError(
            f"the last line of {where} is not an audit event: {e.message}",
            hint="run `aegis audit verify`; the writer refuses to extend a tampered log",
        ) from e
    return {**body, "event_hash": digest}


class AuditLog:
    """Append-only, hash-chained, fsync'd audit log (see the module docstring)."""

    def __init__(
        self,
        path: Path,
        signing_key: SigningKey,
        host: str,
        *,
        checkpoint_every: int = 64,
        witness_cmd: Sequence[str] | None = None,
        witness_file: Path | None = None,
        use_syslog: bool = True,
        max_segment_bytes: int | None = None,
        clock: Callable[[], datetime] = _utcnow,
        journal_socket: Path | None = None,
    ) -> None:
        """Open (creating when missing) the log at ``path``.

        Args:
            path: the current segment, e.g. ``/var/log/aegis/audit.jsonl``.
            signing_key: aegisd's audit key; signs checkpoints.
            host: host identity written into every event.
            checkpoint_every: write a checkpoint after this many events.
            witness_cmd: argv of a command that receives each checkpoint on stdin.
            witness_file: a file off the log that receives each checkpoint.
            use_syslog: also send checkpoints to syslog/journald (best effort).
            max_segment_bytes: rotate automatically once the segment is this large.
            clock: returns the current time (tests pass a fixed clock).
            journal_socket: also send every event to journald there (best effort,
                :mod:`aegis.audit.journal`); None sends nothing.
        """
        if checkpoint_every < 1:
            raise InputError("checkpoint_every must be at least 1")
        self.path = Path(path)
        self.host = host
        self._key = signing_key
        self._pub = public_hex(signing_key)
        self._every = checkpoint_every
        self._publisher = Publisher(witness_cmd, witness_file, use_syslog)
        self._max_bytes = max_segment_bytes
        self._clock = clock
        self._pending: list[dict[str, Any]] = []
        self._tail: _Tail | None = None
        self.problems: list[str] = []
        """Failed automatic checkpoints or rotations since the caller last emptied it."""
        self._journal = (
            JournalSender(journal_socket, status_path_for(self.path))
            if journal_socket is not None
            else None
        )
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o750)
        self._lock_fd = os.open(self._lock_path(), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        self._fd = -1
        with self._locked():
            self._sync()

    # -- public API -------------------------------------------------------------------

    def append(self, kind: str, fields: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """Append one event and fsync it; checkpoint or rotate when due.

        Returns:
            The event body plus its ``event_hash``.

        A failure of the automatic checkpoint or rotation after the event is on disk does
        not undo the event: it is counted in :attr:`problems` for the caller to report.

        Raises:
            InputError: reserved or invalid kind, non-JSON field, event too large.
            AuditTailError: the log's last line is corrupt.
            AuditWriteError: the log cannot be opened or written; nothing was appended.
        """
        if kind in RESERVED_KINDS:
            raise InputError(f"audit event kind {kind!r} is written by the log itself")
        with self._locked():
            self._sync()
            event = self._write(kind, fields or {})
            tail = self._need_tail()
            try:
                if tail.since_checkpoint >= self._every:
                    self._checkpoint_locked()
                if self._max_bytes is not None and tail.size >= self._max_bytes:
                    self._rotate_locked()
            except AuditWriteError as e:
                self.problems.append(e.message)
        self._flush_pending()
        return event

    def probe(self) -> None:
        """Open the log and read its tail as an append would, writing nothing.

        Raises:
            AuditTailError: the log's last line is corrupt.
            AuditWriteError: the log cannot be opened (a symlink in its place, no permission).
        """
        with self._locked():
            self._sync()

    def checkpoint(self) -> dict[str, Any] | None:
        """Sign the current head, write it into the log and publish it.

        Returns:
            The signed checkpoint document, or None when the log is empty.
        """
        with self._locked():
            self._sync()
            doc = self._checkpoint_locked(force=True)
        self._flush_pending()
        return doc

    def rotate(self) -> Path:
        """Checkpoint, move the current segment aside and start a new one.

        Returns:
            The path of the rotated (old) segment.
        """
        with self._locked():
            self._sync()
            old = self._rotate_locked()
        self._flush_pending()
        return old

    @property
    def head(self) -> tuple[int, str]:
        """(sequence, hash) of the last event this writer knows of."""
        tail = self._need_tail()
        return tail.seq, tail.head

    def close(self) -> None:
        """Close the log and lock files."""
        if self._journal is not None:
            self._journal.close()
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
        if self._lock_fd >= 0:
            os.close(self._lock_fd)
            self._lock_fd = -1

    def __enter__(self) -> AuditLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- internals --------------------------------------------------------------------

    def _lock_path(self) -> Path:
        return self.path.with_name(self.path.name + ".lock")

    @contextmanager
    def _locked(self) -> Iterator[None]:
        if self._lock_fd < 0:
            raise RuntimeError("audit log is closed")
        fcntl.flock(self._lock_fd, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(self._lock_fd, fcntl.LOCK_UN)

    def _need_tail(self) -> _Tail:
        if self._tail is None:
            raise RuntimeError("audit log tail not loaded")
        return self._tail

    def _open_segment(self) -> None:
        if self._fd >= 0:
            # Forget the number before anything can fail: a kept number would later be
            # closed again after the kernel handed it to something else (a client socket).
            fd, self._fd = self._fd, -1
            self._tail = None
            os.close(fd)
        flags = os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW
        created = not self.path.exists()
        try:
            fd = os.open(self.path, flags, LOG_MODE)
        except OSError as e:
            raise AuditWriteError(
                f"cannot open the audit log {self.path}: {e.strerror}",
                hint="the log must be a regular file (not a symlink) that root can write",
            ) from e
        self._fd = fd
        if created:
            os.fchmod(self._fd, LOG_MODE)
            gid = group_gid()
            if os.geteuid() == 0 and gid is not None:
                # No aegis group on dev boxes and in tests: keep root's group.
                os.fchown(self._fd, 0, gid)
            _fsync_dir(self.path.parent)
        self._tail = None

    def _sync(self) -> None:
        """Bring the cached tail up to date with the file (called under the lock).

        Raises:
            AuditTailError: the last complete line is not a valid event.
            AuditWriteError: the file cannot be opened, read or (a torn tail) repaired.
        """
        try:
            self._sync_inner()
        except OSError as e:
            raise AuditWriteError(f"cannot use the audit log {self.path}: {e.strerror}") from e

    def _sync_inner(self) -> None:
        try:
            # lstat: a symlink put in the log's place is a different file, never followed.
            st_path = os.lstat(self.path)
        except FileNotFoundError:
            st_path = None
        if self._fd < 0 or st_path is None or st_path.st_ino != os.fstat(self._fd).st_ino:
            self._open_segment()  # first use, or another process rotated the log
        st = os.fstat(self._fd)
        tail = self._tail
        if (
            tail is not None
            and tail.ino == st.st_ino
            and tail.size == st.st_size
            and os.pread(self._fd, len(tail.last_line), tail.size - len(tail.last_line))
            == tail.last_line
        ):
            return
        since = tail.since_checkpoint if tail is not None else 0
        previous: Path | None = None
        line, torn, offset = None, b"", 0
        if st.st_size:
            line, torn, offset = _read_tail(self._fd, st.st_size)
        if line is None:
            self._tail = _Tail(st.st_ino, st.st_size, 0, GENESIS_HASH, since)
            previous = self._adopt_previous_segment()
        else:
            last = _decode_tail_line(line, self.path)
            if last["kind"] == KIND_CHECKPOINT:
                since = 0
            self._tail = _Tail(st.st_ino, st.st_size, last["seq"], last["event_hash"], since, line)
        if torn:
            self._recover_torn(torn, offset)
        if previous is not None:
            self._write_segment_start(previous)

    def _adopt_previous_segment(self) -> Path | None:
        # A current segment without events next to rotated ones (a crash right after
        # rotation): continue the chain from the newest rotated segment.
        segments = segment_paths(self.path)
        if not segments:
            return None
        previous = segments[-1]
        fd = os.open(previous, os.O_RDONLY | os.O_CLOEXEC)
        try:
            size = os.fstat(fd).st_size
            line = _read_tail(fd, size)[0] if size else None
        finally:
            os.close(fd)
        if line is None:
            return None
        last = _decode_tail_line(line, previous)
        tail = self._need_tail()
        tail.seq, tail.head = last["seq"], last["event_hash"]
        return previous

    def _write_segment_start(self, previous: Path) -> None:
        tail = self._need_tail()
        self._write(
            KIND_SEGMENT_START,
            {
                "details": {
                    "previous_segment": previous.name,
                    "previous_head_seq": tail.seq,
                    "previous_head_hash": tail.head,
                }
            },
        )

    def _recover_torn(self, torn: bytes, offset: int) -> None:
        tail = self._need_tail()
        try:
            body, digest = decode_line(torn)
        except LineError:
            body, digest = None, None
        os.write(self._fd, b"\n")  # terminate the torn line so it stays a line of its own
        tail.size += 1
        if (
            body is not None
            and digest is not None
            and body["seq"] == tail.seq + 1
            and body["prev_hash"] == tail.head
        ):
            # A complete event that only lost its newline: adopt it.
            tail.seq, tail.head = body["seq"], digest
            tail.last_line = torn + b"\n"
            os.fsync(self._fd)
            return
        self._write(
            KIND_RECOVERED_TAIL,
            {
                "details": {
                    "torn_sha256": sha256_hex(torn),
                    "torn_length": len(torn),
                    "torn_offset": offset,
                }
            },
        )

    def _write(self, kind: str, fields: Mapping[str, Any]) -> dict[str, Any]:
        tail = self._need_tail()
        body = make_body(
            seq=tail.seq + 1,
            time=format_time(self._clock()),
            host=self.host,
            kind=kind,
            prev_hash=tail.head,
            fields=fields,
        )
        line, digest = encode_event(body)
        if len(line) > MAX_EVENT_BYTES:
            raise InputError(f"audit event is {len(line)} bytes, over {MAX_EVENT_BYTES}")
        try:
            written = os.write(self._fd, line)
            if written != len(line):
                raise OSError(errno.ENOSPC, f"short write ({written}/{len(line)} bytes)")
            os.fsync(self._fd)
        except OSError as e:
            self._undo_partial(tail.size)
            raise AuditWriteError(
                f"cannot append to the audit log {self.path}: {e.strerror}; "
                "the log is left as it was",
                hint="free space on the log's file system, then retry",
            ) from e
        tail.size += written
        tail.last_line = line
        tail.seq, tail.head = body["seq"], digest
        tail.since_checkpoint = 0 if kind == KIND_CHECKPOINT else tail.since_checkpoint + 1
        if self._journal is not None:  # after the fsync: the log is the record, this a copy
            self._journal.send(body, digest, line, body["time"])
        return {**body, "event_hash": digest}

    def _undo_partial(self, size: int) -> None:
        """Cut the file back to its last whole line after a failed write (file system full).

        A torn line left behind would make every later verify fail until someone repaired
        the file; truncating never needs new blocks, so it works on a full file system.
        """
        try:
            os.ftruncate(self._fd, size)
            os.fsync(self._fd)
        except OSError:
            # Could not even truncate: forget the tail so the next sync re-reads the file
            # and records what is there (recovered-tail) rather than trusting the cache.
            self._tail = None

    def _checkpoint_locked(self, *, force: bool = False) -> dict[str, Any] | None:
        tail = self._need_tail()
        if tail.seq == 0 or (not force and tail.since_checkpoint == 0):
            return None
        body = checkpoint_body(
            host=self.host,
            seq=tail.seq,
            head_hash=tail.head,
            time=format_time(self._clock()),
            public_key_hex=self._pub,
        )
        doc = sign_checkpoint(body, self._key)
        self._write(KIND_CHECKPOINT, {"details": doc})
        self._pending.append(doc)
        return doc

    def _rotate_locked(self) -> Path:
        self._checkpoint_locked()
        segments = segment_paths(self.path)
        number = 1
        if segments:
            number = int(segments[-1].name.rsplit(".", 1)[1]) + 1
        old = self.path.with_name(f"{self.path.name}.{number}")
        tail = self._need_tail()
        seq, head = tail.seq, tail.head
        os.rename(self.path, old)
        _fsync_dir(self.path.parent)
        self._open_segment()
        st = os.fstat(self._fd)
        self._tail = _Tail(st.st_ino, st.st_size, seq, head, 0)
        self._write_segment_start(old)
        return old

    def _flush_pending(self) -> None:
        pending, self._pending = self._pending, []
        for doc in pending:
            self._publisher.publish(doc)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
