"""The operator guide, step by step, on one booted host (packaging/README.md "On a host").

Every step runs once per boot and keeps its :class:`~tests.system.booted.Result`; the tests
then assert on the recorded results, so one boot serves every check and a failing step
does not hide the ones after it. Steps that depend on an earlier one record why they
could not run instead of raising.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from pathlib import Path

from tests.system import fixtures
from tests.system.booted import Host, Result, quote, wheelhouse

CHECKOUT = Path(__file__).resolve().parents[2]
CLONE = "/root/aegis"
WHEELS = "/root/aegis-wheels"
KEYS = "~/keys"
OPERATOR = "ops"  # Debian already has a group called "operator"

MONITOR_WHY = (
    " || { systemctl status aegis-monitor.service --no-pager;"
    " journalctl -u aegis-monitor.service -n 40 --no-pager; exit 1; }"
)
"""Appended to a monitor start: when it fails, the check's output says why (status, journal)."""

MONITOR_START = (
    "systemctl start aegis-monitor.service || {"
    ' [ "$(systemctl show -p ExecMainStatus --value aegis-monitor.service)" = 219 ]'
    " && systemctl reset-failed aegis-monitor.service"
    " && systemctl start aegis-monitor.service; }"
)
"""Start one monitor pass; once more only when systemd could not put it in its cgroup.

Exit status 219 (systemd's EXIT_CGROUP) means the unit failed before ``aegis monitor``
ran: on a loaded CI host the container's systemd at times cannot remove the last run's
cgroup ("Failed to kill control group ... Input/output error"). Any other failure is
the monitor's own and fails the check."""

# The monitor's state once no pass is running: the timer (OnBootSec=2min) may start one of
# its own right after ours.
MONITOR_SETTLED = (
    "for i in $(seq 300); do"
    ' [ "$(systemctl show -p ActiveState --value aegis-monitor.service)" = activating ]'
    " || break; sleep 0.2; done;"
    " systemctl show -p ActiveState -p Result aegis-monitor.service"
)
UNITS = "aegis-reviewd.service aegisd.service aegis-monitor.service aegis-monitor.timer"


def _not_run(cmd: str, why: str) -> Result:
    return Result(cmd, "-", -1, "", f"not run: {why}")


def _json(result: Result) -> dict[str, object] | None:
    try:
        data = json.loads(result.stdout)
    except ValueError:
        return None
    return data if isinstance(data, dict) else None


MCP_SESSION = """
import json, sys
import anyio
from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client

async def main():
    params = StdioServerParameters(command="aegis", args=["mcp"])
    async with stdio_client(params) as (r, w), ClientSession(r, w) as agent:
        await agent.initialize()
        out = {"tools": [t.name for t in (await agent.list_tools()).tools]}
        plan = await agent.call_tool("plan", {"targets": [sys.argv[1]], "contents": False})
        out["plan_error"] = plan.is_error
        doc = plan.structured_content or {}
        out["request_id"] = doc.get("request_id")
        if not plan.is_error:
            path = doc["plan_path"]
            review = await agent.call_tool("review", {"plan": path})
            out["review_state"] = (review.structured_content or {}).get("state")
            decided = await agent.call_tool("policy", {"plan": path})
            out["decision"] = ((decided.structured_content or {}).get("result") or {}).get(
                "decision"
            )
            shown = await agent.call_tool("show", {"request": doc["request_id"]})
            out["state"] = ((shown.structured_content or {}).get("request") or {}).get("state")
        print(json.dumps(out))

anyio.run(main)
"""
"""What the agent runs in the booted host: an MCP session through the SDK's own client."""


class Steps(dict[str, Result]):
    """Recorded steps; a step that never ran reads as a failed one that says so."""

    def __missing__(self, name: str) -> Result:
        return _not_run(name, "an earlier step failed")


