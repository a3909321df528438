"""The guard's parts: option reading, wrappers, argv checks, bounds, messages, PATH blocks."""

from __future__ import annotations

import shlex
import subprocess
import time
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aegis.guard.argv import find_verb, operand_indices, split_options
from aegis.guard.blocks import with_block
from aegis.guard.check import MAX_DEPTH, MAX_INPUT, check_argv, check_command_line
from aegis.guard.install import path_block, shim_text
from aegis.guard.report import refusal, verdict_json
from aegis.guard.shim import find_real
from aegis.guard.wrappers import Run, Script, unwrap


def test_split_options_reads_clusters_values_and_double_dash() -> None:
    opts, operands = split_options(
        ["-yq", "-o", "A=1", "--target-release=x", "install", "--", "-weird"], frozenset({"-o"})
    )
    assert opts == ["-y", "-q", "-o", "--target-release"]
    assert operands == ["install", "-weird"]
    assert operand_indices(["-H", "run", "pull", "x"], frozenset({"-H"})) == [2, 3]
    assert operand_indices(["-oValue", "x"], frozenset({"-o"})) == [1]
    assert operand_indices(["--"]) == []
    assert find_verb(["dev", "install"], {"install"}, {"view"}) == 1
    assert find_verb(["view", "install"], {"install"}, {"view"}) is None


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["sudo", "-u", "root", "apt-get", "install"], [Run(3)]),
        (["sudo", "-l"], []),
        (["sudo", "-l", "apt-get", "install", "x"], []),
        (["sudo", "-e", "/etc/hosts"], []),
        (["command", "-v", "apt-get"], []),
        (["env", "A=1", "B=2"], []),
        (["env", "-S", "npm ci"], [Script((2,), "npm ci")]),
        (["env", "-Snpm ci"], [Script((), "npm ci")]),
        (["bash", "-xc", "npm ci", "name", "arg"], [Script((2,), "npm ci")]),
        (["bash", "-o", "pipefail", "-c", "npm ci"], [Script((4,), "npm ci")]),
        (["bash", "script.sh"], []),
        (["timeout", "-k", "5", "60", "apt-get", "upgrade"], [Run(4)]),
        (["su", "-", "root"], []),
        (["su", "--command=npm ci"], [Script((), "npm ci")]),
        (
            ["find", ".", "-exec", "rm", "{}", ";", "-exec", "dpkg", "-i", "{}", "+"],
            [Run(3, 5), Run(7, 10)],
        ),
        (["watch", "-x", "apt-get", "upgrade"], [Run(2)]),
        (["ls", "-la"], []),
    ],
    ids=lambda v: " ".join(v) if isinstance(v, list) and v and isinstance(v[0], str) else None,
)
def test_unwrap(argv: list[str], expected: list[object]) -> None:
    assert unwrap(argv) == expected


def test_check_argv_is_what_a_shim_sees() -> None:
    assert not check_argv(["sudo", "apt-get", "install", "x"]).allowed
    assert not check_argv(["sudo", "sh", "-c", "npm ci && ls"]).allowed
    assert check_argv(["sudo", "dpkg", "-l"]).allowed
    # The shell already expanded everything: "$(x)" is a literal package name here.
    refused = check_argv(["apt-get", "install", "$(x)"])
    assert [f.rule for f in refused.findings] == ["apt.mutation"]
    assert refused.findings[0].instead == "aegis apt install <package> --plan"


def test_instead_names_the_packages_when_they_are_plain() -> None:
    (finding,) = check_command_line("sudo apt-get -y install nginx=1.22-1 libssl3:amd64").findings
    assert finding.instead == "aegis apt install nginx=1.22-1 libssl3:amd64 --plan"
    (finding,) = check_command_line("dpkg -P nginx").findings
    assert finding.instead == "aegis apt purge nginx --plan"
    (finding,) = check_command_line("apt-get dist-upgrade").findings
    assert finding.instead == "aegis apt full-upgrade --plan"


def test_nesting_deeper_than_the_bound_is_refused() -> None:
    line = "ls"
    for _ in range(MAX_DEPTH + 2):
        line = "sh -c " + shlex.quote(line)
    verdict = check_command_line(line)
    assert [f.rule for f in verdict.findings] == ["parse.too-deep"]
    wrapped = check_argv(["sudo"] * (MAX_DEPTH + 3) + ["ls"])
    assert [f.rule for f in wrapped.findings] == ["parse.too-deep"]


def test_oversized_input_is_refused() -> None:
    verdict = check_command_line("echo " + "a" * MAX_INPUT)
    assert [f.rule for f in verdict.findings] == ["parse.too-large"]


