"""Running the go tool for planning: a private, explicit environment, bounded output.

Every planning call runs ``/usr/bin/go`` with an environment built here, never the caller's:
no user configuration (``GOENV=off``), no workspace (``GOWORK=off``), the installed
toolchain only (``GOTOOLCHAIN=local``: a ``toolchain`` line never downloads a Go), ``GOFLAGS``
cleared, one explicit ``GOPROXY`` (no ``direct``: no VCS fetch), a private ``HOME``,
``GOMODCACHE`` and ``GOPATH`` in a scratch directory, no build cache, and the checksum database
pinned (``sum.golang.org`` for an https proxy, ``off`` for a mirror: a signal).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import select
import selectors
import signal
import subprocess
import time
from collections.abc import Callable
from typing import Any

GO = "/usr/bin/go"
ENV = "/usr/bin/env"
GO_TIMEOUT_S = 300.0
MAX_OUTPUT = 16 * 1024 * 1024
ENV_KEYS = ("GOVERSION", "GOPROXY", "GOSUMDB", "GONOSUMDB", "GONOSUMCHECK", "GOPRIVATE",
            "GOINSECURE", "GOFLAGS", "GOTOOLCHAIN", "GOWORK", "GOVCS")  # fmt: skip


def sumdb_for(proxy: str) -> str:
    """The checksum database a plan pins: Go's own behind an https proxy, off for a mirror.

    A ``file://`` or plain-http proxy is a mirror an operator runs; its sums are the mirror's
    own, first seen at planning, so ``off`` is a signal (``go.sumdb-off``) policy decides on.
    """
    return "sum.golang.org" if proxy.startswith("https://") else "off"


def pinned(home: str, modcache: str, gocache: str, gopath: str, proxy: str) -> dict[str, str]:
    """The explicit Go settings of a plan and of aegisd's run (without ``GOFLAGS``)."""
    return {
        "PATH": "/usr/bin:/bin",
        "HOME": home,
        "LANG": "C.UTF-8",
        "GOENV": "off",
        "GOTOOLCHAIN": "local",
        "GOWORK": "off",
        "GOPROXY": proxy,
        "GOSUMDB": sumdb_for(proxy),
        "GONOSUMDB": "",
        "GONOSUMCHECK": "",
        "GOPRIVATE": "",
        "GOINSECURE": "",
        "GOMODCACHE": modcache,
        "GOCACHE": gocache,
        "GOPATH": gopath,
        "CGO_ENABLED": "0",
    }


def planning_env(scratch: str, proxy: str) -> dict[str, str]:
    """The planner's environment: everything private to ``scratch``, ``GOFLAGS`` cleared.

    Planning builds nothing, so it needs no build cache (``GOCACHE=off``): creating and
    removing one (256 directories) cost more than the whole resolution.
    """
    env = pinned(scratch, f"{scratch}/modcache", "off", f"{scratch}/gopath", proxy)
    env["GOFLAGS"] = ""
    return env


_VERSIONS: dict[tuple[int, int, int], str] = {}
_VERSION_RE = re.compile(r"go[0-9][0-9A-Za-z.+-]{0,40}")


def _binary_key() -> tuple[int, int, int] | None:
    try:
        st = os.stat(GO)
    except OSError:
        return None
    return (st.st_ino, st.st_size, st.st_mtime_ns)


def known_version() -> str:
    """``go env GOVERSION`` remembered for this very binary file ("" when not yet asked).

    Per binary file (inode, size, mtime): aegisd plans in one long-lived process, and a
    replaced go is asked again.
    """
    key = _binary_key()
    return _VERSIONS.get(key, "") if key is not None else ""


def remember_version(out: str) -> str:
    """Keep ``go env GOVERSION``'s answer when it is one ("" otherwise)."""
    text = out.strip()
    key = _binary_key()
    if _VERSION_RE.fullmatch(text) is None or key is None:
        return ""
    _VERSIONS[key] = text
    return text


def pinned_env(env: dict[str, str]) -> dict[str, Any]:
    """What ``go env -json ENV_KEYS`` prints under ``env`` (GOVERSION aside).

    Every planning setting is explicit and ``GOENV=off`` (no configuration file), so go
    reports exactly these values; asking it cost a process per plan.
    """
    return {k: env.get(k, "") for k in ENV_KEYS if k != "GOVERSION"}


