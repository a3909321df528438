"""Local test hosts for fleet tests and ``scripts/bench --only fleet`` (never production).

Each host is its own ``AEGIS_HOME`` with a throwaway root (:mod:`aegis.devtools.testrepo`)
sharing one signed test repository, its own host id, the default policy with the test
repository approved, and trusted signer and approver keys. :func:`write_hosts_file`
writes them as ``aegis fleet plan --hosts`` reads them, :func:`write_inventory` as an
Ansible inventory (local connection per host, its environment in host variables).
"""

from __future__ import annotations

import json
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

from aegis.devtools import testrepo

REPO_DIR = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class LocalHost:
    """One local host."""

    name: str
    home: Path
    root: testrepo.AptRoot
    socket: Path

    @property
    def env(self) -> dict[str, str]:
        """The ``AEGIS_*`` variables that make a process act as this host."""
        return {
            "AEGIS_HOME": str(self.home),
            "AEGIS_HOST_ID": f"host-{self.name}",
            "AEGIS_AUDIT_SYSLOG": "0",
        }


def policy_text(repo: testrepo.Repo) -> str:
    """The default policy plus the test repository as an approved source."""
    default = (REPO_DIR / "aegis/policy/default_policy.toml").read_text()
    return default + (
        f'\n[[sources]]\nname = "test"\nuri = "{repo.uri}"\nsuite = "{repo.suite}"\n'
        f'component = "main"\nsigner_fingerprint = "{repo.fingerprint}"\n'
        'packages = ["aegis-*"]\n'
    )


def make_host(
    dest: Path,
    name: str,
    repo: testrepo.Repo,
    *,
    trusted_pubs: dict[str, str],
    socket_dir: Path,
    preinstall: tuple[str, ...] = (),
) -> LocalHost:
    """A host under ``dest/name``: root updated, ``preinstall`` installed, keys trusted.

    ``trusted_pubs`` maps ``signers``/``approvers`` to a public key file to trust.
    """
    base = dest / name
    root = testrepo.make_root(base / "root", [repo])
    testrepo.apt_update(root)
    if preinstall:
        testrepo.run_apt(root, "install", "-y", *preinstall)
    home = base / "home"
    etc = home / "etc/aegis"
    etc.mkdir(parents=True, exist_ok=True)
    for kind, pub in trusted_pubs.items():
        (etc / "keys" / kind).mkdir(parents=True, exist_ok=True)
        shutil.copyfile(pub, etc / "keys" / kind / Path(pub).name)
    (etc / "policy.toml").write_text(policy_text(repo))
    (etc / "aegis.toml").write_text(
        f'apt_config = "{root.apt_config}"\ndpkg_root = "{root.root}"\n'
    )
    return LocalHost(name, home, root, socket_dir / f"{name}.sock")


def write_hosts_file(path: Path, hosts: list[LocalHost]) -> Path:
    """Write ``hosts`` as ``aegis fleet plan --hosts`` reads them."""
    lines = []
    for h in hosts:
        lines += ["[[hosts]]", f'name = "{h.name}"', f'home = "{h.home}"', "[hosts.env]"]
        lines += [f'{k} = "{v}"' for k, v in h.env.items() if k != "AEGIS_HOME"]
        lines.append("")
    path.write_text("\n".join(lines))
    return path


def write_inventory(path: Path, hosts: list[LocalHost], **group_vars: object) -> Path:
    """Write an Ansible inventory (JSON) of ``hosts``: local connection, own environment."""
    inventory = {
        "all": {
            "vars": {
                "ansible_connection": "local",
                "ansible_python_interpreter": sys.executable,
                **group_vars,
            },
            "hosts": {
                h.name: {
                    "aegis_env": {**h.env, "PYTHONPATH": str(REPO_DIR)},
                    "aegis_socket": str(h.socket),
                }
                for h in hosts
            },
        }
    }
    path.write_text(json.dumps(inventory, indent=1))
    return path
