"""``aegis doctor``: read-only health checks of a host (or an AEGIS_HOME) install.

Each check returns a :class:`Check` with status ``ok``, ``warn`` or ``fail``; nothing is
created, repaired or written. Checks: configuration, state store, directories and their
modes, keys and policy present, sockets reachable, audit log verifies, tools present.
Modes and owners are enforced only on a host install (``AEGIS_HOME`` unset): a test or
demo home has no ``aegis`` group. A check this user may not make (a directory only the
group may enter) is a failure that says so, never a crash; a user outside the group is
told to join it. A wrong mode or group comes with the command that fixes it.

Example:
    >>> checks = run_checks(load_config())
    >>> [c.name for c in checks if c.status == "fail"]
"""

from __future__ import annotations

import os
import shutil
import socket
import sqlite3
import stat
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from aegis.config import Config, group_gid, group_name, in_group, join_group_hint
from aegis.workflow.files import STORE_SIDE_SUFFIXES

Status = Literal["ok", "warn", "fail"]
TOOLS = ("apt-get", "dpkg", "dpkg-repack")
TOOL_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
SOCKET_TIMEOUT_S = 1.0
QUICK_CHECK_BUDGET_S = 0.15
GROUP_RW = stat.S_IRGRP | stat.S_IWGRP


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
        return _cannot_inspect(name, path, e)
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
        gid = group_gid()  # ``group`` is always this install's group_name()
        if gid is None:
            problems.append(f"group {group} does not exist")
        elif st.st_gid != gid:
            problems.append(f"group gid {st.st_gid}, expected {group}")
    if problems:
        fix = f"chown root:{group or 'root'} {path} && chmod {mode:04o} {path}"
        return Check(name, "fail", f"{path}: {'; '.join(problems)} (fix: {fix})")
    return Check(name, "ok", f"{path} {mode:04o} root:{group or 'root'}")


def _cannot_inspect(name: str, path: Path, e: OSError) -> Check:
    hint = "" if in_group(group_gid()) else f" ({join_group_hint()})"
    return Check(name, "fail", f"cannot inspect {path}: {e.strerror or e}{hint}")


def _membership_check() -> Check:
    name = group_name()
    gid = group_gid()
    if gid is None:
        return Check("group", "fail", f"group {name} does not exist (run install-native.sh)")
    if os.geteuid() == 0:
        return Check("group", "ok", f"root (group {name} is gid {gid})")
    if in_group(gid):
        return Check("group", "ok", f"uid {os.geteuid()} is in group {name}")
    return Check("group", "fail", join_group_hint())


def _store_modes(cfg: Config) -> Check | None:
    """The store and its side files: 0660, group aegis, owner root (host installs)."""
    gid = group_gid()
    problems: list[str] = []
    names = [cfg.store_path.name + s for s in ("", *STORE_SIDE_SUFFIXES)]
    for name in names:
        path = cfg.store_path.with_name(name)
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            continue
        except OSError as e:
            return _cannot_inspect("store", path, e)
        got = stat.S_IMODE(st.st_mode)
        if not stat.S_ISREG(st.st_mode):
            problems.append(f"{name} is not a regular file")
            continue
        if got & GROUP_RW != GROUP_RW or got & stat.S_IRWXO:
            problems.append(f"{name} mode {got:04o}, expected 0660")
        if gid is not None and st.st_gid != gid:
            problems.append(f"{name} group gid {st.st_gid}, expected {group_name()}")
        if st.st_uid != 0:
            problems.append(f"{name} owner uid {st.st_uid}, expected root")
    if not problems:
        return None
    files = " ".join(str(cfg.store_path.with_name(n)) for n in names[:1]) + "*"
    fix = f"chown root:{group_name()} {files} && chmod 0660 {files}"
    return Check(
        "store",
        "fail",
        f"group {group_name()} cannot write the store: {'; '.join(problems)} (fix: {fix})",
    )


