"""aegisd's findings socket: the one verb group ``aegis`` may ask of aegisd.

aegis-monitor runs as a member of group ``aegis`` and may not reach aegisd's socket
(``root:aegis-apply``: the right to apply). To have out-of-band changes recorded in
the audit log, which only aegisd writes, aegisd listens on a second socket,
``<run_dir>/aegisd-findings.sock`` (0660 root:aegis), that answers ``ping`` and
``record-out-of-band`` and refuses everything else, audited. The verb takes no input:
aegisd reads dpkg's status and logs itself (aegis/oob/record.py), so a caller can make
it look, never tell it what it saw. It waits for a run in progress (aegisd's execution
lock), so an apply of its own is never mistaken for an out-of-band change.

Example:
    $ aegis drift --record     # asks aegisd over this socket
"""

from __future__ import annotations

import contextlib
import os
import socket
import sys
import threading
from pathlib import Path
from typing import TYPE_CHECKING

from aegis.config import group_gid
from aegis.errors import AegisError
from aegis.execute.peer import peer_credentials
from aegis.execute.protocol import (
    Answer,
    ProtocolError,
    Request,
    answer_to_dict,
    call,
    encode_frame,
    parse_request,
    read_frame,
)
from aegis.oob.record import OP, record_findings

if TYPE_CHECKING:
    from aegis.config import Config
    from aegis.execute.daemon import Aegisd

REFUSED_FINDINGS_ONLY = "refused:findings-socket"
RECORD_TIMEOUT_S = 900.0
"""A client waits this long: aegisd records only between its own runs."""


def findings_socket(cfg: Config) -> Path:
    """Where aegisd listens for ``record-out-of-band`` from group ``aegis``."""
    return beside(cfg.aegisd_socket)


def beside(main_socket: Path) -> Path:
    """The findings socket next to aegisd's socket: ``aegisd.sock`` -> ``aegisd-findings.sock``."""
    return main_socket.with_name(f"{main_socket.stem}-findings.sock")


def answer_record(d: Aegisd) -> Answer:
    """Record findings between runs and say how many were new."""
    try:
        with d.execution_lock():
            new = record_findings(d)
    except (OSError, AegisError) as e:
        return Answer(ok=False, refusal="refused:environment", message=f"cannot record: {e}")
    return Answer(
        ok=True,
        message=f"{len(new)} out-of-band change(s) recorded",
        result={"recorded": [f.as_dict() for f in new]},
    )


def _client(d: Aegisd, sock: socket.socket) -> None:

    with sock:
        creds = peer_credentials(sock)
        try:
            req = parse_request(read_frame(sock, timeout_s=d.settings.read_timeout_s))
        except ProtocolError as e:
            answer = Answer(ok=False, refusal="refused:malformed", message=e.message)
        else:
            if req.op == "ping":
                answer = Answer(ok=True, message="aegisd findings socket ready")
            elif req.op == OP:
                answer = answer_record(d)
            else:
                answer = d.refuse(
                    creds,
                    REFUSED_FINDINGS_ONLY,
                    f"op {req.op!r} on the findings socket, which only records findings",
                    req.execution_id,
                )
        with contextlib.suppress(OSError):
            sock.settimeout(10)
            sock.sendall(encode_frame(answer_to_dict(answer)))


def _serve(d: Aegisd, listener: socket.socket) -> None:
    while True:
        try:
            sock, _ = listener.accept()
        except OSError:
            return  # closed at shutdown
        threading.Thread(target=_guarded, args=(d, sock), daemon=True).start()


def _guarded(d: Aegisd, sock: socket.socket) -> None:
    try:
        _client(d, sock)
    except Exception as e:  # one client's failure never stops the listener
        sys.stderr.write(f"aegisd: findings client failed: {type(e).__name__}: {e}\n")


def start_findings_listener(d: Aegisd) -> socket.socket | None:
    """Record what changed since the last baseline, then listen on the findings socket.

    A socket that cannot be created is logged, not fatal: applying never depends on it,
    and aegisd still records before and after each of its runs.
    """
    try:
        with d.execution_lock():
            record_findings(d)
    except (OSError, AegisError) as e:
        sys.stderr.write(f"aegisd: out-of-band check at start failed: {e}\n")
    path = beside(d.settings.socket_path)
    try:
        with contextlib.suppress(FileNotFoundError):
            if path.is_socket():
                path.unlink()
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        old = os.umask(0o177)
        try:
            sock.bind(str(path))
        finally:
            os.umask(old)
        gid = group_gid()
        if os.geteuid() == 0 and gid is not None:
            os.chown(path, 0, gid)
        os.chmod(path, 0o660)
        sock.listen(16)
    except OSError as e:
        sys.stderr.write(f"aegisd: cannot listen on {path}: {e}\n")
        return None
    threading.Thread(target=_serve, args=(d, sock), daemon=True).start()
    sys.stderr.write(f"aegisd: findings socket {path} (record-out-of-band only)\n")
    return sock


def ask_record(cfg: Config, path: Path | None = None) -> Answer:
    """Ask aegisd to record out-of-band changes now (the monitor's pass does this).

    Raises:
        EnvironmentFailure: aegisd is not listening there.
    """
    target = path or findings_socket(cfg)
    return call(str(target), Request(op=OP), timeout_s=RECORD_TIMEOUT_S)
