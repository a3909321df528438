"""More attacks on aegisd, beyond issue 5's table: each refused by name, audited, nothing run.

One throwaway root and one aegisd serve the whole module (the attacks never change
the root); attacks on aegisd's own directory get a daemon of their own.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import socket
import struct
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from aegis.devtools.sample_plans import sample_plan
from aegis.execute.ledger import Ledger
from aegis.execute.protocol import REQUEST_SCHEMA, Request, call
from aegis.model import Plan, plan_hash
from aegis.sign import keys
from aegis.sign.approvals import build_approval
from aegis.sign.execution_plan import (
    PolicyBinding,
    execution_plan_body,
    execution_plan_bytes,
    parse_execution_plan,
)

from .chain_helpers import Chain, apply_argv, make_chain
from .conftest import Daemon, Keys, sign_plan

pytestmark = pytest.mark.root

NOBODY = 65534


@dataclass
class Setup:
    chain: Chain
    daemon: Daemon
    keys: Keys


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Setup]:
    base = tmp_path_factory.mktemp("attacks-more")
    kd = base / "keys"
    sp, spub = keys.write_keypair(kd, "signer")
    ap, apub = keys.write_keypair(kd, "approver")
    # A second *signer*: trusted by aegisd to sign plans, never to approve them.
    op, opub = keys.write_keypair(kd, "signer", name="signer2")
    key_set = Keys(sp, spub, ap, apub, op, opub)
    chain = make_chain(base, key_set)
    sock_dir = Path(tempfile.mkdtemp(prefix="aegisd-", dir="/tmp"))
    sock_dir.chmod(0o755)
    args = ["--public-key-hex", spub, "--public-key-hex", opub]
    args += ["--approval-public-key-hex", apub]
    d = Daemon(chain.home, sock_dir / "d.sock", chain.env, args, base / "aegisd.log").start()
    try:
        yield Setup(chain, d, key_set)
    finally:
        d.stop()
        shutil.rmtree(sock_dir, ignore_errors=True)


def _refused(s: Setup, data: bytes, code: str, reason: str) -> None:
    """Submit ``data``: the named refusal, one audit event saying why, nothing run."""
    status = s.chain.root.status.read_bytes()
    events = len(s.daemon.audit_events())
    answer = s.daemon.submit(data)
    assert (answer.ok, answer.refusal) == (False, code), answer
    assert reason in answer.message, answer
    new = s.daemon.audit_events()[events:]
    assert [e["kind"] for e in new] == ["apply-refused"], new
    assert new[0]["decision"]["rule_ids"] == [code]
    assert any(reason in r for r in new[0]["decision"]["reasons"]), new[0]
    xid = json.loads(data)["execution_id"]
    assert Ledger(s.daemon.cfg.ledger_path).lookup(xid) is None
    assert s.chain.root.status.read_bytes() == status, "dpkg state changed"


def _bound(s: Setup, plan: Plan) -> Plan:
    from aegis.execute.apply import this_host

    return replace(plan, host=this_host(s.chain.cfg))


def _approval(s: Setup, plan: Plan, **kw: Any) -> Any:
    args: dict[str, Any] = {
        "plan_id": plan.plan_id,
        "plan_hash": plan_hash(_bound(s, plan)),
        "policy_hash": "1" * 64,
        "approver_id": "bob",
        "role": "approver",
        "reason": "change 42",
        "now": datetime.now(UTC),
        "expires_in": timedelta(hours=1),
        "key": s.keys.approver,
    }
    args.update(kw)
    return build_approval(**args)


def _needs(count: int) -> PolicyBinding:
    return PolicyBinding("1" * 64, "require-approval", "t", ("approval",), count, (), ())


# -- approvals ---------------------------------------------------------------------------


def test_one_approver_twice_never_makes_two_approvals(setup: Setup) -> None:
    plan = sample_plan("p-twice")
    # Two approval documents by the same key under two names, toward a count of 2.
    twice = (_approval(setup, plan), _approval(setup, plan, approver_id="bob2", reason="again"))
    data = sign_plan(setup.chain.cfg, plan, setup.keys.signer, approvals=twice, policy=_needs(2))
    _refused(setup, data, "refused:approvals", "duplicate-approver")
    # The very same approval repeated.
    one = _approval(setup, plan)
    data = sign_plan(
        setup.chain.cfg, plan, setup.keys.signer, approvals=(one, one), policy=_needs(2)
    )
    _refused(setup, data, "refused:approvals", "duplicate-approver")


def test_a_trusted_signer_key_is_no_approver_key(setup: Setup) -> None:
    """The approval says role "approver", but its key is only in aegisd's signer trust."""
    plan = sample_plan("p-role")
    approval = _approval(setup, plan, key=setup.keys.other)
    data = sign_plan(
        setup.chain.cfg, plan, setup.keys.signer, approvals=(approval,), policy=_needs(1)
    )
    _refused(setup, data, "refused:approvals", "untrusted-key")