def _store_check(cfg: Config, *, host: bool) -> Check:
    path = cfg.store_path
    try:
        os.stat(path)
    except FileNotFoundError:
        return Check("store", "warn", f"{path} does not exist yet (created by the first plan)")
    except OSError as e:
        return _cannot_inspect("store", path, e)
    if host:
        bad = _store_modes(cfg)
        if bad is not None:
            return bad
    try:
        con = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=2)
        try:
            tables = con.execute("SELECT count(*) FROM sqlite_master WHERE type='table'").fetchone()
            row = _bounded_quick_check(con)
        finally:
            con.close()
    except sqlite3.Error as e:
        return Check("store", "fail", f"{path}: {e}")
    where = f"0660 root:{group_name()}, " if host else ""
    if row is None:
        return Check(
            "store",
            "ok",
            f"{path} ({where}{tables[0]} tables; quick_check did not finish within "
            f"{QUICK_CHECK_BUDGET_S} s: run sqlite3 {path} 'PRAGMA quick_check' for all of it)",
        )
    if row != "ok":
        return Check("store", "fail", f"{path}: quick_check says {row}")
    return Check("store", "ok", f"{path} ({where}{tables[0]} tables, quick_check ok)")


def _bounded_quick_check(con: sqlite3.Connection) -> str | None:
    """``PRAGMA quick_check``'s first line, or None when it ran past its time budget.

    quick_check reads every page: on a store of 100,000 requests that alone would spend
    doctor's whole second. Interrupted past the budget, it says so instead of "ok".
    """
    deadline = time.monotonic() + QUICK_CHECK_BUDGET_S
    con.set_progress_handler(lambda: int(time.monotonic() > deadline), 10_000)
    try:
        found = con.execute("PRAGMA quick_check").fetchone()
    except sqlite3.OperationalError as e:
        if "interrupt" in str(e):
            return None
        raise
    return str(found[0]) if found else "nothing"


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
    from aegis.audit.witness import apply_witness_choice, host_witness
    from aegis.errors import InputError

    path = cfg.audit_path
    try:
        os.stat(path)
    except FileNotFoundError:
        return Check("audit log", "warn", f"{path} does not exist yet (aegisd writes it)")
    except OSError as e:
        return _cannot_inspect("audit log", path, e)
    key = read_public_key_hex(default_public_key_path(cfg.keys_dir))
    choice = host_witness(cfg)  # the one aegisd writes
    try:
        report = verify(path, audit_public_key_hex=key, witness=choice.readable)
    except InputError as e:
        return Check("audit log", "fail", e.message)
    unchecked = apply_witness_choice(report, choice)
    if not report.ok:
        first = report.problems[0]
        return Check(
            "audit log",
            "fail",
            f"{len(report.problems)} problem(s); first at "
            f"{first.file} line {first.line}: {first.kind} (aegis audit verify)",
        )
    if unchecked:
        return Check(
            "audit log",
            "fail",
            f"{report.events} events verify, but the witness {choice.path} cannot be read "
            f"({choice.reason}): the tail is unchecked (aegis audit verify)",
        )
    note = "" if key else " (signatures not checked: no audit.pub)"
    return Check(
        "audit log",
        "ok" if key else "warn",
        f"{report.events} events verify, head seq {report.head_seq}{note}",
    )


def _probe_check(cfg: Config) -> Check:
    """The last ``aegis review --probe`` result: whether reviews from the model count."""
    from aegis.canonical import loads_strict
    from aegis.errors import AegisError
    from aegis.review.probe import probe_path
    from aegis.safe_read import read_capped

    path = probe_path(cfg)
    if not path.exists():
        return Check("review probe", "warn", "never probed (run: aegis review --probe)")
    try:
        doc = loads_strict(read_capped(path, 64 * 1024, "probe result"), max_bytes=64 * 1024)
    except AegisError as e:
        return Check("review probe", "warn", f"{path}: {e.message}")
    if not isinstance(doc, dict):
        return Check("review probe", "warn", f"{path} is not a probe result")
    when, detail = str(doc.get("probed_at", "?"))[:20], str(doc.get("detail", ""))[:200]
    fmt = str(doc.get("response_format", "-"))[:20]
    raw = doc.get("reasoning")
    controls = ", ".join(str(c)[:40] for c in raw[:4]) if isinstance(raw, list) else ""
    text = f"{when}: {detail} (response_format {fmt}; reasoning {controls or '-'})"
    if doc.get("ok") is True:
        return Check("review probe", "ok", text)
    return Check("review probe", "warn", text)


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