class Scenario:
    """The recorded run of the operator guide on ``host``."""

    def __init__(self, host: Host, workdir: Path) -> None:
        self.host = host
        self.workdir = workdir
        self.r = Steps()
        self.timings: dict[str, float] = {}

    def step(self, name: str, cmd: str, *, user: str = "root", timeout: float = 300) -> Result:
        """Run and record one step."""
        start = time.monotonic()
        result = self.host.run(cmd, user=user, timeout=timeout)
        self.timings[name] = time.monotonic() - start
        self.r[name] = result
        return result

    # -- the operator installs (as root) -------------------------------------------------

    def install(self) -> None:
        """git clone of the checkout, the wheelhouse, install-native.sh (twice: idempotent)."""
        clone = self.host.path(CLONE)
        subprocess.run(
            ["git", "clone", "--quiet", "--no-hardlinks", str(CHECKOUT), str(clone)], check=True
        )
        # Uncommitted work of a developer's checkout rides along; CI's checkout is clean.
        diff = subprocess.run(
            ["git", "-C", str(CHECKOUT), "diff", "HEAD", "--binary"],
            capture_output=True,
            check=True,
        ).stdout
        if diff:
            subprocess.run(["git", "-C", str(clone), "apply", "-"], input=diff, check=True)
        shutil.copytree(
            wheelhouse(self.host.release, CHECKOUT / "pyproject.toml"), self.host.path(WHEELS)
        )
        cmd = f"{CLONE}/packaging/install-native.sh --wheelhouse {WHEELS}"
        self.step("install", cmd, timeout=600)
        self.step("install_again", cmd, timeout=600)
        self.step("failed_after_install", "systemctl --failed --no-legend --plain")

    def users(self) -> None:
        """An agent in group aegis, an operator (ops) in aegis and aegis-apply, an outsider."""
        self.step(
            "users",
            "useradd -m -s /bin/bash agent && adduser --quiet agent aegis"
            " && useradd -m -s /bin/bash ops && adduser --quiet ops aegis"
            " && adduser --quiet ops aegis-apply && useradd -m -s /bin/bash outsider",
        )

    def repository(self, dest: Path) -> None:
        """The operator adds the signed test repository as an apt source."""
        repo = fixtures.build(dest)
        shutil.copytree(repo.path, self.host.path(fixtures.REPO_DIR))
        shutil.copyfile(repo.key_path, self.host.path(fixtures.KEYRING))
        self.host.path(fixtures.KEYRING).chmod(0o644)
        self.host.path("/etc/apt/sources.list.d/aegis-test.sources").write_text(
            fixtures.sources_file()
        )
        self.step("apt_update", "apt-get update -qq", timeout=300)
        # Approving a source: `aegis policy sources --approve-configured` prints the
        # [[sources]] entries it writes; the test repository's is written by hand here so
        # the rest of the guide does not wait on that command.
        with self.host.path("/etc/aegis/policy.toml").open("a") as policy:
            policy.write(fixtures.policy_source(repo))
        self.step("policy_check", "aegis policy check")

    def keys(self) -> None:
        """The operator's signer and approver keys; root trusts their public halves."""
        self.step(
            "keygen",
            f"aegisctl keygen --out {KEYS} --role signer --name alice"
            f" && aegisctl keygen --out {KEYS} --role approver --name bob",
            user=OPERATOR,
        )
        self.step(
            "trust_keys",
            "install -m 0644 ~ops/keys/alice.pub /etc/aegis/keys/signers/alice.pub"
            " && install -m 0644 ~ops/keys/bob.pub /etc/aegis/keys/approvers/bob.pub"
            " && systemctl restart aegisd.service",
        )

    # -- the agent (group aegis) ---------------------------------------------------------

    def agent_readiness(self) -> None:
        """The contract's readiness checks, as the agent."""
        self.step("agent_verify_native", "aegis-verify-native", user="agent")
        self.step("agent_status", f"systemctl status {UNITS} --no-pager", user="agent")
        self.step("agent_doctor", "aegis doctor", user="agent")
        self.step("agent_audit_verify_empty", "aegis audit verify", user="agent")
        self.step("root_doctor", "aegis doctor")
        self.step("root_verify_native", f"{CLONE}/packaging/verify-native.sh")

    def agent_plan(self, package: str, prefix: str) -> str | None:
        """``aegis apt install PKG --plan``, ``aegis review``, ``aegis policy``; the plan path."""
        plan = self.step(
            f"{prefix}_plan", f"aegis apt install {package} --plan --json", user="agent"
        )
        data = _json(plan)
        path = data.get("plan_path") if data else None
        if not isinstance(path, str):
            for step in ("review", "policy"):
                self.r[f"{prefix}_{step}"] = _not_run(step, "no plan")
            return None
        self.step(f"{prefix}_review", f"aegis review {quote(path)} --json", user="agent")
        self.step(f"{prefix}_policy", f"aegis policy {quote(path)} --json", user="agent")
        self.step(f"{prefix}_requests", "aegis requests --json", user="agent")
        return path

    def agent_mcp(self, package: str) -> None:
        """The agent's MCP session: the SDK's client starts ``aegis mcp`` as the agent."""
        script = self.host.path("/usr/local/share/aegis-mcp-session.py")
        script.parent.mkdir(parents=True, exist_ok=True)
        script.write_text(MCP_SESSION)
        script.chmod(0o644)
        self.step(
            "agent_mcp",
            f"/opt/aegis/venv/bin/python3 -I /usr/local/share/aegis-mcp-session.py {package}",
            user="agent",
        )

    def outsider(self) -> None:
        """A user outside group aegis: exit 7 with a hint, never an internal error."""
        self.step("outsider_doctor", "aegis doctor", user="outsider")
        self.step("outsider_plan", "aegis apt install aegis-svc --plan", user="outsider")
        self.step("outsider_verify_native", "aegis-verify-native", user="outsider")

    # -- the operator applies (aegis-apply) ---------------------------------------------

    def operator_apply(self, plan: str | None, prefix: str) -> str | None:
        """Approve, sign, apply through aegisd.socket; the request id."""
        if plan is None:
            for step in ("approve", "sign", "apply"):
                self.r[f"{prefix}_{step}"] = _not_run(step, "no plan")
            return None
        self.step(
            f"{prefix}_approve",
            f"aegisctl approve {quote(plan)} --reason 'booted-host test'"
            f" --key {KEYS}/bob.key --approver bob",
            user=OPERATOR,
        )
        sign = self.step(
            f"{prefix}_sign",
            f"aegisctl sign --plan {quote(plan)} --key {KEYS}/alice.key --signer alice --json",
            user=OPERATOR,
        )
        data = _json(sign)
        ep = data.get("path") if data else None
        request_id = data.get("request_id") if data else None
        if not isinstance(ep, str):
            self.r[f"{prefix}_apply"] = _not_run("apply", "no execution plan")
            return None
        self.step(
            f"{prefix}_apply",
            f"aegisctl apply --execution-plan {quote(ep)}"
            f' --public-key-hex "$(cat {KEYS}/alice.pub)"',
            user=OPERATOR,
            timeout=600,
        )
        return request_id if isinstance(request_id, str) else None

    def after_apply(self) -> None:
        """The package and its service; the audit log for the agent; the monitor."""
        self.step("svc_installed", "dpkg-query -W -f='${Status} ${Version}' aegis-svc")
        self.step("svc_active", f"systemctl is-active {fixtures.SERVICE}")
        self.step("svc_enabled", f"systemctl is-enabled {fixtures.SERVICE}")
        self.step("agent_audit_verify", "aegis audit verify", user="agent")
        self.step("monitor_start", f"{MONITOR_START}{MONITOR_WHY}", timeout=120)
        self.step("monitor_state", MONITOR_SETTLED)
        self.step(
            "monitor_start_reviewd_down",
            "systemctl stop aegis-reviewd.service aegis-reviewd.socket"
            f" && {{ {MONITOR_START}; }}{MONITOR_WHY}",
            timeout=120,
        )
        self.step("monitor_state_reviewd_down", MONITOR_SETTLED)
        self.step("reviewd_back", "systemctl start aegis-reviewd.socket aegis-reviewd.service")

    def killed_client(self) -> None:
        """An apply whose client is SIGKILLed mid-run; the monitor must reconcile it."""
        plan = self.agent_plan("aegis-slow", "slow")
        if plan is None:
            self.r["slow_reconciled"] = _not_run("reconcile", "no plan")
            return
        self.step(
            "slow_approve",
            f"aegisctl approve {quote(plan)} --reason 'kill test' --key {KEYS}/bob.key"
            " --approver bob",
            user=OPERATOR,
        )
        sign = self.step(
            "slow_sign",
            f"aegisctl sign --plan {quote(plan)} --key {KEYS}/alice.key --signer alice --json",
            user=OPERATOR,
        )
        data = _json(sign)
        ep = data.get("path") if data else None
        request_id = data.get("request_id") if data else None
        if not isinstance(ep, str) or not isinstance(request_id, str):
            self.r["slow_reconciled"] = _not_run("reconcile", "not signed")
            return
        # The client runs in the background; once aegisd has started the run (the request
        # is `applying` and the postinst waits for the go file) the client is SIGKILLed.
        started = self.step(
            "slow_apply_started",
            f"setsid aegisctl apply --execution-plan {quote(ep)}"
            f' --public-key-hex "$(cat {KEYS}/alice.pub)" >/tmp/slow-apply.log 2>&1'
            " </dev/null & echo $!",
            user=OPERATOR,
        )
        if not started.stdout.strip().isdigit():
            self.r["slow_reconciled"] = _not_run("reconcile", "the client did not start")
            return
        seen = ""
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and seen != "applying":
            data = _json(self.host.run(f"aegis show {request_id} --json", user="agent"))
            request = data.get("request") if data else None
            seen = str(request.get("state")) if isinstance(request, dict) else ""
            time.sleep(0.3)
        if seen != "applying":
            self.r["slow_apply_killed"] = _not_run(
                "kill", f"the request never was applying ({seen})"
            )
        else:
            self.step("slow_apply_killed", f"kill -KILL {started.stdout.strip()} && echo killed")
        self.step(
            "slow_release",
            f"touch {fixtures.GO_FILE}; for i in $(seq 300); do"
            " dpkg-query -W -f='${Status}' aegis-slow 2>/dev/null | grep -q 'ok installed'"
            " && exit 0; sleep 0.2; done; exit 1",
            timeout=120,
        )
        self.step("slow_monitor", MONITOR_START, timeout=120)
        self.step("slow_monitor_log", "journalctl -u aegis-monitor.service -n 30 --no-pager")
        # Later checks and a re-run want a monitor that is not left failed by this one.
        self.step("slow_monitor_reset", "systemctl reset-failed aegis-monitor.service")
        self.step("slow_reconciled", f"aegis show {request_id} --json", user="agent")

    def debian_plan(self) -> None:
        """A plan from Debian's own archive, approved with `aegis policy sources`."""
        self.step("debian_approve_sources", "aegis policy sources --approve-configured")
        self.agent_plan("jq", "debian")

    def out_of_band(self) -> None:
        """dpkg -i, apt-get install (under sudo's uid) and apt-get remove behind Aegis's back."""
        self.step(
            "oob_changes",
            "cd /tmp && apt-get download -q aegis-oob && dpkg -i /tmp/aegis-oob_1.0_all.deb"
            " && dpkg -r aegis-oob && sleep 1.1"
            ' && SUDO_UID="$(id -u ops)" apt-get install -y -q aegis-oob'
            " && apt-get remove -y -q aegis-oob",
            timeout=300,
        )
        self.step("oob_monitor", MONITOR_START, timeout=120)
        self.step("oob_drift", "aegis drift --json", user="agent")
        self.step("oob_metrics", "cat /var/lib/aegis/metrics/aegis.prom", user="agent")

    def unattended(self, dest: Path) -> None:
        """The timer is installed; one pass installs a security fix with no human; a plan
        outside the scope, signed with the automation key by hand, is refused by aegisd."""
        self.step(
            "unattended_timer",
            "systemctl is-enabled aegis-unattended.timer"
            " && systemctl is-active aegis-unattended.timer"
            " && stat -c '%a %U %n' /etc/aegis/keys/automation"
            " /etc/aegis/keys/automation/automation.key",
        )
        sec = fixtures.build_security(dest)
        shutil.copytree(sec.path, self.host.path(fixtures.SECURITY_DIR))
        shutil.copyfile(sec.key_path, self.host.path(fixtures.SECURITY_KEYRING))
        self.host.path(fixtures.SECURITY_KEYRING).chmod(0o644)
        self.host.path("/etc/apt/sources.list.d/aegis-security.sources").write_text(
            fixtures.security_sources_file()
        )
        with self.host.path("/etc/aegis/policy.toml").open("a") as policy:
            policy.write(fixtures.automation_policy(sec))
        self.host.path("/root/tracker.json").write_text('{"zlib": {}}\n')
        # aegis-fix 1.0 is installed outside Aegis (recorded as an out-of-band change).
        # This host has no model: reviews are skipped by configuration (neutral). debconf's
        # DPkg::Pre-Install-Pkgs hook (70debconf, an unmodified conffile) stays in place: it
        # is recorded as a packaged hook and asks for no human (test_packaged_hooks.py).
        with self.host.path("/etc/aegis/aegis.toml").open("a") as conf:
            conf.write("review_enabled = false\n")
        self.step(
            "unattended_prepare",
            "test -e /etc/apt/apt.conf.d/70debconf"
            " && apt-get update -qq && apt-get install -y -q aegis-fix=1.0 && aegis policy check"
            " && aegis vulndb import /root/tracker.json",
            timeout=300,
        )
        self.step(
            "unattended_pass",
            "systemctl start aegis-unattended.service;"
            " systemctl show -p Result aegis-unattended.service;"
            " cat /var/lib/aegis/unattended/last-run.json",
            timeout=600,
        )
        self.step("unattended_fix", "dpkg-query -W -f='${Version}' aegis-fix")
        plan = self.agent_plan("aegis-oob2", "forged")
        if plan is None:
            self.r["forged_apply"] = _not_run("apply", "no plan")
            return
        self.step(
            "forged_approve",
            f"aegisctl approve {quote(plan)} --reason 'forgery test'"
            f" --key {KEYS}/bob.key --approver bob",
            user=OPERATOR,
        )
        auto = "/etc/aegis/keys/automation/automation"
        sign = self.step(
            "forged_sign",
            f"aegisctl sign --plan {quote(plan)} --key {auto}.key --signer automation --json",
        )
        data = _json(sign)
        ep = data.get("path") if data else None
        if not isinstance(ep, str):
            self.r["forged_apply"] = _not_run("apply", "not signed")
            return
        self.step(
            "forged_apply",
            f'aegisctl apply --execution-plan {quote(ep)} --public-key-hex "$(cat {auto}.pub)"',
            timeout=300,
        )

    def broken_upgrade(self) -> None:
        """aegis-web 1.0 -> 1.1 whose postinst leaves the unit failed: aegisd's health probe
        fails until the deadline and aegisd restores 1.0 by itself (no new approval)."""
        with self.host.path("/etc/aegis/policy.toml").open("a") as policy:
            policy.write(fixtures.web_health_policy())
        self.step(
            "web_prepare",
            "apt-get install -y -q aegis-web=1.0 && aegis policy check"
            f" && systemctl is-active {fixtures.WEB_SERVICE}",
            timeout=300,
        )
        plan = self.agent_plan("aegis-web", "web")
        request_id = self.operator_apply(plan, "web")
        self.step("web_version", "dpkg-query -W -f='${Version}' aegis-web")
        self.step("web_active", f"systemctl is-active {fixtures.WEB_SERVICE}")
        self.step("web_request", f"aegis show {request_id} --json", user="agent")
        self.step(
            "web_audit",
            'python3 -c \'import json,sys; [print(e["kind"], json.dumps(e.get("details")))'
            ' for e in (json.loads(l)["event"] for l in open("/var/log/aegis/audit.jsonl"))'
            f' if e.get("request_id") == "{request_id}"]\'',
        )

    def run_all(self) -> None:
        """The whole guide, in the order an operator follows it."""
        self.install()
        if self.r["install"].returncode != 0 and not self.host.path("/opt/aegis/bin").is_dir():
            return
        self.users()
        self.repository(self.workdir / "repo")
        self.keys()
        self.agent_readiness()
        plan = self.agent_plan("aegis-svc", "svc")
        self.agent_mcp("aegis-svc")
        self.outsider()
        self.operator_apply(plan, "svc")
        self.after_apply()
        self.killed_client()
        self.debian_plan()
        self.out_of_band()
        self.unattended(self.workdir / "security")
        self.broken_upgrade()