def test_an_approver_claiming_a_role_it_was_not_granted_does_not_count(
    setup: Setup, tmp_path: Path
) -> None:
    """The policy wants a security approval; bob's key is trusted as an approver only."""
    plan = sample_plan("p-claimed-role")
    approval = _approval(setup, plan, role="security")
    security = PolicyBinding("1" * 64, "require-approval", "t", ("approval",), 1, ("security",), ())
    data = sign_plan(
        setup.chain.cfg, plan, setup.keys.signer, approvals=(approval,), policy=security
    )
    _refused(setup, data, "refused:approvals", "role-not-granted")
    # An aegisd that grants bob's key the role lets the approval count: the plan gets past
    # the approvals step and is stopped only where this sample plan must be, at re-derivation.
    sock_dir = Path(tempfile.mkdtemp(prefix="aegisd-", dir="/tmp"))
    args = ["--public-key-hex", setup.keys.signer_pub]
    args += ["--approval-public-key-hex", f"security:{setup.keys.approver_pub}"]
    granted = Daemon(
        setup.chain.home, sock_dir / "g.sock", setup.chain.env, args, tmp_path / "g.log"
    )
    try:
        answer = granted.start().submit(data)
    finally:
        granted.stop()
        shutil.rmtree(sock_dir, ignore_errors=True)
    assert (answer.ok, answer.refusal) == (False, "refused:rederivation"), answer


def test_the_signer_approving_with_another_key_of_their_own_does_not_count(
    setup: Setup,
) -> None:
    """alice signs; the approval is by a trusted approver key, but in alice's own name."""
    plan = sample_plan("p-self")
    approval = _approval(setup, plan, approver_id="alice")
    data = sign_plan(
        setup.chain.cfg, plan, setup.keys.signer, approvals=(approval,), policy=_needs(1)
    )
    assert parse_execution_plan(data).signer_id == "alice"
    _refused(setup, data, "refused:approvals", "self-approval")


def test_approval_of_this_plan_under_another_policy_result(setup: Setup) -> None:
    plan = sample_plan("p-policy")
    approval = _approval(setup, plan, policy_hash="2" * 64)
    data = sign_plan(
        setup.chain.cfg, plan, setup.keys.signer, approvals=(approval,), policy=_needs(1)
    )
    _refused(setup, data, "refused:approvals", "other-policy")


def test_approval_expired_inside_a_longer_plan_window(setup: Setup) -> None:
    """A rogue signer stretches the plan past its approval's end: the approval still ends."""
    plan = sample_plan("p-stretch")
    now = datetime.now(UTC)
    approval = _approval(
        setup, plan, now=now - timedelta(minutes=50), expires_in=timedelta(minutes=45)
    )
    data = sign_plan(
        setup.chain.cfg,
        plan,
        setup.keys.signer,
        approvals=(approval,),
        policy=_needs(1),
        now=now - timedelta(minutes=50),
    )
    ep = parse_execution_plan(data)
    assert ep.expires_at == approval.expires_at  # the builder capped it; undo that
    stretched = replace(ep, expires_at=(now + timedelta(minutes=30)).strftime("%Y-%m-%dT%H:%M:%SZ"))
    stretched = replace(
        stretched,
        signature_hex=keys.sign_canonical(execution_plan_body(stretched), setup.keys.signer),
    )
    _refused(setup, execution_plan_bytes(stretched), "refused:approvals", "expired at")