def _verifying_check(cfg: Config) -> Check:
    """Changes aegisd holds to their health probes, and restores that did not finish.

    ``verifying`` is normal until its deadline (aegisd keeps or restores it by itself);
    a request left ``rolling_back`` or ``rollback_failed`` needs an operator at dpkg.
    """
    from aegis import api
    from aegis.errors import AegisError

    if not cfg.store_path.exists():
        return Check("verifications", "ok", "no store yet")
    try:
        found = {
            s: [r.id for r in api.list_requests(cfg, state=s)]
            for s in ("verifying", "rolling_back", "rollback_failed")
        }
    except AegisError as e:
        return Check("verifications", "fail", e.message)
    shown = "; ".join(f"{s}: {', '.join(ids[:5])}" for s, ids in found.items() if ids)
    shown += _last_probes(cfg, [(i, st) for st, ids in found.items() for i in ids[:5]])
    if found["rollback_failed"]:
        return Check(
            "verifications",
            "fail",
            f"{shown} (a restore failed: check 'dpkg --audit', then 'aegisctl recover --plan' "
            "or 'aegisctl rollback')",
        )
    if found["rolling_back"]:
        return Check("verifications", "warn", f"{shown} (aegisd is restoring; aegis resume)")
    if found["verifying"]:
        return Check("verifications", "ok", f"{shown} (health probes until their deadline)")
    return Check("verifications", "ok", "no change is being verified")


def _last_probes(cfg: Config, requests: list[tuple[str, str]]) -> str:
    """The probes aegisd last ran for these requests (kept across its restarts), or ""."""
    from aegis.execute.verify_status import probe_lines, request_verification

    said = []
    for rid, state in requests:
        v = request_verification(cfg, rid, state)
        if v is not None and v.get("probes"):
            said.append(f"{rid}: {', '.join(probe_lines(v))}")
    return f" [last probes: {'; '.join(said)}]" if said else ""


def _status_check(cfg: Config) -> Check:
    """The status aegisd publishes for the monitor: present, aegisd's own, parseable."""
    from aegis.canonical import loads_strict
    from aegis.errors import AegisError
    from aegis.execute.status_file import MAX_STATUS_BYTES, SCHEMA, read_trusted, status_path

    path = status_path(cfg)
    try:
        os.stat(path)
    except FileNotFoundError:
        return Check("aegisd status", "warn", f"{path} does not exist yet (aegisd writes it)")
    except OSError as e:
        return _cannot_inspect("aegisd status", path, e)
    try:
        doc = loads_strict(read_trusted(path), max_bytes=MAX_STATUS_BYTES)
    except AegisError as e:
        return Check("aegisd status", "fail", f"{e.message} (the monitor cannot use it)")
    if not isinstance(doc, dict) or doc.get("schema_version") != SCHEMA:
        return Check("aegisd status", "fail", f"{path} is not aegisd's status")
    executions = doc.get("executions")
    listed = len(executions) if isinstance(executions, dict) else 0
    return Check("aegisd status", "ok", f"{path} ({listed} executions, {doc.get('written_at')})")


def _unattended_checks(cfg: Config) -> list[Check]:
    """Report apt's unattended-upgrades beside Aegis (a bypass), a reboot, the last pass."""
    from aegis.unattended.health import unattended_upgrades_active
    from aegis.unattended.run import read_last_run, reboot_state

    out = []
    active, why = unattended_upgrades_active(cfg)
    out.append(
        Check(
            "unattended-upgrades",
            "warn" if active else "ok",
            f"apt's unattended-upgrades upgrades packages outside Aegis ({why}); switch to "
            "aegis-unattended.timer (operator guide, automatic upgrades)"
            if active
            else why,
        )
    )
    needed, pkgs = reboot_state(cfg)
    if needed:
        out.append(
            Check("reboot", "warn", f"reboot required by {', '.join(pkgs[:10]) or 'unnamed'}")
        )
    last = read_last_run(cfg)
    if last is not None:
        status = str(last.get("status"))
        text = f"last pass {last.get('finished_at')}: {status}"
        if status == "waiting":
            text += f" (request {last.get('request_id')} waits for a human)"
        out.append(
            Check("automatic upgrades", "warn" if status in ("waiting", "denied") else "ok", text)
        )
    return out


