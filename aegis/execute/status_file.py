"""aegisd's status file: which executions started and finished, readable by group aegis.

aegis-monitor must reconcile a request left in ``applying`` by a client that died, but
it may not reach aegisd's socket (``root:aegis-apply``: the right to apply) nor read
its root-only ledger. So aegisd publishes a read-only copy of what the monitor needs:
``<log_dir>/aegisd-status.json`` (0640 root:aegis, in the directory only root writes),
rewritten atomically at start and after every ``started``, ``finished``, revocation
and resolution. It grants nothing: reading it cannot start, stop or apply anything.

It lists every execution that started and never finished (however old) and the
newest :data:`MAX_DONE` others; ``complete`` says whether that is the whole ledger,
so a reader can tell "never started" from "too old to be listed".

A reader trusts the file only when it is a regular file owned by root (or by the
reader itself, for a development home) that neither group nor others may write;
everything in it is parsed strictly and checked like any answer from aegisd.

Example:
    >>> publish(cfg, ledger, now="2026-01-01T00:00:00.000000Z")
    >>> read_status(cfg, "0" * 32).state
    'finished'
"""

from __future__ import annotations

import contextlib
import os
import stat
import time
from pathlib import Path
from typing import Any

from aegis.bounds import EXECUTION_ID_RE
from aegis.canonical import canonical_bytes, loads_strict
from aegis.config import Config, group_gid
from aegis.errors import AegisError, InputError
from aegis.execute import ledger as ledger_mod
from aegis.execute.protocol import Answer
from aegis.execute.verifications import Verifications, check_public
from aegis.safe_read import open_regular

STATUS_NAME = "aegisd-status.json"
SCHEMA = "aegis.aegisd-status/1"
MAX_DONE = 5000
MAX_STATUS_BYTES = 8 * 1024 * 1024
STATUS_MODE = 0o640
_STATES = frozenset({ledger_mod.STARTED, ledger_mod.FINISHED, ledger_mod.REVOKED})


def status_path(cfg: Config) -> Path:
    """Where aegisd publishes its status (beside the audit log, which only root writes)."""
    return cfg.log_dir / STATUS_NAME


def _entry(e: ledger_mod.LedgerEntry) -> dict[str, Any]:
    return {
        "state": e.state,
        "request_id": e.request_id,
        "started_at": e.started_at,
        "finished_at": e.finished_at,
        "exit_status": e.exit_status,
        "outcome": e.outcome,
        "revoked_at": e.revoked_at,
    }


def publish(
    cfg: Config,
    led: ledger_mod.Ledger,
    *,
    now: str,
    running: str | None = None,
    audit_failures: int = 0,
) -> Path:
    """Write the status file from the ledger (atomically: temp file, fsync, rename).

    ``running`` names the execution whose command runs now: its entry says
    ``"running": true`` and the file names the publishing aegisd (pid and start time), so a
    reader does not take a live run for an interrupted one. A reader believes the flag
    only while that very process is alive (:func:`_publisher_alive`): a killed aegisd's
    run is ``started`` without ``finished``, i.e. interrupted, as before.

    Raises:
        OSError: the file cannot be written (the caller logs it; a run is never failed
            for it).
    """
    rows, complete = led.recent(MAX_DONE)

    # Health-probe verifications, so group aegis (the monitor's resume) can record them.
    checks = Verifications(led.path).by_execution([e.execution_id for e in rows])
    body = canonical_bytes(
        {
            "schema_version": SCHEMA,
            "written_at": now,
            "complete": complete,
            "aegisd": {"pid": os.getpid(), "start": _start_time(os.getpid())},
            # Failed appends, checkpoints and probes of the audit log since aegisd started
            # (the monitor's aegis_audit_append_failures gauge).
            "audit_append_failures": audit_failures,
            "executions": {
                e.execution_id: {
                    **_entry(e),
                    **({"running": True} if running == e.execution_id else {}),
                    **(
                        {"verification": checks[e.execution_id].public()}
                        if e.execution_id in checks
                        else {}
                    ),
                }
                for e in rows
            },
        }
    )
    path = status_path(cfg)
    path.parent.mkdir(parents=True, exist_ok=True)
    dfd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    tmp = f".{STATUS_NAME}.{os.getpid()}.{time.monotonic_ns()}.tmp"
    try:
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
        fd = os.open(tmp, flags, STATUS_MODE, dir_fd=dfd)
        try:
            gid = group_gid()
            if os.geteuid() == 0 and gid is not None:
                os.fchown(fd, 0, gid)
            os.fchmod(fd, STATUS_MODE)
            os.write(fd, body + b"\n")
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, STATUS_NAME, src_dir_fd=dfd, dst_dir_fd=dfd)
        os.fsync(dfd)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp, dir_fd=dfd)
        raise
    finally:
        os.close(dfd)
    return path


