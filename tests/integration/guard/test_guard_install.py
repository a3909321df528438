"""``aegis guard install`` for real, as root: shims, PATH blocks, passthrough, refusal, log.

The agent is uid 65534 (nobody) with a temporary home; it runs a login shell through
``setpriv``, so what it sees is what an agent account sees. The shims need an Aegis the
agent can read wherever the checkout lives (it may be under /root): a venv in a
world-readable temporary directory gets copies of aegis, bashlex and click.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import bashlex
import click
import pytest
from click.testing import CliRunner, Result

import aegis
from aegis.cli.aegis import cli
from aegis.guard.install import BEGIN, SHIM_TOOLS
from tests.conftest import require_root

NOBODY = 65534
AS_NOBODY = ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups"]
DEBIAN_BASHRC = "# ~/.bashrc\ncase $- in\n    *i*) ;;\n      *) return;;\nesac\nalias ll='ls -l'\n"
DEBIAN_PROFILE = (
    '# ~/.profile\nif [ -d "$HOME/.local/bin" ] ; then\n    PATH="$HOME/.local/bin:$PATH"\nfi\n'
)


def _public_dir(prefix: str) -> Path:
    path = Path(tempfile.mkdtemp(prefix=prefix))
    path.chmod(0o755)
    return path


@pytest.fixture(scope="module")
def public_python() -> Iterator[Path]:
    """A Python with Aegis that uid 65534 can run (copies, not the checkout)."""
    require_root("drops to uid 65534 and writes another user's files")
    if shutil.which("setpriv") is None:
        pytest.fail("setpriv (util-linux) is missing")
    base = _public_dir("aegis-guard-py-")
    system_python = "/usr/bin/python3" if Path("/usr/bin/python3").exists() else "python3"
    subprocess.run([system_python, "-m", "venv", "--without-pip", str(base / "venv")], check=True)
    (site,) = (base / "venv" / "lib").glob("python3*/site-packages")
    for module in (aegis, bashlex, click):
        source = Path(module.__file__ or "").parent
        shutil.copytree(source, site / source.name, ignore=shutil.ignore_patterns("__pycache__"))
    for root, dirs, files in os.walk(base):
        for name in dirs:
            os.chmod(os.path.join(root, name), 0o755)  # noqa: S103  (uid 65534 must read it)
        for name in files:
            path = os.path.join(root, name)
            if not os.path.islink(path):
                os.chmod(path, 0o755 if os.access(path, os.X_OK) else 0o644)
    yield base / "venv" / "bin" / "python3"
    shutil.rmtree(base)


@dataclass(frozen=True)
class Agent:
    base: Path
    home: Path
    shims: Path
    log: Path

    def install_args(self, *extra: str) -> list[str]:
        return [
            "guard",
            "install",
            "--user",
            "nobody",
            "--dir",
            str(self.shims),
            "--home",
            str(self.home),
            "--log-file",
            str(self.log),
            *extra,
        ]

    def login_shell(self, script: str) -> subprocess.CompletedProcess[str]:
        """Run ``script`` in a login sh as uid 65534 (it reads ~/.profile)."""
        return subprocess.run(
            [
                *AS_NOBODY,
                "env",
                "-i",
                f"HOME={self.home}",
                "PATH=/usr/bin:/bin",
                "sh",
                "-lc",
                script,
            ],
            capture_output=True,
            text=True,
            check=False,
            cwd=self.home,
        )


@pytest.fixture
def agent() -> Iterator[Agent]:
    require_root("writes another user's files")
    base = _public_dir("aegis-guard-")
    home = base / "home"
    home.mkdir()
    (home / ".bashrc").write_text(DEBIAN_BASHRC)
    (home / ".profile").write_text(DEBIAN_PROFILE)
    for path in (home, home / ".bashrc", home / ".profile"):
        os.chown(path, NOBODY, NOBODY)
    yield Agent(base=base, home=home, shims=base / "shims", log=base / "log" / "nobody.log")
    shutil.rmtree(base)


def invoke(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args))


def test_agent_login_shell_is_guarded(public_python: Path, agent: Agent) -> None:
    proc = subprocess.run(
        [str(public_python), "-m", "aegis", *agent.install_args("--json")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert result["shim_dir"] == str(agent.shims)
    assert set(result["tools"]) == set(SHIM_TOOLS) >= {"apt-get", "dpkg", "npm", "pip", "sudo"}
    assert result["profile_files"] == [str(agent.home / ".profile"), str(agent.home / ".bashrc")]

    # What was written, and who owns it.
    st = agent.shims.stat()
    assert (st.st_uid, st.st_mode & 0o7777) == (0, 0o755)
    for tool in SHIM_TOOLS:
        shim = (agent.shims / tool).stat()
        assert (shim.st_uid, shim.st_mode & 0o7777) == (0, 0o755), tool
    log = agent.log.stat()
    assert (log.st_uid, log.st_mode & 0o7777) == (NOBODY, 0o600)
    assert (agent.home / ".bashrc").read_text().startswith(BEGIN)
    assert (agent.home / ".profile").read_text().startswith(DEBIAN_PROFILE + BEGIN)
    assert (agent.home / ".bashrc").stat().st_uid == NOBODY

    # The agent's login shell: shims first, read-only calls pass through to the real tools.
    seen = agent.login_shell("command -v dpkg; dpkg -l dpkg | tail -n 1; apt policy dpkg")
    assert seen.returncode == 0, seen.stderr
    lines = seen.stdout.splitlines()
    assert lines[0] == str(agent.shims / "dpkg")
    assert lines[1].startswith("ii  dpkg ")
    assert any(line.startswith("dpkg:") for line in lines[2:]), seen.stdout

    # A direct change is refused with exit 3, the Aegis way to do it, and a log line.
    refused = agent.login_shell("dpkg -i /nonexistent/nginx_1.22_amd64.deb")
    assert refused.returncode == 3, refused.stderr
    assert "[dpkg.mutation]" in refused.stderr
    assert "instead: aegis apt install nginx --plan" in refused.stderr
    as_cli = invoke("guard", "check", "--", "dpkg", "-i", "/nonexistent/nginx_1.22_amd64.deb")
    assert refused.stderr == as_cli.stderr  # the shim says what 'aegis guard check' says
    (line,) = agent.log.read_text().splitlines()
    record = json.loads(line)
    assert record["user"] == "nobody"
    assert record["uid"] == NOBODY
    assert record["rules"] == ["dpkg.mutation"]
    assert record["argv"] == ["dpkg", "-i", "/nonexistent/nginx_1.22_amd64.deb"]

    # sudo resets PATH (secure_path): its own shim checks what it would run.
    via_sudo = agent.login_shell("sudo -n apt-get install -y nginx")
    assert via_sudo.returncode == 3, via_sudo.stderr
    assert "instead: aegis apt install nginx --plan" in via_sudo.stderr
    assert len(agent.log.read_text().splitlines()) == 2

    # ~/.bashrc carries the block above Debian's "not interactive: return".
    bashrc = agent.login_shell('bash -c ". ~/.bashrc; command -v npm"')
    assert bashrc.stdout.strip() == str(agent.shims / "npm")


def test_shim_refuses_even_when_the_log_cannot_be_written(
    public_python: Path, agent: Agent
) -> None:
    assert invoke(*agent.install_args("--python", str(public_python))).exit_code == 0
    agent.log.unlink()
    agent.log.symlink_to(agent.base / "elsewhere")
    proc = subprocess.run(
        [str(agent.shims / "pip3"), "install", "requests"],
        capture_output=True,
        text=True,
        check=False,
        env={"PATH": f"{agent.shims}:/usr/bin:/bin"},
    )
    assert proc.returncode == 3
    assert "refusal not logged" in proc.stderr
    assert not (agent.base / "elsewhere").exists()


def test_install_is_idempotent_and_uninstall_removes_it(public_python: Path, agent: Agent) -> None:
    first = invoke(*agent.install_args("--python", str(public_python)))
    assert first.exit_code == 0, first.output
    stale = agent.shims / "oldtool"
    stale.write_text("#!/bin/sh\n# aegis guard shim for oldtool\n")
    operator_file = agent.shims / "README"
    operator_file.write_text("not ours\n")
    again = invoke(*agent.install_args("--python", str(public_python)))
    assert again.exit_code == 0, again.output
    assert not stale.exists()
    for name in (".bashrc", ".profile"):
        assert (agent.home / name).read_text().count(BEGIN) == 1
    gone = invoke(
        "guard",
        "uninstall",
        "--user",
        "nobody",
        "--dir",
        str(agent.shims),
        "--home",
        str(agent.home),
    )
    assert gone.exit_code == 0, gone.output
    assert sorted(p.name for p in agent.shims.iterdir()) == ["README"]
    assert (agent.home / ".bashrc").read_text() == DEBIAN_BASHRC
    assert (agent.home / ".profile").read_text() == DEBIAN_PROFILE
    assert agent.log.exists()


def test_a_planted_symlink_in_the_home_is_not_written_as_root(
    public_python: Path, agent: Agent
) -> None:
    victim = agent.base / "root-owned"
    victim.write_text("precious\n")
    (agent.home / ".bashrc").unlink()
    (agent.home / ".bashrc").symlink_to(victim)
    result = invoke(*agent.install_args("--python", str(public_python)))
    assert result.exit_code == 7, result.output
    assert "cannot edit the start-up files" in result.stderr
    assert victim.read_text() == "precious\n"


def test_install_refuses_root_and_unknown_accounts(agent: Agent) -> None:
    root = invoke("guard", "install", "--user", "root", "--dir", str(agent.shims))
    assert root.exit_code == 3
    assert "not root" in root.stderr
    unknown = invoke("guard", "install", "--user", "no-such-user-aegis", "--dir", str(agent.shims))
    assert unknown.exit_code == 3
    bad_dir = invoke("guard", "install", "--user", "nobody", "--dir", "/tmp/a:b")
    assert bad_dir.exit_code == 3
    assert not agent.shims.exists()


def test_install_as_non_root_is_refused(public_python: Path, agent: Agent) -> None:
    proc = subprocess.run(
        [*AS_NOBODY, str(public_python), "-m", "aegis", *agent.install_args()],
        capture_output=True,
        text=True,
        check=False,
        cwd=agent.home,
    )
    assert proc.returncode == 7, proc.stderr
    assert proc.stderr.startswith("Error: aegis guard install must run as root")
    assert "hint: run it as the operator: sudo aegis guard install --user NAME" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not agent.shims.exists()


def test_install_refuses_a_python_the_agent_cannot_run(agent: Agent, tmp_path: Path) -> None:
    # tmp_path sits in a 0700 directory of root's: uid 65534 cannot reach it, as with a
    # checkout under /root. Shims running it would break every tool they wrap.
    private = tmp_path / "python3"
    private.symlink_to("/usr/bin/python3")
    result = invoke(*agent.install_args("--python", str(private)))
    assert result.exit_code == 7, result.output
    assert "cannot run the shims' Python as 'nobody'" in result.stderr
    assert "hint: install Aegis where every user can read it" in result.stderr
    assert not agent.shims.exists()
    assert not (agent.home / ".bashrc").read_text().startswith(BEGIN)
