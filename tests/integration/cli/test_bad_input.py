"""Bad input on every file-taking command, through the real ``aegis`` and ``aegisctl`` CLIs.

The 3 a.m. contract (docs/design.md "Errors and exit codes"): whatever the operator or an
agent passes - a missing file, a directory, garbage, a 200 MB file, the wrong kind of Aegis
document, a broken store or config - the answer is one ``Error: ...`` line on stderr (hint lines
indented), a stable exit code, nothing on stdout even with ``--json``, and never a
traceback. Each table row is one case; rows marked "regression" were internal errors
(exit 1) or misleading before the fix they name.
"""

from __future__ import annotations

import json
import os
import sqlite3
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import click
import pytest
from click.testing import CliRunner, Result

from aegis import api
from aegis.cli.aegis import cli as aegis_cli
from aegis.cli.aegisctl import cli as aegisctl_cli
from aegis.config import Config, load_config
from aegis.devtools.sample_plans import sample_plan
from aegis.sign.keys import write_keypair

PUB = "ab" * 32
HUGE_BYTES = 200 * 1024 * 1024


def _sparse(path: Path, size: int) -> None:
    """A file of ``size`` NUL bytes that uses no disk."""
    path.touch()
    os.truncate(path, size)


# name -> how to make the bad file (None: the path does not exist)
BAD_FILES: dict[str, Callable[[Path], None] | None] = {
    "missing": None,
    "directory": lambda p: p.mkdir(),
    "empty": lambda p: p.write_bytes(b""),
    "binary": lambda p: p.write_bytes(b"\x89PNG\r\n\x1a\n\x00\xff\xfe" * 512),
    "not-utf8": lambda p: p.write_bytes(b'{"schema_version": "\xff\xfe"}'),
    "array": lambda p: p.write_text("[1, 2]"),
    "deep": lambda p: p.write_text("[" * 100_000 + "]" * 100_000),
    "nan": lambda p: p.write_text('{"schema_version": NaN}'),
    # regression: int() past Python's 4300-digit limit raised a bare ValueError (exit 1)
    "bigint": lambda p: p.write_text('{"schema_version": ' + "9" * 10_000 + "}"),
    "huge": lambda p: _sparse(p, HUGE_BYTES),
    "wrong-kind": lambda p: p.write_text('{"schema_version": "aegis.approval/1"}'),
}

# command -> (group, argv with {f} for the bad file); every one exits 3 on every bad file,
# except a directory given where click checks dir_okay=False (exit 2, click's usage error).
FILE_COMMANDS: dict[str, tuple[click.Group, tuple[str, ...]]] = {
    "review": (aegis_cli, ("review", "{f}", "--no-review", "--json")),
    "policy": (aegis_cli, ("policy", "evaluate", "{f}", "--json")),
    "vulndb-import": (aegis_cli, ("vulndb", "import", "{f}", "--json")),
    "approve": (aegisctl_cli, ("approve", "{f}", "--reason", "x", "--key", "{k}", "--json")),
    "sign": (aegisctl_cli, ("sign", "--plan", "{f}", "--key", "{k}", "--signer", "al", "--json")),
    "verify": (
        aegisctl_cli,
        ("verify", "--execution-plan", "{f}", "--public-key-hex", PUB, "--json"),
    ),
    "apply": (
        aegisctl_cli,
        ("apply", "--execution-plan", "{f}", "--public-key-hex", PUB, "--socket", "{s}"),
    ),
}
DIR_IS_USAGE = {"review", "policy", "vulndb-import", "sign", "verify"}
REPORTS = {"verify"}  # explains each check: its JSON report is on stdout, refusal or not


@pytest.fixture
def cfg(aegis_home: Path) -> Config:
    return load_config()


def _run(group: click.Group, *args: str) -> Result:
    return CliRunner().invoke(group, list(args))


