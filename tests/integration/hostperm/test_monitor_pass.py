"""``aegis monitor``: an unreachable reviewer is reported, not a failed pass; its metrics;
and it never chmods a directory that is already right (the unit's RestrictSUIDSGID=yes).
"""

from __future__ import annotations

import json
import os
import re
import sqlite3
import stat
from contextlib import closing
from pathlib import Path

from click.testing import CliRunner

from aegis import api
from aegis.cli.aegis import cli
from aegis.config import load_config
from aegis.devtools.sample_plans import sample_plan

from .conftest import MEMBER, Host


def _metric(text: str, name: str) -> float:
    match = re.search(rf"^{name} (\S+)$", text, re.M)
    assert match, f"{name} missing from\n{text}"
    return float(match.group(1))


def test_unreachable_reviewer_is_a_reported_condition_and_the_pass_exits_0(
    aegis_home: Path,
) -> None:
    cfg = load_config()
    rid = api.submit_plan(cfg, sample_plan("p-mon"), "agent").request_id
    assert api.get_request(cfg, rid).state == "analyzed"
    result = CliRunner().invoke(cli, ["monitor", "--json"])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert doc["ok"] is True
    assert doc["reviewer"]["status"] == "unreachable"
    assert "aegis-reviewd is not reachable" in doc["reviewer"]["detail"]
    assert doc["items"] == []  # waiting for review: counted, not listed
    assert doc["counts"] == {"reviewer-unreachable": 1}
    assert "1 request(s) wait for review" in result.stderr  # the journal's line
    assert api.get_request(cfg, rid).state == "analyzed"  # nothing recorded, no lease left
    assert api.get_request(cfg, rid).lease_owner is None
    text = Path(doc["metrics_path"]).read_text()
    assert _metric(text, "aegis_reviewer_up") == 0
    assert _metric(text, "aegis_monitor_pass_ok") == 1
    assert _metric(text, "aegis_monitor_pass_duration_seconds") >= 0
    assert _metric(text, "aegis_monitor_last_success_timestamp_seconds") > 1.7e9
    assert 'aegis_requests{state="analyzed"} 1' in text


def test_resume_alone_also_skips_instead_of_failing(aegis_home: Path) -> None:
    cfg = load_config()
    api.submit_plan(cfg, sample_plan("p-res"), "agent")
    result = CliRunner().invoke(cli, ["resume", "--json"])
    assert result.exit_code == 0, result.output
    (item,) = json.loads(result.stdout)["items"]
    assert item["condition"] == "reviewer-unreachable"


def test_a_failed_pass_keeps_the_last_success_time(aegis_home: Path) -> None:
    cfg = load_config()
    rid = api.submit_plan(cfg, sample_plan("p-ok"), "agent").request_id
    first = CliRunner().invoke(cli, ["monitor", "--json"])
    assert first.exit_code == 0
    path = Path(json.loads(first.stdout)["metrics_path"])
    before = _metric(path.read_text(), "aegis_monitor_last_success_timestamp_seconds")
    # A row edited behind the store's back, in a state the pass reads (reviewed: the
    # policy step is next): that step fails, so the pass fails.
    api.advance(cfg, rid, "review", "agent", artifact_kind="review", artifact=b"review")
    with closing(sqlite3.connect(cfg.store_path, isolation_level=None)) as con:
        con.execute("UPDATE requests SET summary = 'edited' WHERE id = ?", (rid,))
    second = CliRunner().invoke(cli, ["monitor", "--json"])
    assert second.exit_code == 4
    text = path.read_text()
    assert _metric(text, "aegis_monitor_pass_ok") == 0
    assert _metric(text, "aegis_monitor_last_success_timestamp_seconds") == before


# Emulates systemd's RestrictSUIDSGID=yes (a seccomp filter): any chmod that sets the
# setuid or setgid bit fails with EPERM, even when the bit is already set.
RESTRICT_SUIDSGID = (
    "import os, stat, sys\n"
    "def hook(event, args):\n"
    "    if event == 'os.chmod' and args[1] & (stat.S_ISUID | stat.S_ISGID):\n"
    "        raise PermissionError(1, 'Operation not permitted (RestrictSUIDSGID)')\n"
    "sys.addaudithook(hook)\n"
    "sys.argv = ['aegis', 'monitor', '--json']\n"
    "from aegis.cli.aegis import main\n"
    "main()\n"
)


def _monitor_as_service(host: Host) -> dict[str, object]:
    # The unit: User=aegis-monitor, Group=aegis, UMask=0007.
    proc = host.run_as(
        MEMBER, gid=host.gid, umask=0o007, python=("-c", RESTRICT_SUIDSGID), timeout=120
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    doc: dict[str, object] = json.loads(proc.stdout)
    return doc


def test_monitor_service_creates_metrics_without_a_setgid_chmod(host: Host) -> None:
    doc = _monitor_as_service(host)
    metrics = host.state / "metrics"
    st = os.stat(metrics)
    assert stat.S_IMODE(st.st_mode) == 0o2770  # inherited from the setgid store dir
    assert st.st_gid == host.gid
    assert Path(str(doc["metrics_path"])).is_file()
    # Again, with the directory already there (the next timer run).
    _monitor_as_service(host)


def test_monitor_service_leaves_an_installed_metrics_dir_alone(host: Host) -> None:
    metrics = host.state / "metrics"
    metrics.mkdir()
    os.chown(metrics, 0, host.gid)
    metrics.chmod(0o2770)  # as systemd-tmpfiles creates it
    _monitor_as_service(host)
    st = os.stat(metrics)
    assert (stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid) == (0o2770, 0, host.gid)


def test_a_wrong_directory_the_monitor_cannot_fix_is_a_clear_error(host: Host) -> None:
    metrics = host.state / "metrics"
    metrics.mkdir()
    metrics.chmod(0o755)  # root's, not writable by the group
    proc = host.run_as(MEMBER, "monitor", gid=host.gid, umask=0o007)
    assert proc.returncode == 7, proc.stderr
    assert "internal error" not in proc.stderr
    assert str(metrics) in proc.stderr