def test_brace_bomb_is_bounded() -> None:
    start = time.monotonic()
    assert check_command_line("echo {a,b}{c,d}").allowed
    refused = check_command_line("{a,b}" * 40 + " install x")
    assert time.monotonic() - start < 5
    assert [f.rule for f in refused.findings] == ["parse.too-large"]


def test_refusal_message_is_inert_and_lists_instead() -> None:
    verdict = check_command_line("apt-get install '\x1b[2Jevil\u202e'")
    err = refusal(verdict)
    text = err.diagnostics()
    assert err.exit_code == 3
    assert "\x1b" not in text
    assert "\u202e" not in text
    assert "[apt.mutation]" in text
    assert "instead: aegis apt install <package> --plan" in text


def test_verdict_json_shape() -> None:
    doc = verdict_json(check_command_line("ls | npx cowsay"))
    assert doc["allowed"] is False
    assert doc["findings"] == [
        {
            "command": "npx cowsay",
            "rule": "npm.exec",
            "reason": "npx downloads and runs package code",
            "instead": doc["findings"][0]["instead"],
        }
    ]
    assert verdict_json(check_command_line("ls")) == {"allowed": True, "findings": []}


def test_with_block_inserts_replaces_and_removes() -> None:
    block = path_block("/opt/shims")
    body = "case $- in *i*) ;; *) return;; esac\nalias ll='ls -l'\n"
    top = with_block(body, block, at_top=True)
    assert top == block + body
    assert with_block(top, block, at_top=True) == top
    newer = path_block("/opt/other")
    assert with_block(top, newer, at_top=True) == newer + body
    assert with_block(top, None, at_top=True) == body
    end = with_block("PATH=x\n", block, at_top=False)
    assert end == "PATH=x\n" + block
    assert with_block(with_block("", block, at_top=False), None, at_top=False) == ""


def test_path_block_prepends_once_in_a_real_shell(tmp_path: Path) -> None:
    rc = tmp_path / "rc"
    rc.write_text(path_block("/opt/aegis shims"[:10] + "/x"))
    out = subprocess.run(
        ["sh", "-c", f'. {rc}; . {rc}; printf %s "$PATH"'],
        capture_output=True,
        text=True,
        check=True,
        env={"PATH": "/usr/bin:/bin"},
    )
    assert out.stdout == "/opt/aegis/x:/usr/bin:/bin"


def test_shim_text_is_valid_sh(tmp_path: Path) -> None:
    shim = tmp_path / "apt-get"
    shim.write_text(
        shim_text("apt-get", python="/opt/py 3/python", shim_dir="/s", log_file="/l", user="a")
    )
    subprocess.run(["sh", "-n", str(shim)], check=True)
    assert "'/opt/py 3/python' -I -m aegis.guard.shim apt-get /s /l \"$@\"" in shim.read_text()


def test_find_real_skips_the_shim_dir_and_other_shims(tmp_path: Path) -> None:
    shims, other, real = tmp_path / "shims", tmp_path / "other", tmp_path / "real"
    for d in (shims, other, real):
        d.mkdir()
        tool = d / "npm"
        tool.write_text("#!/bin/sh\n# aegis guard shim for npm\n" if d != real else "#!/bin/sh\n")
        tool.chmod(0o755)
    path = f"{shims}:{other}:{real}"
    assert find_real("npm", str(shims), path) == str(real / "npm")
    assert find_real("npm", str(shims), f"{shims}:{other}") is None


TRICKY_WORDS = [
    "'a'\"'\"'b'",
    '"x\\"y"',
    "a\\ b",
    "$'\\x41\\tB\\101\\u00e9'",
    '"a\\b"',
    "'\\'",
    '$"x"',
    "\"a\"'b'c\\d",
    '"\\$HOME"',
    "ap''t-g\"\"et",
    "a\\\nb",
]


@pytest.mark.parametrize("word", TRICKY_WORDS)
def test_quote_removal_matches_bash(word: str) -> None:
    from aegis.guard.shell_parse import dequote, parse

    line = f"printf %s {word}"
    (tree,) = parse(line)
    node = tree.parts[2]
    ours, expands = dequote(line, node.pos[0], node.pos[1], [])
    theirs = subprocess.run(
        ["bash", "-c", line], capture_output=True, check=True, env={"LC_ALL": "C.UTF-8"}
    ).stdout.decode()
    assert ours == theirs
    assert not expands


