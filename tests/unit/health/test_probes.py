"""Health probes: strict text form, loopback only, policy defaults, and running them."""

from __future__ import annotations

import http.server
import os
import socket
import tempfile
import threading
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from aegis.devtools.sample_plans import sample_plan
from aegis.errors import InputError
from aegis.health.policy import derive_verification
from aegis.health.run import run_probe
from aegis.health.spec import Probe, Verification, parse_probe
from aegis.policy.config import PolicyConfigError, parse_policy_config
from tests.conftest import require_root

HEAD = 'format = "aegis.policy-config/1"\nruleset = "aegis.rules/1"\n'


@pytest.mark.parametrize(
    "text",
    [
        "unit:nginx.service",
        "tcp:127.0.0.1:5432",
        "tcp:[::1]:22",
        "http:http://127.0.0.1:80/",
        "http:503:http://127.0.0.2:8080/health?deep=1",
        "command:nobody:5:/usr/bin/test -f /etc/hostname",
    ],
)
def test_probe_text_round_trips(text: str) -> None:
    p = parse_probe(text)
    assert parse_probe(p.text()) == p


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("tcp:10.0.0.1:22", "not a loopback address"),
        ("tcp:192.168.1.1:80", "not a loopback address"),
        ("http:http://localhost/", "no host names"),
        ("http:http://127.0.0.1.attacker.example/", "no host names"),
        ("http:http://127.0.0.1:80@10.0.0.1/", "ADDR:PORT"),
        ("http:https://127.0.0.1/", "only http://"),
        ("http:http://[::ffff:10.0.0.1]/", "not a loopback address"),
        ("tcp:::1:22", "brackets"),
        ("tcp:127.0.0.1:70000", "port"),
        ("http:http://127.0.0.1/\r\nHost: x", "path"),
        ("command:root:/bin/true", "not root"),
        ("command:nobody:true", "absolute program path"),
        ("command:nobody:/bin/sh -c  x", "expected command"),
        ("unit:../../etc/passwd", "not a systemd unit"),
        ("unit:--user.service", "not a systemd unit"),
        ("ping:127.0.0.1", "starts with one of"),
    ],
)
def test_probes_off_loopback_or_outside_the_grammar_are_refused(text: str, why: str) -> None:
    with pytest.raises(InputError) as err:
        parse_probe(text)
    assert why in err.value.message


POLICY = (
    HEAD
    + """
[health]
within = "10m"

[[health.packages]]
match = ["aegis-b*"]
probes = ["unit:aegis.service", "http:http://127.0.0.1:80/"]
within = "2m"

[[health.packages]]
match = ["nginx*"]
probes = ["tcp:127.0.0.1:80"]
confirm = true
"""
)


def test_policy_defaults_per_package_pattern_and_the_request_s_own_probes() -> None:
    cfg = parse_policy_config(POLICY)
    plan = sample_plan("p1")  # installs aegis-base
    v = derive_verification(cfg, plan)
    assert v == Verification(
        (parse_probe("unit:aegis.service"), parse_probe("http:http://127.0.0.1:80/")), 120
    )
    extra = parse_probe("tcp:127.0.0.1:9000")
    asked = replace(plan, intent=replace(plan.intent, probes=(extra,)))
    assert derive_verification(cfg, asked).probes[-1] == extra  # type: ignore[union-attr]
    other = sample_plan("p2", targets=("aegis-tool",))
    assert derive_verification(cfg, other) is None
    assert derive_verification(parse_policy_config(HEAD), plan) is None


def test_a_policy_without_health_keeps_its_version_and_bad_tables_are_refused() -> None:
    from aegis.codec import to_dict

    assert "health" not in to_dict(parse_policy_config(HEAD))
    for bad in (
        '[health]\nwithin = "5m"\nretry = 3\n',
        '[[health.packages]]\nmatch = ["x"]\nprobes = ["tcp:10.1.1.1:80"]\n',
        '[[health.packages]]\nmatch = []\nprobes = ["unit:x.service"]\n',
        '[[health.packages]]\nmatch = ["x"]\n',
        '[health]\nwithin = "2d"\n',
    ):
        with pytest.raises(PolicyConfigError):
            parse_policy_config(HEAD + bad)


