"""``aegis doctor``: read-only health checks of a host (or an AEGIS_HOME) install.

Each check returns a :class:`Check` with status ``ok``, ``warn`` or ``fail``; nothing is
created, repaired or written. Checks: configuration, state store, directories and their
modes, keys and policy present, sockets reachable, audit log verifies, tools present.
Modes and owners are enforced only on a host install (``AEGIS_HOME`` unset): a test or
demo home has no ``aegis`` group.

Example:
    >>> checks = run_checks(load_config())
    >>> [c.name for c in checks if c.status == "fail"]
"""

from __future__ import annotations

import grp
import os
import shutil
import socket
import sqlite3
import stat
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from aegis.config import Config

Status = Literal["ok", "warn", "fail"]
TOOLS = ("apt-get", "dpkg", "gpgv", "dpkg-repack")
TOOL_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
SOCKET_TIMEOUT_S = 1.0


@dataclass(frozen=True)
class Check:
    """One doctor finding."""

    name: str
    status: Status
    detail: str


def _mode_check(name: str, path: Path, mode: int, group: str | None, *, host: bool) -> Check:
    try:
        st = path.stat()
    except FileNotFoundError:
        return Check(name, "fail", f"{path} is missing (run packaging/install-native.sh)")
    except OSError as e:
        return Check(name, "warn", f"{path}: {e.strerror}")
    if not stat.S_ISDIR(st.st_mode):
        return Check(name, "fail", f"{path} is not a directory")
    got = stat.S_IMODE(st.st_mode)
    if not host:
        return Check(name, "ok", f"{path} ({got:04o}; modes enforced on host installs only)")
    problems = []
    if got != mode:
        problems.append(f"mode {got:04o}, expected {mode:04o}")
    if st.st_uid != 0:
        problems.append(f"owner uid {st.st_uid}, expected root")
    if group is not None:
        try:
            gid = grp.getgrnam(group).gr_gid
        except KeyError:
            problems.append(f"group {group} does not exist")
        else:
            if st.st_gid != gid:
                problems.append(f"group gid {st.st_gid}, expected {group}")
    if problems:
        return Check(name, "fail", f"{path}: {'; '.join(problems)}")
    return Check(name, "ok", f"{path} {mode:04o} root:{group or 'root'}")


def _store_check(cfg: Config) -> Check:
    path = cfg.store_path
    if not path.exists():
        return Check("store", "warn", f"{path} does not exist yet (created by the first plan)")
    try:
        con = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=2)
        try:
            row = con.execute("PRAGMA quick_check").fetchone()
            tables = con.execute("SELECT count(*) FROM sqlite_master WHERE type='table'").fetchone()
        finally:
            con.close()
    except sqlite3.Error as e:
        return Check("store", "fail", f"{path}: {e}")
    if not row or row[0] != "ok":
        return Check("store", "fail", f"{path}: quick_check says {row[0] if row else 'nothing'}")
    return Check("store", "ok", f"{path} ({tables[0]} tables, quick_check ok)")


def _socket_check(name: str, path: Path) -> Check:
    if not path.exists():
        return Check(name, "fail", f"{path} does not exist (is the .socket unit running?)")
    try:
        if not stat.S_ISSOCK(path.stat().st_mode):
            return Check(name, "fail", f"{path} is not a socket")
    except OSError as e:
        return Check(name, "warn", f"{path}: {e.strerror}")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(SOCKET_TIMEOUT_S)
    try:
        sock.connect(str(path))
    except PermissionError:
        return Check(name, "warn", f"{path} exists; this user may not connect (group membership)")
    except OSError as e:
        return Check(name, "fail", f"{path}: cannot connect: {e.strerror or e}")
    finally:
        sock.close()
    return Check(name, "ok", f"{path} accepts connections")