def test_hook_decide_never_raises() -> None:
    from aegis.guard.hooks import decide

    assert decide("claude-code", b'{"tool_name": "Bash", "tool_input": {"command": "ls"}}') == (
        0,
        "",
    )
    code, text = decide("claude-code", b"x" * (2 * 1024 * 1024))
    assert code == 2
    assert "larger than" in text
    assert decide("no-such-runtime", b"{}")[0] == 2


def test_dynamic_names_ignore_rules_that_refuse_any_arguments() -> None:
    from aegis.guard.rules import RULES, any_tool_match

    # Every rule that refuses a single plain operand must be listed as "always".
    assert any_tool_match(["notes.txt"]) is None
    assert any_tool_match(["install", "x"]) is not None
    assert set(RULES) >= {"gdebi", "unattended-upgrade", "npx"}


SHELLISH = st.lists(
    st.sampled_from([*"aptgeinsl -'\"\\$(){}[]|&;<>`*?=#~\n\t!", "apt-get", "sh -c ", "<<EOF\n"]),
    max_size=40,
).map("".join)


@settings(max_examples=300, deadline=None)
@given(SHELLISH)
def test_the_checker_never_raises(line: str) -> None:
    """Whatever the input, a verdict comes back: bashlex failures become refusals."""
    verdict = check_command_line(line)
    assert all(f.rule and f.instead for f in verdict.findings)
    check_argv(line.split())


# An expiry can land inside a gc callback (hypothesis installs one), where Python reports
# it as unraisable and drops it; the repeating timer ends the parse at the next one.
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_a_parser_that_never_finishes_is_refused_in_time(monkeypatch: pytest.MonkeyPatch) -> None:
    """bashlex 0.18 loops forever on '${' inside quotes: a hook must still answer."""
    from aegis.guard import shell_parse

    monkeypatch.setattr(shell_parse, "PARSE_SECONDS", 0.5)
    start = time.monotonic()
    verdict = check_command_line("echo '${'x; apt-get install y")
    assert time.monotonic() - start < 5
    assert [f.rule for f in verdict.findings] == ["parse.failed"]
    assert "did not finish" in verdict.findings[0].reason
    assert check_command_line("ls").allowed  # the alarm is gone afterwards
    time.sleep(0.6)


def test_expiries_landing_on_the_way_out_leave_no_timer(monkeypatch: pytest.MonkeyPatch) -> None:
    """A loaded machine: the next expiry comes while the first one is still unwinding.

    With expiries every 0.2 ms, some land after bashlex was left (in parse's own frame,
    in the deadline's exit while it disarms). None may escape or leave the timer armed:
    before the fix one did within a few dozen parses, and the process later died of
    SIGALRM.
    """
    import gc
    import signal

    from aegis.guard import shell_parse

    monkeypatch.setattr(shell_parse, "PARSE_SECONDS", 0.005)
    monkeypatch.setattr(shell_parse, "REPEAT_SECONDS", 0.0002)
    before = signal.getsignal(signal.SIGALRM)
    # No automatic collection meanwhile: at this rate an expiry would also land in the gc
    # callback hypothesis installs, and in pytest's report of it (the case above).
    gc.disable()
    try:
        for _ in range(100):
            verdict = check_command_line("echo '${'x; apt-get install y")
            assert [f.rule for f in verdict.findings] == ["parse.failed"]
            assert signal.getitimer(signal.ITIMER_REAL) == (0.0, 0.0)
            assert signal.getsignal(signal.SIGALRM) == before
    finally:
        gc.enable()
    assert check_command_line("ls").allowed


def test_no_collection_runs_inside_a_parse_so_no_expiry_lands_in_a_gc_callback(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A collection started inside bashlex runs ``gc.callbacks`` with bashlex below them.

    An expiry landing there was raised inside the callback, where Python only reports it
    (under pytest the next expiry then landed in pytest's report, failing a run). With a
    collection due at every allocation, none may run while bashlex is on the stack, and
    collection is back on afterwards.
    """
    import gc
    import sys

    from aegis.guard import shell_parse

    monkeypatch.setattr(shell_parse, "PARSE_SECONDS", 0.2)
    inside: list[bool] = []

    def record(phase: str, info: dict[str, int]) -> None:
        frame = sys._getframe(1)
        inside.append(shell_parse._in_bashlex(frame))

    threshold = gc.get_threshold()
    gc.callbacks.append(record)
    gc.set_threshold(1)
    try:
        verdict = check_command_line("echo '${'x; apt-get install y")
        assert [f.rule for f in verdict.findings] == ["parse.failed"]
        assert gc.isenabled()
        gc.collect()
    finally:
        gc.callbacks.remove(record)
        gc.set_threshold(*threshold)
    assert inside, "the callback never ran: the test proves nothing"
    assert not any(inside)