def _assert_clean_error(
    result: Result, code: int, message: str = "", *, report: bool = False
) -> None:
    """One ``Error:`` line (hints indented), the exit code, no traceback, and nothing on
    stdout - or, for a ``report`` command, one JSON document saying ``ok: false``."""
    assert result.exit_code == code, (result.exit_code, result.stderr, result.stdout)
    assert "Traceback" not in result.stderr
    assert "internal error" not in result.stderr
    lines = result.stderr.splitlines()
    if code == 2:  # click's usage errors: usage lines, a blank line, then "Error: ..."
        lines = [line for line in lines if line][2:]
    assert lines[0].startswith("Error: "), result.stderr
    assert all(line.startswith("  ") for line in lines[1:]), result.stderr
    if report and result.stdout:  # a file that cannot be read has no checks to report
        assert json.loads(result.stdout)["ok"] is False
    else:
        assert result.stdout == ""
    assert message in result.stderr, result.stderr


@pytest.mark.parametrize("kind", sorted(BAD_FILES))
@pytest.mark.parametrize("command", sorted(FILE_COMMANDS))
def test_bad_file_is_one_clean_error(cfg: Config, tmp_path: Path, command: str, kind: str) -> None:
    key, _ = write_keypair(tmp_path / "keys", "approver" if command == "approve" else "signer")
    bad = tmp_path / f"bad-{kind}.json"
    make = BAD_FILES[kind]
    if make is not None:
        make(bad)
    group, template = FILE_COMMANDS[command]
    argv = [a.format(f=bad, k=key, s=tmp_path / "no.sock") for a in template]
    result = _run(group, *argv)
    code = 2 if kind == "directory" and command in DIR_IS_USAGE else 3
    message = "too many digits" if kind == "bigint" else ""
    _assert_clean_error(result, code, message, report=command in REPORTS)


def test_approve_names_a_missing_plan_file_as_a_file(cfg: Config, tmp_path: Path) -> None:
    """Regression: a mistyped plan path was reported as "not a valid request id"."""
    key, _ = write_keypair(tmp_path / "keys", "approver")
    for target, message in [
        (str(tmp_path / "plans" / "plan-typo.json"), "cannot read plan"),
        ("plan-typo.json", "cannot read plan"),
        (str(tmp_path), "is a directory"),
    ]:
        result = _run(aegisctl_cli, "approve", target, "--reason", "x", "--key", str(key))
        _assert_clean_error(result, 3, message)


@pytest.mark.parametrize(
    ("where", "text"),
    [
        ("aegis.toml", "ai_timeout_s = " + "9" * 5000 + "\n"),
        ("policy.toml", "x = " + "9" * 5000 + "\n"),
        ("aegis.toml", "this is = = not toml [[["),
    ],
    ids=["config-bigint", "policy-bigint", "config-garbage"],
)
def test_bad_toml_is_one_clean_error(cfg: Config, where: str, text: str) -> None:
    """Regression: a huge integer leaked Python's set_int_max_str_digits advice (or exit 1)."""
    cfg.etc_dir.mkdir(parents=True, exist_ok=True)
    (cfg.etc_dir / where).write_text(text)
    argv = ("policy", "check", "--json") if where == "policy.toml" else ("requests", "--json")
    result = _run(aegis_cli, *argv)
    _assert_clean_error(result, 3, "not valid TOML")
    assert "set_int_max_str_digits" not in result.stderr


def test_workflow_file_with_a_huge_integer(tmp_path: Path) -> None:
    path = tmp_path / "wf.toml"
    path.write_text("schema_version = " + "9" * 5000 + "\n")
    result = _run(aegis_cli, "workflow", "check", str(path), "--json")
    _assert_clean_error(result, 3, "an integer has too many digits")


@pytest.mark.parametrize(
    "content",
    [b"not sqlite at all\n", b"\x00\xff" * 4096],
    ids=["text", "binary"],
)
def test_store_that_is_not_sqlite(cfg: Config, content: bytes) -> None:
    """Regression: the hint blamed permissions; the file is damaged, not unwritable."""
    cfg.store_path.parent.mkdir(parents=True, exist_ok=True)
    cfg.store_path.write_bytes(content)
    for argv in (("requests", "--json"), ("show", "r-0123456789abcdef"), ("resume", "--json")):
        result = _run(aegis_cli, *argv)
        _assert_clean_error(result, 7, "not a usable SQLite database")
        assert "move the file aside" in result.stderr
    assert cfg.store_path.read_bytes() == content  # left for the operator to inspect


