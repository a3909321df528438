"""aegisd: the constrained executor (the only process that changes packages).

One thread per client, each reading its request against a deadline, so a slow
client never blocks another. Requests are refused unless every check of
docs/design.md "Trust" passes, in that order (:func:`aegis.execute.apply.verify_for_apply`,
with the checks of :mod:`aegis.sign.checks`); then, under
aegisd's own lock: ``dpkg --audit`` clean, snapshot when required, ``started``
recorded durably, run, ``finished`` recorded, dpkg status compared with the
signed delta, audit event. Every refusal is an audit event too. aegisd is the only
writer of the audit log and of its ledger.

A client that disconnects never aborts a run: the run happens in the handler
thread whether or not anyone is left to read the answer, and the child is in its
own session (``KillMode=process`` semantics).

Test hooks (honoured only when ``AEGIS_TEST_HOOKS=1``): with ``AEGIS_TEST_HOOK_DIR=D``,
at each point ``P`` (``before-started``, ``after-started``, ``before-run``, ``after-run``)
aegisd touches ``D/P.reached``; if ``D/P.wait`` exists it then waits until ``D/P.go``
exists (up to 60 s). Tests use it to SIGKILL aegisd at an exact step or to change
the repository between re-derivation and the run.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from aegis.config import Config
from aegis.errors import AegisError, EnvironmentFailure, StateError, TrustError
from aegis.execute import ledger as ledger_mod
from aegis.execute import runner
from aegis.execute.own_dir import REFUSED_OWN_DIR, check_own_dir, claim_own_dir_once
from aegis.execute.peer import PeerCredentials, group_gid, may_submit, peer_credentials
from aegis.execute.protocol import (
    REFUSED_MALFORMED,
    REFUSED_OVERSIZED,
    REFUSED_PEER,
    REFUSED_SLOW,
    REFUSED_STATE,
    REFUSED_VERIFYING,
    Answer,
    ProtocolError,
    Request,
    answer_to_dict,
    encode_frame,
    iso,
    parse_request,
    read_frame,
)
from aegis.execute.settings import DaemonSettings
from aegis.sockets import listen_at

HOOK_POINTS = ("before-started", "after-started", "before-run", "after-run")


def utcnow() -> datetime:
    """The daemon's clock (the one place it is read)."""
    return datetime.now(UTC)


@dataclass
class _Conn:
    sock: socket.socket
    creds: PeerCredentials


