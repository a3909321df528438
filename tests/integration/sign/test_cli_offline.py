"""``aegisctl keygen``, ``verify`` and ``snapshot check`` through the real CLI."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from freezegun import freeze_time

from aegis.cli.aegisctl import cli
from aegis.devtools import signing
from aegis.errors import AegisError
from aegis.model import Host
from aegis.sign import keys
from aegis.sign.execution_plan import execution_plan_bytes

LOCAL = Host(machine_id="test-host", hostname=socket.gethostname())


def _ctl(*args: str, input: str | None = None) -> Result:
    return CliRunner().invoke(cli, list(args), input=input)


@pytest.fixture
def kp(tmp_path: Path) -> dict[str, Any]:
    d = tmp_path / "keys"
    sp, spub = keys.write_keypair(d, "signer")
    ap, apub = keys.write_keypair(d, "approver")
    op, _ = keys.write_keypair(d, "signer", name="stranger")
    return {
        "signer": keys.load_signing_key(sp),
        "approver": keys.load_signing_key(ap),
        "stranger": keys.load_signing_key(op),
        "signer_pub": spub,
        "approver_pub": apub,
    }


def _write(tmp_path: Path, kp: dict[str, Any], **kw: Any) -> Path:
    plan = signing.make_plan(host=kw.pop("host", LOCAL))
    approvals = kw.pop("approvals", None)
    if approvals is None:
        approvals = (signing.make_approval(plan, kp["approver"]),)
    key = kw.pop("key", kp["signer"])
    ep = signing.make_execution_plan(plan, key, approvals=approvals, **kw)
    path = tmp_path / f"{ep.execution_id}.json"
    path.write_bytes(execution_plan_bytes(ep))
    return path


def _verify(path: Path, kp: dict[str, Any], *extra: str) -> Result:
    return _ctl(
        "verify",
        "--execution-plan",
        str(path),
        "--public-key-hex",
        kp["signer_pub"],
        "--approval-public-key-hex",
        kp["approver_pub"],
        *extra,
    )


def test_keygen_writes_owner_only_secret_and_prints_public_hex(
    tmp_path: Path, aegis_home: Path
) -> None:
    out = tmp_path / "k"
    result = _ctl("keygen", "--out", str(out), "--role", "approver", "--name", "alice")
    assert result.exit_code == 0, result.output
    secret = out / "alice.key"
    assert os.stat(secret).st_mode & 0o777 == 0o600
    pub = (out / "alice.pub").read_text().strip()
    assert f"public key hex: {pub}" in result.stdout
    assert f"secret key: {secret}" in result.stdout
    assert keys.key_role(secret) == "approver"
    again = _ctl("keygen", "--out", str(out), "--role", "approver", "--name", "alice")
    assert again.exit_code == 3
    assert "refusing to overwrite" in again.stderr


def test_keygen_passphrase_from_file_or_stdin_never_argv(tmp_path: Path, aegis_home: Path) -> None:
    pf = tmp_path / "pass"
    pf.write_text("s3cret\n")
    result = _ctl("keygen", "--out", str(tmp_path / "a"), "--passphrase-file", str(pf), "--json")
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert doc["passphrase_protected"] is True
    key_path = Path(doc["secret_key_path"])
    assert b"s3cret" not in key_path.read_bytes()
    assert keys.public_hex(keys.load_signing_key(key_path, b"s3cret")) == doc["public_key_hex"]
    piped = _ctl("keygen", "--out", str(tmp_path / "b"), "--passphrase-stdin", input="pw\n")
    assert piped.exit_code == 0
    assert keys.load_signing_key(tmp_path / "b/signer.key", b"pw")
    no_option = _ctl("keygen", "--out", str(tmp_path / "c"), "--passphrase", "visible")
    assert no_option.exit_code == 2


def test_keygen_and_signing_never_put_secrets_on_output_or_in_files(
    tmp_path: Path, aegis_home: Path
) -> None:
    """As real processes: seed and passphrase appear in no output, log or other file."""
    import base64

    ctl = [sys.executable, "-c", "from aegis.cli.aegisctl import main; main()"]
    env = {**os.environ, "AEGIS_AUDIT_SYSLOG": "0"}
    pf = tmp_path / "pass"
    pf.write_text("correct horse battery\n")
    outputs: list[str] = []
    for extra in ([], ["--passphrase-file", str(pf)]):
        out = tmp_path / f"k{len(extra)}"
        proc = subprocess.run(
            [*ctl, "keygen", "--out", str(out), "--name", "alice", *extra],
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        assert proc.returncode == 0, proc.stderr
        outputs += [proc.stdout, proc.stderr]
    raw = keys.load_signing_key(tmp_path / "k0/alice.key")
    wrapped = keys.load_signing_key(tmp_path / "k2/alice.key", b"correct horse battery")
    # A wrong passphrase is refused without echoing either passphrase.
    with pytest.raises(AegisError) as wrong:
        keys.load_signing_key(tmp_path / "k2/alice.key", b"wrong horse")
    outputs.append(str(wrong.value))
    text = "\n".join(outputs)
    secrets_ = ["correct horse", "wrong horse"]
    for key in (raw, wrapped):
        seed = bytes(key)
        secrets_ += [seed.hex(), base64.b64encode(seed).decode(), bytes(key._signing_key).hex()]
    assert keys.public_hex(raw) in text  # the public half is printed
    for secret in secrets_:
        assert secret not in text
    # Nothing under AEGIS_HOME (logs, audit, state) holds the seed either.
    for path in aegis_home.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            assert not any(s.encode() in data for s in secrets_), path
    assert b"correct horse" not in (tmp_path / "k2/alice.key").read_bytes()
    assert bytes(wrapped).hex().encode() not in (tmp_path / "k2/alice.key").read_bytes()


@freeze_time("2026-11-26T12:10:00Z")
def test_verify_explains_each_check(tmp_path: Path, kp: dict[str, Any], aegis_home: Path) -> None:
    result = _verify(_write(tmp_path, kp), kp)
    assert result.exit_code == 0, result.output
    for step in ("parse", "signature", "host", "time-window", "approvals", "policy", "argv"):
        assert any(
            line.split("│")[1:3] and "✓" in line and step in line
            for line in result.stdout.splitlines()
        ), step
    assert "- │ execution-id" in result.stdout
    assert "- │ rederivation" in result.stdout
    assert "verified: every offline check passed" in result.stdout


def _tamper(path: Path, fn: Any) -> Path:
    from aegis.canonical import canonical_bytes

    doc = json.loads(path.read_bytes())
    fn(doc)
    path.write_bytes(canonical_bytes(doc) + b"\n")
    return path


def _raw(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


ATTACKS: list[tuple[str, Any, int, str]] = [
    (
        "changed-byte",
        lambda p, kp: _tamper(p, lambda d: d.update(signer_id="mallory")),
        4,
        "refused:signature",
    ),
    (
        "duplicate-key",
        lambda p, kp: _raw(p, p.read_bytes().replace(b'"argv":', b'"argv":["/bin/sh"],"argv":', 1)),
        3,
        "refused:malformed",
    ),
    (
        "untrusted-signer",
        lambda p, kp: _write(p.parent, kp, key=kp["stranger"]),
        4,
        "refused:signature",
    ),
    (
        "signer-own-approval",
        lambda p, kp: _write(
            p.parent,
            kp,
            approvals=(signing.make_approval(signing.make_plan(host=LOCAL), kp["signer"]),),
        ),
        4,
        "refused:approvals",
    ),
    (
        "approval-other-plan",
        lambda p, kp: _write(
            p.parent,
            kp,
            approvals=(
                signing.make_approval(
                    signing.make_plan(host=LOCAL), kp["approver"], plan_hash="5" * 64
                ),
            ),
        ),
        4,
        "refused:approvals",
    ),
    (
        "other-host",
        lambda p, kp: _write(p.parent, kp, host=Host("f" * 32, "db9")),
        4,
        "refused:host",
    ),
    (
        "extra-o",
        lambda p, kp: _write(
            p.parent,
            kp,
            argv=(
                "/usr/bin/apt-get",
                "install",
                "--trivial-only",
                "-o",
                "APT::Get::Assume-Yes=1",
                "--",
                "aegis-base=1.2",
                "aegis-tool=1.0",
            ),
        ),
        4,
        "refused:argv",
    ),
    (
        "signed-deny",
        lambda p, kp: _tamper(p, lambda d: d["policy"].update(decision="deny")),
        4,
        "refused:signature",
    ),
]


@freeze_time("2026-11-26T12:10:00Z")
@pytest.mark.parametrize(
    ("name", "attack", "code", "refusal"), ATTACKS, ids=[a[0] for a in ATTACKS]
)
def test_verify_refuses_attacks(
    tmp_path: Path,
    kp: dict[str, Any],
    aegis_home: Path,
    name: str,
    attack: Any,
    code: int,
    refusal: str,
) -> None:
    path = attack(_write(tmp_path, kp), kp)
    result = _verify(path, kp, "--json")
    assert result.exit_code == code, result.output
    doc = json.loads(result.stdout)
    assert doc["ok"] is False
    assert doc["refusal"] == refusal
    assert f"Error: {refusal}:" in result.stderr
    # Every check is listed with its outcome; the failing one says why.
    steps = [c["step"] for c in doc["checks"]]
    if refusal != "refused:malformed":
        assert steps == [
            "parse",
            "signature",
            "host",
            "time-window",
            "execution-id",
            "approvals",
            "rederivation",
            "policy",
            "argv",
        ]
    failed = [c for c in doc["checks"] if c["refusal"] == refusal]
    assert failed, doc["checks"]
    assert failed[0]["ok"] is False
    assert failed[0]["detail"].startswith(f"{refusal}: ")


@pytest.mark.parametrize(
    ("at", "refusal"),
    [
        ("2026-11-26T13:00:01Z", "refused:expired"),
        ("2026-11-26T11:55:00Z", "refused:not-yet-valid"),
    ],
    ids=["expired", "future-created"],
)
def test_verify_time_window(
    tmp_path: Path, kp: dict[str, Any], aegis_home: Path, at: str, refusal: str
) -> None:
    path = _write(
        tmp_path,
        kp,
        approvals=(),
        policy=signing.binding(decision="allow", controls=(), required_approvals=0),
    )
    with freeze_time(at):
        result = _verify(path, kp)
    assert result.exit_code == 4
    row = next(line for line in result.stdout.splitlines() if "time-window" in line)
    assert "✗" in row
    assert refusal in row


@freeze_time("2026-11-26T12:10:00Z")
def test_verify_no_host_check(tmp_path: Path, kp: dict[str, Any], aegis_home: Path) -> None:
    path = _write(tmp_path, kp, host=Host("f" * 32, "db9"))
    assert _verify(path, kp, "--no-host-check").exit_code == 0


def test_snapshot_check_json(aegis_home: Path) -> None:
    result = _ctl("snapshot", "check", "--json")
    doc = json.loads(result.stdout)
    names = [c["name"] for c in doc["checks"]]
    assert names == ["replaced-packages", "dpkg-status", "rollback-cache", "free-space"]
    assert result.exit_code == (0 if doc["ok"] else 7)


def test_commands_have_help_with_example() -> None:
    for name in ("keygen", "approve", "sign", "verify", "snapshot"):
        result = _ctl(name, "--help")
        assert result.exit_code == 0
        assert "Example" in result.stdout


def test_python_m_verify_malformed(tmp_path: Path, aegis_home: Path) -> None:
    bad = tmp_path / "x.json"
    bad.write_text('{"a":1,"a":2}')
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            "from aegis.cli.aegisctl import main; main()",
            "verify",
            "--execution-plan",
            str(bad),
            "--public-key-hex",
            "0" * 64,
        ],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ},
    )
    assert proc.returncode == 3, proc.stderr
    assert "refused:malformed" in proc.stderr