def test_store_that_is_a_directory(cfg: Config) -> None:
    cfg.store_path.mkdir(parents=True)
    _assert_clean_error(_run(aegis_cli, "requests", "--json"), 7, "cannot use the state store")


def test_huge_limit_is_a_usage_error(cfg: Config) -> None:
    """Regression: 10**23 reached SQLite ("datatype mismatch", exit 7, a writable-fs hint)."""
    result = _run(aegis_cli, "requests", "--limit", "1" + "0" * 23)
    assert result.exit_code == 2, result.stderr
    assert "--limit" in result.stderr


def test_audit_verify_refuses_a_malformed_key(cfg: Config) -> None:
    """Regression: a malformed --public-key-hex verified an empty log with exit 0."""
    cfg.audit_path.parent.mkdir(parents=True, exist_ok=True)
    cfg.audit_path.write_bytes(b"")
    for key in ("zz", "", "[red]x", "\x1b[2J"):
        result = _run(aegis_cli, "audit", "verify", "--public-key-hex", key, "--json")
        _assert_clean_error(result, 3, "--public-key-hex must be 64 hex characters")
        assert "\x1b" not in result.stderr
    assert _run(aegis_cli, "audit", "verify", "--json").exit_code == 0


def test_empty_approver_is_refused_not_replaced(cfg: Config, tmp_path: Path) -> None:
    """Regression: --approver '' silently became the login name in a signed approval."""
    key, _ = write_keypair(tmp_path / "keys", "approver")
    planned = api.submit_plan(cfg, sample_plan("p-empty-approver"), "t")
    result = _run(
        aegisctl_cli,
        "approve",
        str(planned.plan_path),
        "--reason",
        "x",
        "--key",
        str(key),
        "--approver",
        "",
    )
    _assert_clean_error(result, 3, "identity '' must be")
    assert not cfg.approvals_dir.exists() or not any(cfg.approvals_dir.iterdir())


def test_keygen_into_an_unwritable_place(tmp_path: Path) -> None:
    """Regression: OSError escaped as an internal error; a .key was left without its .pub."""
    a_file = tmp_path / "a-file"
    a_file.write_text("x")
    result = _run(aegisctl_cli, "keygen", "--out", str(a_file / "sub"), "--json")
    _assert_clean_error(result, 7, "cannot write a key in")
    out = tmp_path / "keys"
    (out / "ops.pub").mkdir(parents=True)  # the .pub cannot be written
    result = _run(aegisctl_cli, "keygen", "--out", str(out), "--name", "ops")
    _assert_clean_error(result, 7, "cannot write a key in")
    assert not (out / "ops.key").exists()  # nothing half-written


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("0", "duration must look like"),
        ("-1h", "duration must look like"),
        ("1.5h", "duration must look like"),
        ("１h", "duration must look like"),
        ("99999999999999999999999h", "duration must look like"),
        ("\x1b[2J", "\\x1b[2J"),
    ],
    ids=["zero", "negative", "fraction", "fullwidth", "overflow", "escape"],
)
def test_bad_expires_in_on_approve(cfg: Config, tmp_path: Path, value: str, message: str) -> None:
    key, _ = write_keypair(tmp_path / "keys", "approver")
    planned = api.submit_plan(cfg, sample_plan("p-exp"), "t")
    result = _run(
        aegisctl_cli,
        "approve",
        str(planned.plan_path),
        "--reason",
        "x",
        "--key",
        str(key),
        "--expires-in",
        value,
    )
    # The duration is parsed before the request is looked at, so the plan's state
    # (analyzed, no policy decision yet) does not matter here.
    _assert_clean_error(result, 3, message)