def _out_of_band_check(cfg: Config) -> Check:
    """Package changes that bypassed aegisd: pending, or recorded in the last week."""
    from datetime import UTC, datetime, timedelta

    from aegis.oob.monitor import check

    name = "out-of-band changes"
    report = check(cfg, record=False)
    if report.status == "no-baseline":
        return Check(name, "warn", report.detail)
    if report.status == "pending":
        return Check(
            name,
            "warn",
            f"{len(report.pending)} change(s) bypassed aegisd, not yet recorded "
            "(aegis drift; the next monitor pass records them)",
        )
    from aegis.oob.baseline import read_baseline

    baseline = read_baseline(cfg)
    last = baseline.last_finding_at if baseline else None
    week = (datetime.now(UTC) - timedelta(days=7)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    total = sum(report.counts.values())
    if last is not None and last >= week:
        return Check(name, "warn", f"recorded in the last 7 days, last at {last} (aegis drift)")
    return Check(name, "ok", f"none pending; {total} recorded in all")


def _guarded(name: str, check: Callable[[], Check]) -> Check:
    """Run one check; a refused ``stat`` or ``open`` is a finding, never a crash."""
    try:
        return check()
    except OSError as e:
        path = Path(e.filename) if e.filename else Path("?")
        return _cannot_inspect(name, path, e)


def run_checks(cfg: Config, *, which: Callable[[str], str | None] | None = None) -> list[Check]:
    """Run every read-only check and return the findings in a fixed order."""
    find = which or (lambda tool: shutil.which(tool, path=TOOL_PATH))
    host = cfg.home is None
    checks = [Check("config", "ok", f"etc {cfg.etc_dir}, state {cfg.state_dir}")]
    if host:
        checks.append(_membership_check())
    store = _guarded("store", lambda: _store_check(cfg, host=host))
    checks.append(store)
    # Reading requests opens the store like any command (which may repair its modes):
    # only on a store that checked ok, so doctor stays read-only.
    checks.append(
        _guarded("requests", lambda: _standing_check(cfg))
        if store.status == "ok"
        else Check("requests", "warn", "not read: the store check did not pass")
    )
    if store.status == "ok":
        checks.append(_guarded("verifications", lambda: _verifying_check(cfg)))
    checks.append(_guarded("review probe", lambda: _probe_check(cfg)))
    group = group_name()
    from aegis.workflow.files import STATE_DIR_MODE

    checks.append(_mode_check("state dir", cfg.state_dir, STATE_DIR_MODE, group, host=host))
    checks.append(_mode_check("aegisd dir", cfg.aegisd_dir, 0o700, None, host=host))
    checks.append(_mode_check("log dir", cfg.log_dir, 0o750, group, host=host))
    try:
        checks.extend(_keys_check(cfg))
    except OSError as e:
        checks.append(_cannot_inspect("keys", cfg.keys_dir, e))
    checks.append(
        _guarded("aegisd socket", lambda: _socket_check("aegisd socket", cfg.aegisd_socket))
    )
    checks.append(
        _guarded(
            "aegis-reviewd socket",
            lambda: _socket_check("aegis-reviewd socket", cfg.reviewd_socket),
        )
    )
    checks.append(_guarded("audit log", lambda: _audit_check(cfg)))
    checks.append(_guarded("aegisd status", lambda: _status_check(cfg)))
    checks.append(_guarded("out-of-band changes", lambda: _out_of_band_check(cfg)))
    checks.extend(_unattended_checks(cfg))
    for tool in TOOLS:
        found = find(tool)
        checks.append(Check(f"tool {tool}", "ok" if found else "fail", found or "not found"))
    checks.append(_verifier_check(cfg))
    return checks


def _verifier_check(cfg: Config) -> Check:
    """The Release signature verifier and policy this host's apt uses (and so Aegis)."""
    from aegis.ecosystems.apt.evidence.sources import resolve_apt_paths
    from aegis.ecosystems.apt.evidence.verifier import choose_verifier
    from aegis.ecosystems.apt.parse import parse_apt_config_dump
    from aegis.ecosystems.apt.run import run_tool

    dump = run_tool(["/usr/bin/apt-config", "dump"], apt_config=cfg.apt_config, timeout_s=30.0)
    if not dump.ok:
        return Check("signature verifier", "fail", f"apt-config dump failed: {dump.stderr[:200]}")
    verifier = choose_verifier(resolve_apt_paths(parse_apt_config_dump(dump.stdout)))
    if not Path(verifier.path).is_file():
        return Check("signature verifier", "fail", f"{verifier.describe()}: not installed")
    return Check("signature verifier", "ok", verifier.describe())