def test_a_signed_plan_naming_an_off_loopback_probe_is_malformed(tmp_path: Path) -> None:
    """A signer (or an edit before signing) cannot make aegisd a client of another host."""
    from datetime import UTC, datetime, timedelta

    from aegis.sign import keys
    from aegis.sign.execution_plan import (
        PolicyBinding,
        build_execution_plan,
        execution_plan_bytes,
        parse_execution_plan,
    )
    from aegis.sign.refusals import RefusedError

    path, _ = keys.write_keypair(tmp_path, "signer")
    binding = PolicyBinding("1" * 64, "allow", "t", (), 0, (), ("t",))
    ok = Verification((parse_probe("tcp:127.0.0.1:80"),), 60)
    ep = build_execution_plan(
        execution_id="a" * 32,
        request_id=None,
        plan=sample_plan("p1"),
        policy=binding,
        review_hash=None,
        approvals=(),
        argv=("/usr/bin/apt-get", "install"),
        now=datetime.now(UTC),
        expires_in=timedelta(hours=1),
        signer_id="alice",
        key=keys.load_signing_key(path),
        verification=ok,
    )
    data = execution_plan_bytes(ep)
    assert parse_execution_plan(data).verification == ok
    forged = data.replace(b'"127.0.0.1:80"', b'"10.0.0.1:80"')
    with pytest.raises(RefusedError) as err:
        parse_execution_plan(forged)
    assert err.value.refusal.code.value == "refused:malformed"
    assert "loopback" in err.value.message


def test_network_probes_against_loopback_servers() -> None:
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200 if self.path == "/ok" else 500)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    port = server.server_address[1]
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        assert run_probe(parse_probe(f"http:http://127.0.0.1:{port}/ok")).ok
        bad = run_probe(parse_probe(f"http:http://127.0.0.1:{port}/broken"))
        assert (bad.ok, bad.detail) == (False, "HTTP 500")
        assert run_probe(parse_probe(f"http:500:http://127.0.0.1:{port}/broken")).ok
        assert run_probe(parse_probe(f"tcp:127.0.0.1:{port}")).ok
    finally:
        server.shutdown()
        server.server_close()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed = s.getsockname()[1]
    refused = run_probe(Probe("tcp", f"127.0.0.1:{closed}", timeout_s=2))
    assert not refused.ok
    assert "ConnectionRefused" in refused.detail


def test_a_command_probe_runs_as_its_unprivileged_user() -> None:
    require_root("switching to user nobody needs root")
    import pwd

    nobody = pwd.getpwnam("nobody")
    with tempfile.TemporaryDirectory() as d:
        Path(d).chmod(0o1777)
        made = Path(d) / "made"
        assert run_probe(parse_probe(f"command:nobody:/usr/bin/touch {made}")).ok
        assert made.stat().st_uid == nobody.pw_uid
        assert os.getuid() == 0
    failed = run_probe(parse_probe("command:nobody:/usr/bin/false"))
    assert (failed.ok, failed.detail) == (False, "exit 1")
    slow = run_probe(parse_probe("command:nobody:1:/usr/bin/sleep 5"))
    assert (slow.ok, slow.detail) == (False, "timed out after 1 s")


def test_settle_is_the_strictest_entry_s_and_never_past_the_deadline() -> None:
    cfg = parse_policy_config(
        HEAD
        + '[[health.packages]]\nmatch = ["aegis-*"]\nprobes = ["unit:a.service"]\n'
        + 'within = "1h"\nconfirm = true\nsettle = "2m"\n'
        + '[[health.packages]]\nmatch = ["aegis-base"]\nprobes = ["unit:b.service"]\n'
        + 'settle = "30s"\n'
    )
    v = derive_verification(cfg, sample_plan("p1"))
    assert v is not None
    assert (v.within_s, v.settle_s, v.confirm) == (300, 30, True)
    from aegis.health.spec import check_verification

    with pytest.raises(InputError):
        check_verification(Verification((parse_probe("unit:a.service"),), 10, settle_s=20))