def test_too_long_validity_names_the_limit_plainly() -> None:
    """Regression: the message read "at most 7 days, 0:00:00" and "at most 1 day, 0:00:00"."""
    from nacl.signing import SigningKey

    from aegis.errors import InputError
    from aegis.sign.approvals import build_approval

    with pytest.raises(InputError, match=r"at most 7d\Z"):
        build_approval(
            plan_id="p",
            plan_hash="0" * 64,
            policy_hash="0" * 64,
            approver_id="bob",
            role="approver",
            reason="x",
            now=datetime(2026, 1, 1, tzinfo=UTC),
            expires_in=timedelta(days=8),
            key=SigningKey.generate(),
        )


HOSTILE = ["[red]boom[/red]", "\x1b[2J\x1b]0;owned\x07", "a\u202eb", "line\nError: fake"]


@pytest.mark.parametrize("text", HOSTILE, ids=["markup", "escape", "bidi", "newline"])
@pytest.mark.parametrize(
    ("group", "template", "code"),
    [
        (aegis_cli, ("show", "{t}", "--json"), 3),
        (aegis_cli, ("requests", "--state", "{t}", "--json"), 3),
        (aegis_cli, ("policy", "evaluate", "{p}", "--at", "{t}", "--dry-run"), 3),
        (aegis_cli, ("apt", "install", "{t}", "--plan", "--json"), 3),
        (aegisctl_cli, ("rollback", "{t}", "--json"), 3),
        (aegisctl_cli, ("keygen", "--out", "{d}", "--name", "{t}"), 3),
        (aegisctl_cli, ("approve", "{p}", "--reason", "x", "--key", "{k}", "--approver", "{t}"), 3),
        (aegisctl_cli, ("sign", "--plan", "{p}", "--key", "{k}", "--signer", "{t}"), 3),
    ],
    ids=["show", "requests", "policy-at", "apt", "rollback", "keygen", "approver", "signer"],
)
def test_hostile_text_is_echoed_inert(
    cfg: Config,
    tmp_path: Path,
    group: click.Group,
    template: tuple[str, ...],
    code: int,
    text: str,
) -> None:
    key, _ = write_keypair(tmp_path / "keys", "approver")
    planned = api.submit_plan(cfg, sample_plan("p-hostile"), "t")
    argv = [a.format(t=text, p=planned.plan_path, k=key, d=tmp_path / "k") for a in template]
    result = _run(group, *argv)
    _assert_clean_error(result, code)
    for raw in ("\x1b", "\x07", "\u202e"):
        assert raw not in result.stderr
    assert "\nError: fake" not in result.stderr
    assert not (tmp_path / "k").exists() or not any((tmp_path / "k").iterdir())


@pytest.mark.parametrize(
    ("argv", "code", "message"),
    [
        (("requests", "--state", "bogus"), 3, "unknown state 'bogus'"),
        (("requests", "--limit", "0"), 2, "--limit"),
        (("show", "r-0123456789abcdef"), 3, "no change request"),
        (("show", "../../etc/passwd"), 3, "not a valid request id"),
        (("show", "r-\udcff\udcfe"), 3, "not a valid request id"),  # non-UTF-8 argv
        (("cancel", "r-0123456789abcdef", "--reason", "x"), 3, "no change request"),
        (("cancel", "r-0123456789abcdef", "--reason", " "), 3, "a reason is required"),
        (("apt", "install", "nginx"), 3, "--plan"),
    ],
    ids=[
        "unknown-state",
        "limit-zero",
        "unknown-id",
        "path-as-id",
        "non-utf8-id",
        "cancel-unknown",
        "cancel-blank-reason",
        "no-plan-flag",
    ],
)
def test_bad_arguments_that_already_behave(
    cfg: Config, argv: tuple[str, ...], code: int, message: str
) -> None:
    _assert_clean_error(_run(aegis_cli, *argv), code, message)