# -- targets and argv ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("target", "reason"),
    [
        ("-oDpkg::Pre-Invoke::=touch /tmp/aegis-pwned", "starts with '-'"),
        ("--config-file=/tmp/evil.conf", "starts with '-'"),
        ("aegis-tool=1.0=2", "is not a Debian package name"),
        ("\u0430egis-tool", "lookalike names are refused"),  # Cyrillic a
        ("aegis\uff0dtool", "lookalike names are refused"),  # fullwidth hyphen
    ],
    ids=["dpkg-pre-invoke", "config-file", "double-equals", "cyrillic", "fullwidth"],
)
def test_rogue_signer_with_hostile_target_is_refused_at_rederivation(
    setup: Setup, target: str, reason: str
) -> None:
    """A trusted signer signs a self-consistent plan whose package name is an option.

    Its argv is what derive_argv makes of it (behind ``--``), so the argv check alone
    would pass: aegisd's own analysis of the signed intent refuses the name.
    """
    plan = sample_plan("p-hostile", targets=(target,))
    # derive_argv names no file for such a package (nothing runs); a rogue signer signs
    # the argv it likes, behind ``--``.
    argv = ("/usr/bin/apt-get", "install", "--trivial-only", "--", f"{target}=1.0")
    data = sign_plan(setup.chain.cfg, plan, setup.keys.signer, argv=argv)
    assert b"--" in data
    _refused(setup, data, "refused:rederivation", reason)
    assert not Path("/tmp/aegis-pwned").exists()


@pytest.mark.parametrize(
    "target",
    ["../../../tmp/evil.deb", "aegis-tool/unstable"],
    ids=["dot-dot-path", "slash"],
)
def test_rogue_signer_with_path_shaped_target_is_refused(setup: Setup, target: str) -> None:
    """A path-shaped name is analysed as a direct .deb, never as the signed package."""
    plan = sample_plan("p-path", targets=(target,))
    argv = ("/usr/bin/apt-get", "install", "--trivial-only", "--", f"{target}=1.0")
    data = sign_plan(setup.chain.cfg, plan, setup.keys.signer, argv=argv)
    _refused(setup, data, "refused:rederivation", "re-derived plan differs")


def test_rogue_signer_cannot_add_a_target_the_intent_does_not_name(setup: Setup) -> None:
    """The intent names one package; the signed delta carries a second, hostile one."""
    plan = sample_plan("p-extra", targets=("aegis-tool", "aegis-hostile"))
    plan = replace(plan, intent=replace(plan.intent, targets=("aegis-tool",)))
    data = sign_plan(setup.chain.cfg, plan, setup.keys.signer)
    _refused(setup, data, "refused:rederivation", "re-derived plan differs")


# -- frames ---------------------------------------------------------------------------------


def _raw(path: Path, body: bytes) -> dict[str, Any]:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(str(path))
    s.sendall(struct.pack(">I", len(body)) + body)
    s.settimeout(30)
    head = b""
    while len(head) < 4:
        head += s.recv(4 - len(head))
    (n,) = struct.unpack(">I", head)
    out = b""
    while len(out) < n:
        out += s.recv(n - len(out))
    s.close()
    answer: dict[str, Any] = json.loads(out)
    return answer


def test_deeply_nested_frame_under_the_size_cap_is_refused(setup: Setup) -> None:
    depth = 200_000
    answer = _raw(setup.daemon.socket, b"[" * depth + b"]" * depth)
    assert (answer["ok"], answer["refusal"]) == (False, "refused:malformed"), answer
    assert "nested too deeply" in answer["message"]
    assert setup.daemon.audit_events()[-1]["decision"]["rule_ids"] == ["refused:malformed"]


def test_deeply_nested_execution_plan_inside_a_valid_frame_is_refused(setup: Setup) -> None:
    depth = 200_000
    body = json.dumps(
        {
            "schema_version": REQUEST_SCHEMA,
            "op": "apply",
            "execution_plan": "[" * depth + "]" * depth,
        }
    ).encode()
    answer = _raw(setup.daemon.socket, body)
    assert (answer["ok"], answer["refusal"]) == (False, "refused:malformed"), answer
    assert "nested too deeply" in answer["message"]