class GoRun:
    """One go command started at once (so several overlap); :meth:`wait` collects it."""

    def __init__(self, args: list[str], cwd: str, env: dict[str, str]) -> None:
        self.error = ""
        self.proc: subprocess.Popen[bytes] | None = None
        try:
            self.proc = subprocess.Popen(
                [GO, *args], cwd=cwd, env=env, stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True,
            )  # fmt: skip
        except OSError as e:
            self.error = f"go did not run: {e}"

    def wait(self, on_line: Callable[[str], None] | None = None) -> tuple[int, str, str]:
        """(exit status, stdout, stderr tail); the process group is killed on timeout.

        ``on_line`` sees each whole stderr line as go prints it (its progress, such as
        ``go: downloading MOD VERSION``), while go still runs.

        Not ``communicate(timeout=...)``: once the pipes close it polls for the exit with
        growing sleeps, milliseconds a plan spent idle. The pipes are read here (stdout
        capped at MAX_OUTPUT), then the exit is awaited on a pidfd.
        """
        proc = self.proc
        if proc is None:
            return -1, "", self.error
        assert proc.stdout is not None
        assert proc.stderr is not None
        deadline = time.monotonic() + GO_TIMEOUT_S
        out, err, partial = bytearray(), bytearray(), bytearray()
        bufs = {proc.stdout.fileno(): out, proc.stderr.fileno(): err}
        try:
            with selectors.DefaultSelector() as sel:
                for fd in bufs:
                    sel.register(fd, selectors.EVENT_READ)
                while sel.get_map():
                    left = deadline - time.monotonic()
                    if left <= 0:
                        return self._killed()
                    for key, _ in sel.select(left):
                        chunk = os.read(key.fd, 1 << 16)
                        if not chunk:
                            sel.unregister(key.fd)
                        elif key.fd == proc.stdout.fileno():
                            out += chunk[: MAX_OUTPUT - len(out)]
                        else:
                            err += chunk
                            del err[:-8192]
                            if on_line is not None:
                                partial = _lines(partial + chunk, on_line)
            code = self._reap(deadline)
        finally:
            proc.stdout.close()
            proc.stderr.close()
        if code is None:
            return self._killed()
        return code, out.decode("utf-8", "replace"), err.decode("utf-8", "replace")

    def _reap(self, deadline: float) -> int | None:
        """The exit status once go has exited; None past the deadline."""
        assert self.proc is not None
        try:
            fd = os.pidfd_open(self.proc.pid)
        except OSError:
            fd = -1  # reaped already, or no pidfd: wait() below still bounds it
        if fd >= 0:
            try:
                select.select([fd], [], [], max(0.0, deadline - time.monotonic()))
            finally:
                os.close(fd)
        try:
            return self.proc.wait(timeout=max(0.001, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            return None

    def _killed(self) -> tuple[int, str, str]:
        assert self.proc is not None
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait()
        return -1, "", f"go timed out after {GO_TIMEOUT_S} s"


MAX_LINE = 4096


def _lines(data: bytearray, on_line: Callable[[str], None]) -> bytearray:
    """Hand each whole line of ``data`` to ``on_line``; the unfinished rest is returned.

    A line longer than MAX_LINE is dropped whole (its tail is never taken for a line).
    """
    *lines, rest = data.split(b"\n")
    for line in lines:
        if line[:1] != b"\x00":
            on_line(line.decode("utf-8", "replace"))
    if len(rest) > MAX_LINE:
        return bytearray(b"\x00")  # the marker: this line's remainder is skipped
    return bytearray(rest)


def json_stream(text: str) -> list[dict[str, Any]]:
    """The JSON objects go prints one after another (``-json`` of several modules)."""
    decoder = json.JSONDecoder()
    out: list[dict[str, Any]] = []
    i, n = 0, len(text)
    while i < n:
        while i < n and text[i].isspace():
            i += 1
        if i >= n:
            break
        try:
            obj, i = decoder.raw_decode(text, i)
        except ValueError:
            break
        if isinstance(obj, dict):
            out.append(obj)
    return out


def env_signals(goenv: dict[str, Any], proxy: str) -> list[tuple[str, str]]:
    """``(signal, detail)`` for Go settings that weaken verification. Pure.

    The checksum database off or bypassed (``GOSUMDB=off`` beyond the plan's own pin for a
    mirror, ``GONOSUMDB``, ``GONOSUMCHECK``, ``GOPRIVATE``), ``GOINSECURE``, and ``GOFLAGS``
    with ``-insecure`` or ``-mod=mod`` (go may then rewrite go.mod and fetch over http).
    """
    out: list[tuple[str, str]] = []
    sumdb = str(goenv.get("GOSUMDB", ""))
    if sumdb == "off":
        detail = "GOSUMDB=off"
        if sumdb_for(proxy) == "off":
            detail += f": the proxy {proxy} is a mirror, its sums are first seen at planning"
        out.append(("go.sumdb-off", detail))
    for key in ("GONOSUMDB", "GONOSUMCHECK", "GOPRIVATE"):
        if str(goenv.get(key, "")):
            out.append(("go.sumdb-bypassed", f"{key}={str(goenv[key])[:200]}"))
    if str(goenv.get("GOINSECURE", "")):
        out.append(("go.insecure", f"GOINSECURE={str(goenv['GOINSECURE'])[:200]}"))
    flags = str(goenv.get("GOFLAGS", "")).split()
    for flag in flags:
        if flag.startswith("-insecure") or flag in ("-mod=mod", "--mod=mod"):
            out.append(("go.goflags", f"GOFLAGS has {flag[:80]}"))
    return out