class Aegisd:
    """The daemon's state: settings, ledger, audit log and the execution lock."""

    def __init__(
        self,
        cfg: Config,
        settings: DaemonSettings,
        *,
        env: dict[str, str] | None = None,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        """Open the ledger and the audit log (creating aegisd's audit key on first start)."""
        from aegis.execute.audit_writer import AuditWriter

        self.cfg = cfg
        self.settings = settings
        self.env = dict(os.environ if env is None else env)
        self.clock = clock
        # Before anything is read or written there: the directory sits in the
        # group-writable store, so it must be aegisd's own (aegis/execute/own_dir.py).
        self.own_dir = claim_own_dir_once(cfg)
        self.ledger = ledger_mod.Ledger(cfg.ledger_path)
        self.audit = AuditWriter(cfg, settings)
        self.audit.on_failure = self.publish_status  # the monitor's gauge follows at once
        self.apply_gid = group_gid(settings.apply_group)
        self._exec_lock = threading.Lock()
        self._lock_path = cfg.aegisd_dir / "aegisd.lock"
        self._stop = threading.Event()
        self._workers: set[threading.Thread] = set()
        self._workers_lock = threading.Lock()
        self._status_lock = threading.Lock()
        self.running_id: str | None = None  # whose command runs now (started, not finished)
        from aegis.execute.verifier import Verifier

        self.verifier = Verifier(self)  # health probes and the dead-man restore
        self.publish_status()
        _preload()

    def publish_status(self) -> None:
        """Rewrite the status file group aegis reads (aegis/execute/status_file.py).

        Called at start, after every ledger change and audit-log failure; a failure is
        logged, never fails the request (the ledger is what aegisd decides with).
        """
        from aegis.execute.status_file import publish

        now, running, failures = iso(self.clock()), self.running_id, self.audit.failures
        with self._status_lock:
            try:
                publish(self.cfg, self.ledger, now=now, running=running, audit_failures=failures)
            except (OSError, AegisError) as e:
                sys.stderr.write(f"aegisd: cannot publish its status file: {e}\n")
                sys.stderr.flush()

    # -- test hooks ----------------------------------------------------------------

    def hook(self, point: str) -> None:
        """Pause at ``point`` when tests armed it (only with AEGIS_TEST_HOOKS=1)."""
        if self.env.get("AEGIS_TEST_HOOKS") != "1" or not self.env.get("AEGIS_TEST_HOOK_DIR"):
            return
        hook_dir = Path(self.env["AEGIS_TEST_HOOK_DIR"])
        (hook_dir / f"{point}.reached").touch()
        if not (hook_dir / f"{point}.wait").exists():
            return
        deadline = time.monotonic() + 60
        while not (hook_dir / f"{point}.go").exists() and time.monotonic() < deadline:
            time.sleep(0.02)

    # -- serving -------------------------------------------------------------------

    def serve(self, listener: socket.socket) -> None:
        """Accept clients until :meth:`stop`; each client gets its own thread."""
        listener.settimeout(0.5)
        while not self._stop.is_set():
            try:
                sock, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                if self._stop.is_set():
                    break
                raise
            t = threading.Thread(target=self._client, args=(sock,), daemon=True)
            with self._workers_lock:
                self._workers.add(t)
            t.start()
        # A stop request waits for running executions: a run is never cut short.
        with self._workers_lock:
            workers = list(self._workers)
        for t in workers:
            t.join()
        self.verifier.join()

    def stop(self) -> None:
        """Stop accepting; running executions finish first."""
        self._stop.set()

    def stopping(self) -> bool:
        """True once :meth:`stop` was called (verification watchers return)."""
        return self._stop.is_set()

    def _client(self, sock: socket.socket) -> None:
        try:
            with sock:
                creds = peer_credentials(sock)
                answer = self._answer(_Conn(sock, creds))
                with contextlib.suppress(OSError):
                    sock.settimeout(10)
                    sock.sendall(encode_frame(answer_to_dict(answer)))
        except Exception as e:
            sys.stderr.write(f"aegisd: client handler failed: {type(e).__name__}: {e}\n")
        finally:
            with self._workers_lock:
                self._workers.discard(threading.current_thread())

    def _answer(self, conn: _Conn) -> Answer:
        try:
            data = read_frame(
                conn.sock,
                max_bytes=self.settings.max_request_bytes,
                timeout_s=self.settings.read_timeout_s,
            )
            req = parse_request(data)
        except ProtocolError as e:
            code = REFUSED_MALFORMED
            if "exceeds" in e.message:
                code = REFUSED_OVERSIZED
            elif "too slow" in e.message:
                code = REFUSED_SLOW
            return self.refuse(conn.creds, code, e.message, None)
        if req.op == "ping":
            from aegis.execute.ready import ping_answer

            return ping_answer(self)
        try:
            check_own_dir(self.cfg.aegisd_dir, self.own_dir)
        except TrustError as e:
            return self.refuse(conn.creds, REFUSED_OWN_DIR, e.message, req.execution_id)
        if req.op == "status":
            return self.status(req)
        if not may_submit(conn.creds, apply_gid=self.apply_gid):
            return self.refuse(
                conn.creds,
                REFUSED_PEER,
                f"uid {conn.creds.uid} is neither root nor in group {self.settings.apply_group}",
                req.execution_id,
            )
        if req.op == "revoke":
            return self.revoke(req, conn.creds)
        if req.op == "resolve":
            return self.resolve(req, conn.creds)
        if req.op == "confirm":
            assert req.execution_id is not None
            return self.verifier.confirm(req.execution_id, conn.creds)
        if req.op == "record-out-of-band":
            from aegis.oob.serve import answer_record

            return answer_record(self)
        from aegis.execute.apply import apply_request

        return apply_request(self, req, conn.creds)

    # -- small requests --------------------------------------------------------------

    def status(self, req: Request) -> Answer:
        """The ledger row of an execution id (``aegis resume`` asks this)."""
        assert req.execution_id is not None
        entry = self.ledger.lookup(req.execution_id)
        if entry is None:
            return Answer(ok=True, message="unknown to the ledger", execution_id=req.execution_id)
        row = self.verifier.rows.get(entry.execution_id)
        return Answer(
            ok=True,
            message=f"execution {entry.state}",
            execution_id=entry.execution_id,
            state=entry.state,
            exit_status=entry.exit_status,
            result={
                "outcome": entry.outcome,
                "started_at": entry.started_at,
                "finished_at": entry.finished_at,
                "request_id": entry.request_id,
                # started + running: another client's run is going on, not an interruption
                "running": entry.state == ledger_mod.STARTED
                and self.running_id == entry.execution_id,
                **({"verification": self.verifier.public(row)} if row is not None else {}),
            },
        )

    def revoke(self, req: Request, creds: PeerCredentials) -> Answer:
        """Burn an unused execution id; audited."""
        assert req.execution_id is not None
        try:
            entry = self.ledger.revoke(
                req.execution_id, reason=req.reason or "", by_uid=creds.uid, now=iso(self.clock())
            )
        except AegisError as e:
            return self.refuse(creds, REFUSED_STATE, e.message, req.execution_id)
        self.publish_status()
        self._audit_after_change(
            "revoke",
            {
                "actor": {"uid": creds.uid, "pid": creds.pid},
                "request_id": req.request_id,
                "execution_id": req.execution_id,
                "decision": {"outcome": "revoked", "rule_ids": [], "reasons": [req.reason or ""]},
            },
        )
        return Answer(
            ok=True,
            message=f"execution id {req.execution_id} revoked",
            execution_id=req.execution_id,
            state=entry.state,
        )

    def resolve(self, req: Request, creds: PeerCredentials) -> Answer:
        """Record an operator's signed resolution of an interrupted execution; audited."""
        from aegis.execute.resolve import parse_resolution, verify_resolution

        assert req.execution_id is not None
        assert req.document is not None
        try:
            res = parse_resolution(req.document.encode("utf-8"))
            verify_resolution(res, self.settings.signer_keys)
            if res.execution_id != req.execution_id:
                raise TrustError("the resolution names another execution id")
            entry = self.ledger.lookup(req.execution_id)
            if entry is None or entry.state != ledger_mod.STARTED:
                state = entry.state if entry else "unknown"
                raise StateError(f"execution {req.execution_id} is {state}, not interrupted")
            waits = self.verifier.resolution_problem(req.execution_id)
            if res.resolved_as == "applied" and waits is not None:
                return self.refuse(creds, REFUSED_VERIFYING, waits, req.execution_id)
            self.ledger.record_resolved(
                req.execution_id,
                outcome=f"resolved-{res.resolved_as}",
                now=iso(self.clock()),
                reason=res.reason[:1000],
            )
            self.publish_status()
        except AegisError as e:
            code = "refused:signature" if isinstance(e, TrustError) else REFUSED_STATE
            return self.refuse(creds, code, e.message, req.execution_id)
        self._audit_after_change(
            "resolve",
            {
                "actor": {"uid": creds.uid, "pid": creds.pid, "signer": res.operator_id},
                "request_id": res.request_id,
                "execution_id": res.execution_id,
                "decision": {
                    "outcome": f"resolved-{res.resolved_as}",
                    "rule_ids": [],
                    "reasons": [res.reason],
                },
                "details": {"dpkg_check": list(res.dpkg_check)},
            },
        )
        self.audit.checkpoint()
        # Resolved applied with health probes signed: they decide now, as after a run.
        verification = (
            self.verifier.after_resolution(req.execution_id)
            if res.resolved_as == "applied"
            else None
        )
        return Answer(
            ok=True,
            message=f"execution {req.execution_id} resolved as {res.resolved_as}",
            execution_id=req.execution_id,
            state=ledger_mod.FINISHED,
            result={"verification": verification} if verification else {},
        )

    def _audit_after_change(self, kind: str, fields: dict[str, Any]) -> None:
        """Audit a ledger change already made; a failed append is logged and counted.

        The answer still goes out: the client must learn the ledger changed, and the log
        is as it was (the writer said why in aegisd's journal).
        """
        with contextlib.suppress(AegisError):
            self.audit.append(kind, fields)

    def refuse(
        self,
        creds: PeerCredentials,
        code: str,
        message: str,
        execution_id: str | None,
        *,
        request_id: str | None = None,
        extra: dict[str, Any] | None = None,
    ) -> Answer:
        """Audit a refusal and return the answer saying why (``ok`` false)."""
        fields: dict[str, Any] = {
            "actor": {"uid": creds.uid, "pid": creds.pid, **(extra or {}).pop("actor", {})},
            "request_id": request_id,
            "execution_id": execution_id,
            "decision": {"outcome": "refused", "rule_ids": [code], "reasons": [message]},
        }
        if extra:
            fields["details"] = extra
        try:
            self.audit.append("apply-refused", fields)
        except AegisError as e:
            message = f"{message} (and the audit event could not be written: {e.message})"
        else:
            if request_id is not None:
                # A request is audited once a checkpoint covers its last event: a refusal
                # naming it (a second client's replay) must not leave it uncovered.
                self.audit.checkpoint()
        return Answer(ok=False, refusal=code, message=message, execution_id=execution_id)

    @contextlib.contextmanager
    def execution_lock(self) -> Any:
        """Hold aegisd's own lock: one execution at a time, across threads and processes."""
        with self._exec_lock:
            flags = os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW
            fd = os.open(self._lock_path, flags, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
                yield
            finally:
                os.close(fd)

    def child_env(self) -> dict[str, str]:
        """The fixed environment of every command aegisd runs."""
        return runner.child_env(self.cfg.apt_config)


def _preload() -> None:
    """Import the apply path once at startup, so the first request pays no import cost."""
    import importlib

    for name in (
        "aegis.execute.apply",
        "aegis.ecosystems.apt.argv",
        "aegis.sign.execution_plan",
        "aegis.sign.checks",
        "aegis.ecosystems.apt.plan",
        "aegis.policy.engine",
        "aegis.policy.run",
        "nacl.signing",
        "aegis.ecosystems.cargo.resolve",
        # Images: the planner, its registry reads and cosign's verifier (cryptography).
        "aegis.ecosystems.image.resolve",
        "aegis.ecosystems.image.rules",
        "cryptography.hazmat.primitives.asymmetric.ec",
        "cryptography.hazmat.primitives.serialization",
        # Imported lazily on the way (re-derivation, content inspection, the store):
        # python-debian's deb822 alone costs more than the rest of the request's setup.
        "debian.deb822",
        "aegis.ecosystems.apt.evidence.contents",
        "aegis.analyze.evidence.vulndb",
        "aegis.review.record",
        "aegis.workflow.graph",
        "aegis.workflow.store",
        "aegis.ecosystems",
        "aegis.api",
        # Still imported by the first apply before these were added (profiled): the
        # store's sqlite-utils, and what the re-derivation's policy and the ecosystem
        # registry reach for.
        "sqlite_utils",
        "aegis.policy.rules_repo",
        "aegis.ecosystems.apt.rules",
        "aegis.ecosystems.go",
        "aegis.ecosystems.image",
        "aegis.ecosystems.pip",
        "aegis.ecosystems.npm",
        "dateutil.parser",
    ):
        with contextlib.suppress(ImportError):
            importlib.import_module(name)
    with contextlib.suppress(Exception):
        from aegis.codec import prepare
        from aegis.model import Plan
        from aegis.policy.config import PolicyConfig
        from aegis.policy.result import PolicyResult
        from aegis.sign.execution_plan import ExecutionPlan

        # The policy's: every apply hashes aegisd's policy and its decision (profiled:
        # building them was ~20 ms of the first apply, after its re-resolution).
        prepare(ExecutionPlan, Plan, PolicyConfig, PolicyResult)
    with contextlib.suppress(Exception):
        import sqlite_utils

        sqlite_utils.Database(memory=True, execute_plugins=False).close()


def open_listener(path: Path, mode: int, group: str | None, env: dict[str, str]) -> socket.socket:
    """Return the listening socket: systemd's (LISTEN_FDS) or a fresh one at ``path``.

    Raises:
        EnvironmentFailure: the socket cannot be created.
        InputError: something other than a socket is at ``path``.
    """
    if env.get("LISTEN_PID") == str(os.getpid()) and int(env.get("LISTEN_FDS", "0")) >= 1:
        return socket.socket(fileno=3)
    try:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o755)
    except OSError as e:
        raise EnvironmentFailure(f"cannot listen on {path}: {e}") from e
    return listen_at(path, mode, group_gid(group) if group else None)


def _keys_line(settings: DaemonSettings) -> str:
    problem = settings.keys_problem
    return (
        f"{len(settings.signer_keys)} signer key(s), {len(settings.approver_keys)} approver "
        f"key(s){' from ' + ', '.join(settings.sources) if settings.sources else ''}"
        f"{'; REFUSING every apply: ' + problem if problem else ''}"
    )


def reload_keys(daemon: Aegisd, load: Callable[[], DaemonSettings]) -> bool:
    """Re-read the trusted keys (``systemctl reload aegisd``, SIGHUP); say so in the log.

    Only the keys change: the socket is already open and a run in progress keeps the
    settings it started with. A configuration that no longer loads keeps the old keys.

    Returns:
        True when the new keys are in use.
    """
    from dataclasses import replace

    try:
        new = load()
    except AegisError as e:
        sys.stderr.write(f"aegisd: reload failed, keeping the previous keys: {e.diagnostics()}\n")
        sys.stderr.flush()
        return False
    daemon.settings = replace(
        daemon.settings,
        signer_keys=new.signer_keys,
        approver_keys=new.approver_keys,
        approver_roles=new.approver_roles,
        sources=new.sources,
        signers_dir=new.signers_dir,
    )
    sys.stderr.write(f"aegisd: reloaded trusted keys: {_keys_line(daemon.settings)}\n")
    sys.stderr.flush()
    return True


def run_daemon(
    cfg: Config,
    settings: DaemonSettings,
    env: dict[str, str] | None = None,
    *,
    reload: Callable[[], DaemonSettings] | None = None,
) -> int:
    """Run aegisd until SIGTERM/SIGINT; SIGHUP re-reads the trusted keys (``reload``)."""
    env = dict(os.environ if env is None else env)
    daemon = Aegisd(cfg, settings, env=env)
    listener = open_listener(settings.socket_path, settings.socket_mode, settings.apply_group, env)

    def _stop(signum: int, frame: object) -> None:
        daemon.stop()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    if reload is not None:
        load = reload

        def _reload(signum: int, frame: object) -> None:
            reload_keys(daemon, load)

        signal.signal(signal.SIGHUP, _reload)
    sys.stderr.write(f"aegisd: listening on {settings.socket_path}; {_keys_line(settings)}\n")
    sys.stderr.flush()
    from aegis.oob.serve import start_findings_listener

    findings = start_findings_listener(daemon)
    daemon.verifier.resume()  # a restart never re-runs an apply; it resumes verifying it
    try:
        daemon.serve(listener)
    finally:
        if findings is not None:
            findings.close()
        listener.close()
        daemon.audit.close()
    return 0