@pytest.mark.parametrize("key", ["env", "apt_config", "public_key_hex"])
def test_a_client_cannot_hand_aegisd_an_environment_or_key(setup: Setup, key: str) -> None:
    data = sign_plan(setup.chain.cfg, sample_plan("p-env"), setup.keys.signer)
    body = json.dumps(
        {
            "schema_version": REQUEST_SCHEMA,
            "op": "apply",
            "execution_plan": data.decode(),
            key: {"APT_CONFIG": "/tmp/evil.conf"} if key == "env" else "/tmp/evil.conf",
        }
    ).encode()
    answer = _raw(setup.daemon.socket, body)
    assert (answer["ok"], answer["refusal"]) == (False, "refused:malformed"), answer
    assert f"unknown request key(s): {key}" in answer["message"]
    assert Ledger(setup.daemon.cfg.ledger_path).lookup(json.loads(data)["execution_id"]) is None


def test_socket_is_not_reachable_by_others(setup: Setup) -> None:
    st = setup.daemon.socket.stat()
    assert st.st_mode & 0o777 == 0o660
    assert st.st_uid == 0


# -- aegisd's own directory in the group-writable store -----------------------------------


def _store_dir(home: Path) -> Path:
    """``<home>/var/lib/aegis`` as on a host: group-writable, no sticky bit."""
    state = home / "var/lib/aegis"
    state.mkdir(parents=True, exist_ok=True)
    os.chown(state, 0, NOBODY)
    state.chmod(0o2770)
    return state


def _theirs(path: Path) -> Path:
    path.mkdir(parents=True)
    os.chown(path, NOBODY, NOBODY)
    return path


@pytest.mark.parametrize("how", ["symlink", "their-directory"])
def test_aegisd_refuses_to_start_in_a_directory_a_group_member_planted(
    make_daemon: Any, tmp_path: Path, how: str
) -> None:
    home = tmp_path / "home"
    state = _store_dir(home)
    mine = _theirs(tmp_path / "mine")
    if how == "symlink":
        (state / "aegisd").symlink_to(mine)
        reason = "is a symbolic link"
    else:
        os.rename(mine, state / "aegisd")
        mine = state / "aegisd"
        reason = f"belongs to uid {NOBODY}"
    with pytest.raises(RuntimeError, match="aegisd exited") as info:
        make_daemon(home=home)
    assert reason in str(info.value)
    # Nothing of aegisd's landed where the member can read it: no ledger, no audit key.
    assert list(mine.iterdir()) == []


def test_aegisd_refuses_to_forget_its_ledger_when_its_directory_was_moved_aside(
    make_daemon: Any, key_set: Keys, tmp_path: Path
) -> None:
    home = tmp_path / "home"
    state = _store_dir(home)
    d = make_daemon(home=home)
    xid = secrets.token_hex(16)
    assert call(str(d.socket), Request(op="revoke", execution_id=xid, reason="window")).ok
    d.stop()
    os.rename(state / "aegisd", state / "aegisd.old")  # what any aegis member may do
    with pytest.raises(RuntimeError, match="is missing but the audit log"):
        d.start()
    assert not (state / "aegisd").exists()


def test_a_directory_swapped_while_aegisd_runs_is_refused_and_audited(
    make_daemon: Any, key_set: Keys, tmp_path: Path
) -> None:
    home = tmp_path / "home"
    state = _store_dir(home)
    d = make_daemon(home=home)
    xid = secrets.token_hex(16)
    assert call(str(d.socket), Request(op="revoke", execution_id=xid, reason="window")).ok
    revoked = sign_plan(d.cfg, sample_plan("p1"), key_set.signer, execution_id=xid)
    os.rename(state / "aegisd", state / "aegisd.old")
    mine = _theirs(state / "aegisd")
    planted = Ledger(mine / "ledger.db")  # a fresh ledger that forgot the revocation
    os.chown(planted.path, NOBODY, NOBODY)
    events = len(d.audit_events())
    answer = d.submit(revoked)
    assert (answer.ok, answer.refusal) == (False, "refused:environment"), answer
    assert f"belongs to uid {NOBODY}" in answer.message
    [event] = d.audit_events()[events:]
    assert (event["kind"], event["decision"]["rule_ids"]) == (
        "apply-refused",
        ["refused:environment"],
    )
    status = call(str(d.socket), Request(op="status", execution_id=xid))
    assert (status.ok, status.refusal) == (False, "refused:environment")
    assert planted.entries() == []
    assert sorted(p.name for p in mine.iterdir()) == ["ledger.db"]
    # Put back, aegisd carries on with its own ledger: the id is still revoked.
    shutil.rmtree(mine)
    os.rename(state / "aegisd.old", state / "aegisd")
    answer = d.submit(revoked)
    assert (answer.ok, answer.refusal) == (False, "refused:revoked"), answer