def read_trusted(path: Path) -> bytes:
    """The file's bytes, when it is one aegisd wrote (see module doc).

    Raises:
        InputError: missing, unreadable, not a regular file, someone else's, writable
            by group or others, or too large.
    """
    with open_regular(path, "aegisd's status", follow=False) as f:
        st = os.fstat(f.fileno())
        if st.st_uid not in (0, os.geteuid()):
            raise InputError(f"aegisd's status {path} belongs to uid {st.st_uid}, not root")
        if st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
            raise InputError(f"aegisd's status {path} is writable by group or others")
        data = f.read(MAX_STATUS_BYTES + 1)
    if len(data) > MAX_STATUS_BYTES:
        raise InputError(f"aegisd's status {path} is larger than {MAX_STATUS_BYTES} bytes")
    return data


def _start_time(pid: int) -> int | None:
    """The process's start time in clock ticks since boot (/proc/PID/stat field 22)."""
    try:
        stat_line = Path(f"/proc/{pid}/stat").read_text(encoding="ascii", errors="replace")
        # The command name (field 2) may hold spaces and parentheses: split after the last ")".
        return int(stat_line.rsplit(")", 1)[1].split()[19])
    except (OSError, ValueError, IndexError):
        return None


def _publisher_alive(doc: dict[str, Any]) -> bool:
    """Whether the aegisd that wrote ``doc`` still runs (same pid, same start time)."""
    who = doc.get("aegisd")
    if not isinstance(who, dict):
        return False
    pid, start = who.get("pid"), who.get("start")
    if isinstance(pid, bool) or not isinstance(pid, int) or pid <= 0 or start is None:
        return False
    return bool(_start_time(pid) == start)


def _check_entry(execution_id: str, raw: Any, *, publisher_alive: bool = False) -> Answer:
    if not isinstance(raw, dict) or raw.get("state") not in _STATES:
        raise InputError(f"aegisd's status has a malformed entry for {execution_id}")
    exit_status = raw.get("exit_status")
    if exit_status is not None and (
        isinstance(exit_status, bool) or not isinstance(exit_status, int)
    ):
        raise InputError(f"aegisd's status has a malformed exit status for {execution_id}")
    outcome = raw.get("outcome")
    if outcome is not None and not isinstance(outcome, str):
        raise InputError(f"aegisd's status has a malformed outcome for {execution_id}")
    running = raw.get("running", False)
    if not isinstance(running, bool):
        raise InputError(f"aegisd's status has a malformed running flag for {execution_id}")

    extra = {}
    if "verification" in raw:
        extra["verification"] = check_public(raw["verification"])
    return Answer(
        ok=True,
        message=f"execution {raw['state']} (aegisd's status file)",
        execution_id=execution_id,
        state=raw["state"],
        exit_status=exit_status,
        result={
            "outcome": outcome,
            "running": running and publisher_alive and raw["state"] == ledger_mod.STARTED,
            **extra,
        },
    )


def read_status(cfg: Config, execution_id: str) -> Answer | None:
    """The answer aegisd published about ``execution_id``, like its ``status`` verb.

    Returns:
        The entry as a status answer; an answer without a state when aegisd never saw
        the id (the list is complete); None when the file cannot tell (unreadable,
        untrusted, malformed, or the id may be older than what is listed).
    """
    if not EXECUTION_ID_RE.match(execution_id):
        return None
    try:
        doc = loads_strict(read_trusted(status_path(cfg)), max_bytes=MAX_STATUS_BYTES)
        if not isinstance(doc, dict) or doc.get("schema_version") != SCHEMA:
            raise InputError("aegisd's status has an unknown schema")
        executions = doc.get("executions")
        if not isinstance(executions, dict):
            raise InputError("aegisd's status has no executions")
        if execution_id in executions:
            return _check_entry(
                execution_id, executions[execution_id], publisher_alive=_publisher_alive(doc)
            )
    except AegisError:
        return None
    if doc.get("complete") is True:
        return Answer(ok=True, message="unknown to the ledger", execution_id=execution_id)
    return None


def audit_failures(cfg: Config) -> int | None:
    """Aegisd's count of failed audit-log writes since it started, from its status file.

    Returns:
        The count, or None when the file cannot tell (missing, untrusted, older aegisd).
    """
    try:
        doc = loads_strict(read_trusted(status_path(cfg)), max_bytes=MAX_STATUS_BYTES)
    except AegisError:
        return None
    value = doc.get("audit_append_failures") if isinstance(doc, dict) else None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        return None
    return value