def test_store_row_edited_to_a_huge_integer_is_a_trust_failure(cfg: Config) -> None:
    """A store row is untrusted input: an edited version column is reported, not crashed on."""
    planned = api.submit_plan(cfg, sample_plan("p-row"), "t")
    with sqlite3.connect(cfg.store_path) as conn:
        conn.execute("UPDATE requests SET state = 'nonsense' WHERE id = ?", [planned.request_id])
    result = _run(aegis_cli, "show", planned.request_id, "--json")
    _assert_clean_error(result, 4)


@pytest.mark.parametrize(
    ("var", "value"),
    [("AEGIS_APT_TIMEOUT", "1" + "0" * 23), ("AEGIS_AI_TIMEOUT", "1" + "0" * 23)],
    ids=["apt-timeout", "ai-timeout"],
)
def test_huge_timeout_setting_is_refused(
    cfg: Config, monkeypatch: pytest.MonkeyPatch, var: str, value: str
) -> None:
    """Regression: AEGIS_APT_TIMEOUT=10**23 overflowed inside subprocess (exit 1)."""
    monkeypatch.setenv(var, value)
    _assert_clean_error(_run(aegis_cli, "requests", "--json"), 3, "must be at most")


@pytest.mark.parametrize(
    "url",
    ["http://[::1/v1", "http://model:99999/v1", "http://\x1b[2J[red]x/v1"],
    ids=["ipv6", "port", "escape"],
)
def test_malformed_model_url_records_a_failed_review(
    cfg: Config, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, url: str
) -> None:
    """Regression: urlsplit's ValueError escaped the endpoint label (exit 1); now the review
    is recorded as failed (the model is unusable), which policy treats as unavailable."""
    write_keypair(cfg.keys_dir, "review")
    monkeypatch.setenv("AEGIS_AI_MODEL", "m")
    monkeypatch.setenv("AEGIS_AI_BASE_URL", url)
    planned = api.submit_plan(cfg, sample_plan("p-url"), "t")
    result = _run(aegis_cli, "review", str(planned.plan_path), "--direct", "--json")
    assert result.exit_code == 0, result.stderr
    review = json.loads(result.stdout)["review"]
    assert review["status"] == "failed"
    assert review["endpoint"] == "(malformed URL)"
    assert "\x1b" not in result.stdout


@pytest.mark.parametrize(
    "execution_id",
    ["x", "../../etc/passwd", "\x1b[2J", "F" * 32, "f" * 5000],
    ids=["short", "path", "escape", "upper", "long"],
)
def test_revoke_refuses_what_is_not_an_execution_id(
    cfg: Config, tmp_path: Path, execution_id: str
) -> None:
    """Regression: any string was sent to aegisd and "revoked" (a typo looked like success)."""
    result = _run(
        aegisctl_cli,
        "revoke",
        execution_id,
        "--reason",
        "window closed",
        "--socket",
        str(tmp_path / "no.sock"),  # refused before aegisd is asked (exit 3, not 7)
        "--json",
    )
    _assert_clean_error(result, 3, "not an execution id")
    assert "\x1b" not in result.stderr


def test_resume_reports_a_store_row_with_a_malformed_id_as_corrupt(cfg: Config) -> None:
    """Regression: resume/monitor said "not a valid request id" with exit 3 (the user's
    typo) for an id read from an edited store row; ``aegis requests`` says 4 for the same."""
    planned = api.submit_plan(cfg, sample_plan("p-bad-id"), "t")
    with sqlite3.connect(cfg.store_path) as conn:
        conn.execute("UPDATE requests SET id = ? WHERE id = ?", ["../x\x1b[2J", planned.request_id])
    result = _run(aegis_cli, "resume", "--json")
    assert result.exit_code == 4, result.output
    (item,) = json.loads(result.stdout)["items"]
    assert item["exit_code"] == 4
    assert "is corrupted or was edited: not a valid request id" in item["detail"]
    assert _run(aegis_cli, "requests", "--json").exit_code == 4
    monitor = _run(aegis_cli, "monitor")
    assert monitor.exit_code == 4
    assert "\x1b" not in monitor.output