# -- files aegisd reads from the group-writable store -------------------------------------


def _sign_with_review(s: Setup, plan: Plan, argv: tuple[str, ...]) -> bytes:
    """A genuine signing of ``plan`` that names a review, with ``argv`` as given."""
    from aegis.execute.apply import binding_from_result
    from aegis.policy.engine import evaluate
    from aegis.policy.result import result_hash
    from aegis.policy.run import load_policy
    from aegis.sign.execution_plan import build_execution_plan

    now = datetime.now(UTC)
    result = evaluate(plan, None, load_policy(s.chain.cfg), now)
    approvals: tuple[Any, ...] = ()
    if result.controls.approval.count:
        approvals = (_approval(s, plan, policy_hash=result_hash(result)),)
    ep = build_execution_plan(
        execution_id=secrets.token_hex(16),
        request_id=None,
        plan=plan,
        policy=binding_from_result(result),
        review_hash="ab" * 32,
        approvals=approvals,
        argv=argv,
        now=now,
        expires_in=timedelta(hours=1),
        signer_id="alice",
        key=s.keys.signer,
    )
    return execution_plan_bytes(ep)


@pytest.mark.parametrize("planted", ["fifo", "dev-zero-link"])
def test_a_planted_review_file_neither_hangs_nor_exhausts_aegisd(
    setup: Setup, planted: str
) -> None:
    """aegisd reads ``reviews/<plan_id>.review.json``; any aegis member can plant it."""
    from aegis.ecosystems.apt.argv import derive_argv

    plan = setup.chain.plan("aegis-tool")
    argv = derive_argv(plan, dpkg_root=setup.chain.cfg.dpkg_root)
    # Refused at the last step, after the policy step has looked for the review.
    data = _sign_with_review(setup, plan, (argv[0], "-o", "Debug::NoLocking=1", *argv[1:]))
    review = setup.chain.cfg.reviews_dir / f"{plan.plan_id}.review.json"
    review.parent.mkdir(parents=True, exist_ok=True)
    if planted == "fifo":
        os.mkfifo(review)
    else:
        review.symlink_to("/dev/zero")
    try:
        _refused(setup, data, "refused:argv", "Debug::NoLocking=1")
    finally:
        review.unlink()


def test_aegisctl_sign_of_a_planted_fifo_exits_3_at_once(setup: Setup) -> None:
    """A member of ``aegis`` swapped the plan file for a FIFO: sign must not wait on it."""
    from .chain_helpers import AEGISCTL, run_cli

    plans = setup.chain.cfg.plans_dir
    plans.mkdir(parents=True, exist_ok=True)
    fifo = plans / "p-fifo.json"
    os.mkfifo(fifo)
    try:
        proc = run_cli(
            [
                *AEGISCTL,
                "sign",
                "--plan",
                str(fifo),
                "--key",
                str(setup.keys.signer_path),
                "--signer",
                "alice",
            ],
            setup.chain.env,
            ok=False,
        )
    finally:
        fifo.unlink()
    assert proc.returncode == 3, proc.stderr
    assert "is not a regular file" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_aegisd_never_opens_a_planted_store_link_as_root(setup: Setup, tmp_path: Path) -> None:
    """The review is not in its file, so aegisd may look in the store; ``state.db`` is a
    link a member planted to a root-owned database: aegisd must not migrate it."""
    import sqlite3

    from aegis.ecosystems.apt.argv import derive_argv

    victim = tmp_path / "victim.db"
    with sqlite3.connect(victim) as db:
        db.execute("CREATE TABLE precious (x)")
    db.close()
    before = victim.read_bytes()
    store = setup.chain.cfg.store_path
    store.parent.mkdir(parents=True, exist_ok=True)
    aside = store.with_name("state.db.aside")
    if store.exists():
        os.rename(store, aside)
    store.symlink_to(victim)
    plan = setup.chain.plan("aegis-tool")
    argv = derive_argv(plan, dpkg_root=setup.chain.cfg.dpkg_root)
    data = _sign_with_review(setup, plan, (argv[0], "-o", "Debug::NoLocking=1", *argv[1:]))
    try:
        _refused(setup, data, "refused:argv", "Debug::NoLocking=1")
    finally:
        store.unlink()
        if aside.exists():
            os.rename(aside, store)
    assert victim.read_bytes() == before
    assert not Path(f"{victim}-wal").exists()


