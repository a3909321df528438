"""Run health probes (aegisd, after a change): each bounded by its timeout, none by a shell.

A command probe runs as its named user with that user's groups dropped to its primary
group, an empty environment but ``PATH``, ``/`` as working directory and no stdin; uid 0
is refused even when the name is not ``root``. Network probes connect only to the
literal loopback address the signed probe names (aegis/health/spec.py checked it when
the plan was parsed, and checks it again here).

Example:
    >>> [r.ok for r in run_probes(verification.probes)]
    [True, False]
"""

from __future__ import annotations

import http.client
import pwd
import socket
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass

from aegis.errors import InputError
from aegis.health.spec import Probe, check_probe, split_address, split_url

SYSTEMCTL = "/usr/bin/systemctl"
_SAFE_PATH = "/usr/sbin:/usr/bin:/sbin:/bin"


@dataclass(frozen=True)
class ProbeResult:
    """One probe's outcome, for the audit event."""

    probe: str
    ok: bool
    detail: str
    duration_ms: int

    def as_dict(self) -> dict[str, object]:
        """The audit event's form."""
        return {
            "probe": self.probe,
            "ok": self.ok,
            "detail": self.detail,
            "duration_ms": self.duration_ms,
        }


def _unit(p: Probe) -> tuple[bool, str]:
    proc = subprocess.run(
        [SYSTEMCTL, "is-active", "--", p.target],
        capture_output=True,
        text=True,
        timeout=p.timeout_s,
        check=False,
        env={"PATH": _SAFE_PATH},
    )
    state = proc.stdout.strip()[:40] or f"exit {proc.returncode}"
    return proc.returncode == 0, f"unit {state}"


def _tcp(p: Probe) -> tuple[bool, str]:
    host, port = split_address(p.target, "tcp probe")
    with socket.create_connection((host, port), timeout=p.timeout_s):
        return True, "connected"


def _http(p: Probe) -> tuple[bool, str]:
    host, port, path = split_url(p.target, "http probe")
    conn = http.client.HTTPConnection(host, port, timeout=p.timeout_s)
    try:
        conn.request("GET", path, headers={"User-Agent": "aegisd-probe", "Connection": "close"})
        resp = conn.getresponse()
        resp.read(65536)
        status = resp.status
    finally:
        conn.close()
    return status == p.status, f"HTTP {status}"


def _command(p: Probe) -> tuple[bool, str]:
    assert p.user is not None
    try:
        pw = pwd.getpwnam(p.user)
    except KeyError:
        return False, f"no user {p.user}"
    if pw.pw_uid == 0 or pw.pw_gid == 0:
        return False, f"user {p.user} is privileged; a probe never runs as root"
    proc = subprocess.run(
        list(p.argv),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        timeout=p.timeout_s,
        check=False,
        cwd="/",
        env={"PATH": _SAFE_PATH, "HOME": "/", "LANG": "C.UTF-8"},
        user=pw.pw_uid,
        group=pw.pw_gid,
        extra_groups=[],
        close_fds=True,
        start_new_session=True,
    )
    return proc.returncode == 0, f"exit {proc.returncode}"


_RUNNERS = {"unit": _unit, "tcp": _tcp, "http": _http, "command": _command}


def run_probe(p: Probe) -> ProbeResult:
    """Run one probe; any error is a failed probe, said in ``detail``."""
    start = time.monotonic()
    try:
        check_probe(p)
        ok, detail = _RUNNERS[p.kind](p)
    except subprocess.TimeoutExpired:
        ok, detail = False, f"timed out after {p.timeout_s} s"
    except (OSError, http.client.HTTPException, InputError, ValueError) as e:
        ok, detail = False, f"{type(e).__name__}: {str(e)[:200]}"
    return ProbeResult(p.text(), ok, detail, int((time.monotonic() - start) * 1000))


def run_probes(probes: Sequence[Probe]) -> list[ProbeResult]:
    """Run every probe in order (all of them, so the audit event shows each)."""
    return [run_probe(p) for p in probes]