def _keys_check(cfg: Config) -> list[Check]:
    from aegis.audit.verify import default_public_key_path, read_public_key_hex

    out = []
    audit_pub = default_public_key_path(cfg.keys_dir)
    if read_public_key_hex(audit_pub):
        out.append(Check("audit key", "ok", f"{audit_pub}"))
    else:
        out.append(
            Check(
                "audit key",
                "fail",
                f"{audit_pub} is missing: audit checkpoints "
                "cannot be verified (aegisd publishes it when it first starts)",
            )
        )
    review = [cfg.keys_dir / "review.pub", cfg.keys_dir / "review.key"]
    if any(p.exists() for p in review):
        out.append(Check("review key", "ok", f"{cfg.keys_dir}/review.*"))
    else:
        out.append(
            Check(
                "review key",
                "warn",
                f"no review key in {cfg.keys_dir}: reviews "
                f"cannot be signed (aegisctl keygen --role review --out {cfg.keys_dir})",
            )
        )
    if cfg.policy_path.is_file():
        out.append(Check("policy", "ok", str(cfg.policy_path)))
    else:
        out.append(Check("policy", "fail", f"{cfg.policy_path} is missing (aegis policy init)"))
    return out


def _audit_check(cfg: Config) -> Check:
    from aegis.audit.verify import default_public_key_path, read_public_key_hex, verify
    from aegis.errors import InputError
    from aegis.execute.settings import configured_witness_file

    path = cfg.audit_path
    if not path.exists():
        return Check("audit log", "warn", f"{path} does not exist yet (aegisd writes it)")
    key = read_public_key_hex(default_public_key_path(cfg.keys_dir))
    witness = configured_witness_file(cfg)  # the one aegisd writes
    usable = witness if witness and witness.is_file() and os.access(witness, os.R_OK) else None
    try:
        report = verify(path, audit_public_key_hex=key, witness=usable)
    except InputError as e:
        return Check("audit log", "fail", e.message)
    if not report.ok:
        first = report.problems[0]
        return Check(
            "audit log",
            "fail",
            f"{len(report.problems)} problem(s); first at "
            f"{first.file} line {first.line}: {first.kind} (aegis audit verify)",
        )
    note = "" if key else " (signatures not checked: no audit.pub)"
    return Check(
        "audit log",
        "ok" if key else "warn",
        f"{report.events} events verify, head seq {report.head_seq}{note}",
    )


def _standing_check(cfg: Config) -> Check:
    """Requests waiting for a human or a key whose decision no longer re-verifies.

    Only the states a person acts on (aegis.standing.CHECKED_STATES) are read, so the
    check stays cheap on a store with many finished requests.
    """
    from aegis import api
    from aegis.errors import AegisError
    from aegis.standing import CHECKED_STATES
    from aegis.workflow.records import CorruptStoreError

    if not cfg.store_path.exists():
        return Check("requests", "ok", "no store yet")
    corrupt: list[CorruptStoreError] = []
    try:
        listed = sum(
            len(api.list_requests(cfg, state=s, corrupt=corrupt)) for s in sorted(CHECKED_STATES)
        )
    except AegisError as e:
        return Check("requests", "fail", e.message)
    if corrupt:
        first = corrupt[0].message
        return Check("requests", "fail", f"{len(corrupt)} request(s) fail their checks: {first}")
    return Check(
        "requests", "ok", f"{listed} awaiting approval or apply; every decision re-verifies"
    )


def run_checks(cfg: Config, *, which: Callable[[str], str | None] | None = None) -> list[Check]:
    """Run every read-only check and return the findings in a fixed order."""
    find = which or (lambda tool: shutil.which(tool, path=TOOL_PATH))
    host = cfg.home is None
    checks = [Check("config", "ok", f"etc {cfg.etc_dir}, state {cfg.state_dir}")]
    checks.append(_store_check(cfg))
    checks.append(_standing_check(cfg))
    checks.append(_mode_check("state dir", cfg.state_dir, 0o2770, "aegis", host=host))
    checks.append(_mode_check("aegisd dir", cfg.aegisd_dir, 0o700, None, host=host))
    checks.append(_mode_check("log dir", cfg.log_dir, 0o750, "aegis", host=host))
    checks.extend(_keys_check(cfg))
    checks.append(_socket_check("aegisd socket", cfg.aegisd_socket))
    checks.append(_socket_check("aegis-reviewd socket", cfg.reviewd_socket))
    checks.append(_audit_check(cfg))
    for tool in TOOLS:
        found = find(tool)
        checks.append(Check(f"tool {tool}", "ok" if found else "fail", found or "not found"))
    return checks
