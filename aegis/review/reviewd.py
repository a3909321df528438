"""aegis-reviewd: the review daemon (its own unprivileged user in production).

``aegis-reviewd [--socket PATH]`` listens on ``/run/aegis/aegis-reviewd.sock``
(``cfg.reviewd_socket``; or the socket systemd passes with ``LISTEN_FDS``). Each
client sends one length-framed request (:mod:`aegis.review.wire`) carrying a
plan; the daemon parses it strictly, hashes it itself, asks the model
(:func:`aegis.review.service.make_review`), signs the review with its own key and
returns it.

- The signing key comes from root-configured places only: ``AEGIS_REVIEW_KEY``
  (a path, set in the unit) or ``<etc>/keys/review.key``; never argv. No key: it
  does not start.
- One thread per client, at most :data:`MAX_CLIENTS` at once (more are told
  "busy"); reads have a deadline and a size cap, so one slow client never blocks
  the others.
- It never writes the store and never talks to aegisd: it only reads what it is
  sent and calls the model endpoint.

Example:
    $ AEGIS_AI_MODEL=qwen aegis-reviewd --socket /run/aegis/aegis-reviewd.sock
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aegis.config import load_config
from aegis.ed25519 import public_hex
from aegis.errors import AegisError, EnvironmentFailure, InputError, TrustError, daemon_epilog
from aegis.model import plan_from_dict, plan_hash
from aegis.review.record import review_to_dict, sign_review
from aegis.review.service import API_KEY_ENV, load_review_key, make_review
from aegis.review.wire import (
    MAX_ANSWER_BYTES,
    MAX_REQUEST_BYTES,
    REQUEST_SCHEMA,
    encode_frame,
    read_frame,
)
from aegis.sockets import listen_at
from aegis.text import inert

EXITS = (InputError, TrustError, EnvironmentFailure)
"""What aegis-reviewd's start can exit with (its --help names them): configuration (3),
a review key that does not load (4), a socket it cannot use (7)."""

if TYPE_CHECKING:
    from nacl.signing import SigningKey

    from aegis.config import Config
    from aegis.review.record import Review

MAX_CLIENTS = 16
READ_TIMEOUT_S = 10.0
SEND_TIMEOUT_S = 10.0
SD_LISTEN_FDS_START = 3


def _log(message: str) -> None:

    sys.stderr.write(f"aegis-reviewd: {inert(message, max_chars=500)}\n")
    sys.stderr.flush()


class ReviewDaemon:
    """Serves review requests on a listening Unix socket."""

    def __init__(
        self,
        cfg: Config,
        key: SigningKey,
        *,
        api_key: str | None = None,
        reviewer: Callable[[Any, str], Review] | None = None,
    ) -> None:
        """Build the daemon.

        Args:
            cfg: configuration (model endpoint, model id, timeout, token cap).
            key: aegis-reviewd's signing key.
            api_key: bearer token for the endpoint, from the environment.
            reviewer: replaces the model call (plan, plan_hash) -> unsigned review.
        """
        self.cfg = cfg
        self.key = key
        self.public_key_hex = public_hex(key)
        self.api_key = api_key
        self._reviewer = reviewer
        self._slots = threading.BoundedSemaphore(MAX_CLIENTS)
        self._stop = threading.Event()

    def stop(self) -> None:
        """Ask :meth:`serve` to return."""
        self._stop.set()

    def _review(self, plan: Any, digest: str) -> Review:

        if self._reviewer is not None:
            unsigned = self._reviewer(plan, digest)
        else:
            unsigned = make_review(
                plan,
                digest,
                base_url=self.cfg.ai_base_url,
                model=self.cfg.ai_model,
                timeout_s=self.cfg.ai_timeout_s,
                max_tokens=self.cfg.ai_max_tokens,
                api_key=self.api_key,
                reasoning=self.cfg.ai_reasoning,
                observe=self._observe,
            )
        return sign_review(unsigned, self.key)

    def _observe(self, result: Any) -> None:
        # What the answering request carried, for the journal (the record keeps the answer).
        if result.status == "ok":
            controls = ", ".join(result.reasoning) or "none"
            _log(
                f"model answered with response_format {result.response_format}; "
                f"reasoning controls {controls}"
            )

    def answer(self, request: Any) -> dict[str, Any]:
        """The answer to one parsed request (never raises for bad input)."""
        try:
            if not isinstance(request, dict) or request.get("schema_version") != REQUEST_SCHEMA:
                raise InputError(f"not a review request (schema_version {REQUEST_SCHEMA!r})")
            op = request.get("op")
            if op == "ping" and set(request) == {"schema_version", "op"}:
                return {
                    "ok": True,
                    "public_key_hex": self.public_key_hex,
                    "model": self.cfg.ai_model,
                }
            if op != "review" or set(request) != {"schema_version", "op", "plan"}:
                raise InputError("unknown request (ops: review, ping)")
            plan = plan_from_dict(request["plan"])
            digest = plan_hash(plan)
            started = time.monotonic()
            review = self._review(plan, digest)
            _log(
                f"reviewed plan {plan.plan_id}: {review.status.value} "
                f"({int((time.monotonic() - started) * 1000)} ms)"
            )
            return {"ok": True, "review": review_to_dict(review)}
        except AegisError as e:
            return {"ok": False, "error": e.message[:400]}

    def handle(self, conn: socket.socket) -> None:
        """Serve one connection: read one frame, answer, close."""
        try:
            try:
                request = read_frame(
                    conn, deadline=time.monotonic() + READ_TIMEOUT_S, max_bytes=MAX_REQUEST_BYTES
                )
                answer = self.answer(request)
            except AegisError as e:
                answer = {"ok": False, "error": e.message[:400]}
            except Exception as e:  # a bug must not kill the thread silently
                _log(f"internal error: {type(e).__name__}: {e}")
                answer = {"ok": False, "error": "internal error in aegis-reviewd"}
            conn.settimeout(SEND_TIMEOUT_S)
            conn.sendall(encode_frame(answer, max_bytes=MAX_ANSWER_BYTES))
        except (OSError, AegisError) as e:
            _log(f"client dropped: {e}")
        finally:
            conn.close()
            self._slots.release()

    def serve(self, listener: socket.socket) -> None:
        """Accept clients until :meth:`stop`; one thread per client."""
        listener.settimeout(0.2)
        while not self._stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError as e:
                _log(f"accept failed: {e}")
                time.sleep(0.1)
                continue
            if not self._slots.acquire(blocking=False):
                try:
                    conn.settimeout(1.0)
                    conn.sendall(
                        encode_frame(
                            {"ok": False, "error": "busy; retry"}, max_bytes=MAX_ANSWER_BYTES
                        )
                    )
                except OSError:
                    pass
                conn.close()
                continue
            threading.Thread(target=self.handle, args=(conn,), daemon=True).start()


def systemd_socket(env: dict[str, str] | None = None) -> socket.socket | None:
    """The listening socket systemd passed (``LISTEN_FDS``), if any, for this process."""
    env = dict(os.environ) if env is None else env
    if env.get("LISTEN_PID") != str(os.getpid()) or int(env.get("LISTEN_FDS", "0") or 0) < 1:
        return None
    for var in ("LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"):
        os.environ.pop(var, None)
    return socket.socket(fileno=SD_LISTEN_FDS_START)


def bind_socket(path: Path) -> socket.socket:
    """Create a listening Unix socket at ``path`` (mode 0660; a stale socket is replaced).

    Raises:
        InputError: something other than a socket is at ``path``.
        EnvironmentFailure: the socket cannot be created (path too long, permissions).
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    return listen_at(path, 0o660)


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``aegis-reviewd``."""
    parser = argparse.ArgumentParser(
        prog="aegis-reviewd",
        description="Aegis review daemon: signs advisory model reviews of plans.",
        epilog=daemon_epilog(
            "aegis-reviewd",
            "Example: aegis-reviewd --socket /run/aegis/aegis-reviewd.sock",
            EXITS,
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--socket", type=Path, help="socket path (default: from config)")
    args = parser.parse_args(argv)
    try:
        cfg = load_config()
        key = load_review_key(cfg)
        listener = systemd_socket() or bind_socket(args.socket or cfg.reviewd_socket)
    except AegisError as e:
        sys.stderr.write(f"Error: {e.diagnostics()}\n")
        return e.exit_code
    daemon = ReviewDaemon(cfg, key, api_key=os.environ.get(API_KEY_ENV))
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: daemon.stop())
    _log(f"listening; key {daemon.public_key_hex}; model {cfg.ai_model or '(none: skipping)'}")
    daemon.serve(listener)
    listener.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