# -- time window --------------------------------------------------------------------------


def _resigned(s: Setup, data: bytes, **fields: str) -> bytes:
    ep = replace(parse_execution_plan(data), **fields)
    ep = replace(ep, signature_hex=keys.sign_canonical(execution_plan_body(ep), s.keys.signer))
    return execution_plan_bytes(ep)


def _at(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def test_a_validity_stretched_past_the_cap_is_refused(setup: Setup) -> None:
    """A rogue signer's tool writes a month-long window; aegisd caps it, whoever signed."""
    data = sign_plan(setup.chain.cfg, sample_plan("p-ttl"), setup.keys.signer)
    month = _resigned(setup, data, expires_at=_at(datetime.now(UTC) + timedelta(days=30)))
    _refused(setup, month, "refused:expired", "validity is longer than the 1 day, 0:00:00 cap")


def test_clock_skew_of_seconds_is_tolerated_minutes_are_not(setup: Setup) -> None:
    now = datetime.now(UTC)
    ahead = sign_plan(
        setup.chain.cfg, sample_plan("p-skew"), setup.keys.signer, now=now + timedelta(seconds=20)
    )
    # Past the time window (a sample plan is then refused by aegisd's own analysis).
    _refused(setup, ahead, "refused:rederivation", "re-derived plan differs")
    later = sign_plan(
        setup.chain.cfg, sample_plan("p-skew"), setup.keys.signer, now=now + timedelta(minutes=3)
    )
    _refused(setup, later, "refused:not-yet-valid", "in the future")


def test_a_signer_cannot_skip_content_inspection_to_hide_a_hostile_script(setup: Setup) -> None:
    """The signed plan says "contents not inspected", so aegisd does not inspect either;
    policy then asks for an approval (contents not inspected), and a relabelled allow is refused."""
    from aegis.ecosystems.apt.plan import analyze_apt
    from aegis.execute.apply import binding_from_result
    from aegis.model import Intent, Operation, Tool
    from aegis.policy.engine import evaluate
    from aegis.policy.run import load_policy

    cfg = setup.chain.cfg
    intent = Intent(
        Tool.APT, Operation.INSTALL, ("aegis-hostile",), "tester", _at(datetime.now(UTC))
    )
    plan = analyze_apt(cfg, intent, datetime.now(UTC), inspect_contents=False)
    assert not plan.content_inspected
    assert plan.findings == ()
    result = evaluate(plan, None, load_policy(cfg), datetime.now(UTC))
    assert result.decision.value != "allow", [f.rule_id for f in result.fired]
    binding = replace(
        binding_from_result(result),
        decision="allow",
        controls=(),
        required_approvals=0,
        required_roles=(),
    )
    data = sign_plan(cfg, plan, setup.keys.signer, policy=binding)
    _refused(setup, data, "refused:policy", "re-evaluation says require-approval, signed allow")


def test_aegisctl_apply_never_writes_its_result_through_a_planted_link(
    tmp_path: Path, sock_dir: Path
) -> None:
    """The execution id is readable in the store before apply; the result's name follows
    from it. A member plants a link there to a file the applying operator (root) owns."""
    from .chain_helpers import run_cli, signed_request

    sr = signed_request(tmp_path)
    d = Daemon(
        sr.home, sock_dir / "r.sock", sr.env, ["--public-key-hex", sr.signer_pub], tmp_path / "log"
    ).start()
    try:
        xid = parse_execution_plan(sr.execution_plan.read_bytes()).execution_id
        results = d.cfg.state_dir / "results"
        results.mkdir(parents=True, exist_ok=True)
        victim = tmp_path / "victim"
        victim.write_text("root:x:0:0:root:/root:/bin/bash\n")
        for name in (f".{xid}.result.json.tmp", f".{xid}.result.json.1.tmp"):
            (results / name).symlink_to(victim)
        run_cli(
            apply_argv(sr.execution_plan, sr.signer_pub, d.socket),
            sr.env,
        )
    finally:
        d.stop()
    assert victim.read_text() == "root:x:0:0:root:/root:/bin/bash\n"
    result = results / f"{xid}.result.json"
    assert not result.is_symlink()
    assert json.loads(result.read_text())["execution_id"] == xid
