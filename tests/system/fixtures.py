"""The signed test repository the booted hosts install from.

Built on the test machine with :mod:`aegis.devtools.testrepo` and copied into each host
at ``/srv/aegis-test-repo`` (apt reads it through a ``file:`` URI, checked with its own
Signed-By key like any other source). Unlike the fast-path fixtures these packages are
for a real host: their maintainer scripts run as root inside the booted container.
"""

from __future__ import annotations

from pathlib import Path

from aegis.devtools import testrepo

REPO_DIR = "/srv/aegis-test-repo"
KEYRING = "/usr/share/keyrings/aegis-test.gpg"
SUITE = "aegis-test"
SERVICE = "aegis-fixture.service"
GO_FILE = "/run/aegis-fixture-go"
"""aegis-slow's postinst waits until this file exists (so a test can kill the client)."""

_UNIT = """[Unit]
Description=Aegis booted-host fixture service

[Service]
ExecStart=/bin/sleep infinity

[Install]
WantedBy=multi-user.target
"""

# What debhelper generates for a unit, minus its "|| true": the apply must fail if
# systemd cannot enable or start the service from inside aegisd's sandbox.
_SERVICE_POSTINST = f"""#!/bin/sh
set -e
if [ "$1" = configure ]; then
    deb-systemd-helper unmask {SERVICE} >/dev/null
    deb-systemd-helper enable {SERVICE} >/dev/null
    if [ -d /run/systemd/system ]; then
        systemctl --system daemon-reload
        deb-systemd-invoke start {SERVICE}
    fi
fi
exit 0
"""

_SLOW_POSTINST = f"""#!/bin/sh
set -e
i=0
while [ ! -e {GO_FILE} ] && [ $i -lt 600 ]; do sleep 0.2; i=$((i + 1)); done
exit 0
"""

WEB_SERVICE = "aegis-web.service"
_WEB_UNIT = """[Unit]
Description=Aegis booted-host fixture: a service an upgrade breaks

[Service]
ExecStart={start}

[Install]
WantedBy=multi-user.target
"""

# Like aegis-svc's, restarting the unit: 1.1's unit exits 3 at once, so its postinst leaves
# the unit failed while dpkg reports the upgrade a success (the health probe catches it).
_WEB_POSTINST = f"""#!/bin/sh
set -e
if [ "$1" = configure ]; then
    deb-systemd-helper unmask {WEB_SERVICE} >/dev/null
    deb-systemd-helper enable {WEB_SERVICE} >/dev/null
    if [ -d /run/systemd/system ]; then
        systemctl --system daemon-reload
        deb-systemd-invoke restart {WEB_SERVICE} || true
    fi
fi
exit 0
"""


def _web(version: str, start: str) -> testrepo.PackageSpec:
    return testrepo.PackageSpec(
        "aegis-web",
        version,
        description="Aegis fixture: 1.1 breaks its own service",
        scripts={"postinst": _WEB_POSTINST},
        files=(
            testrepo.FileSpec(f"/lib/systemd/system/{WEB_SERVICE}", _WEB_UNIT.format(start=start)),
        ),
    )


def web_health_policy() -> str:
    """Policy's default probe for aegis-web: its unit is active within 20 s of the run."""
    return (
        '\n[[health.packages]]\nmatch = ["aegis-web"]\n'
        f'probes = ["unit:{WEB_SERVICE}"]\nwithin = "20s"\n'
    )


PACKAGES = (
    testrepo.PackageSpec(
        "aegis-svc",
        "1.0",
        description="Aegis fixture: a service its postinst enables and starts",
        scripts={"postinst": _SERVICE_POSTINST},
        files=(testrepo.FileSpec(f"/lib/systemd/system/{SERVICE}", _UNIT),),
    ),
    testrepo.PackageSpec(
        "aegis-slow",
        "1.0",
        description="Aegis fixture: a postinst that waits for a go file",
        scripts={"postinst": _SLOW_POSTINST},
    ),
    testrepo.PackageSpec("aegis-oob", "1.0", description="Aegis fixture: changed behind its back"),
    testrepo.PackageSpec("aegis-oob2", "1.0", description="Aegis fixture: outside the scope"),
    testrepo.PackageSpec("aegis-fix", "1.0", description="Aegis fixture: before its fix"),
    _web("1.0", "/bin/sleep infinity"),
    _web("1.1", "/bin/sh -c 'exit 3'"),
)

SECURITY_DIR = "/srv/aegis-security-repo"
SECURITY_KEYRING = "/usr/share/keyrings/aegis-security.gpg"
SECURITY_SUITE = "aegis-security"


def build_security(dest: Path) -> testrepo.Repo:
    """A second repository, signed by its own key: the fixed aegis-fix 1.1 (a "security fix").

    No maintainer scripts: script findings in a package outside the distribution need an
    approval, which would (rightly) keep the pass waiting for a human.
    """
    fixed = testrepo.PackageSpec("aegis-fix", "1.1", description="Aegis fixture: the fix")
    return testrepo.build_repo(
        dest, suite=SECURITY_SUITE, packages=(fixed,), name="aegis-security", key_name="security"
    )


def security_sources_file() -> str:
    """The deb822 source of the security repository."""
    return (
        f"Types: deb\nURIs: file://{SECURITY_DIR}\nSuites: {SECURITY_SUITE}\n"
        f"Components: main\nSigned-By: {SECURITY_KEYRING}\n"
    )


def automation_policy(sec: testrepo.Repo) -> str:
    """Approve the security repository and make it the one automation source."""
    return (
        f'\n[[sources]]\nname = "aegis-security"\nuri = "file://{SECURITY_DIR}"\n'
        f'suite = "{SECURITY_SUITE}"\ncomponent = "main"\n'
        f'signer_fingerprint = "{sec.fingerprint}"\npackages = ["aegis-*"]\n'
        "\n[automation]\nenabled = true\n"
        f'[[automation.sources]]\nuri = "file://{SECURITY_DIR}"\nsuite = "{SECURITY_SUITE}"\n'
        f'signer_fingerprint = "{sec.fingerprint}"\n'
    )


def build(dest: Path) -> testrepo.Repo:
    """The signed repository with :data:`PACKAGES`."""
    return testrepo.build_repo(dest, suite=SUITE, packages=PACKAGES, name="aegis-booted")


def sources_file() -> str:
    """The deb822 source an operator would add for the repository."""
    return (
        f"Types: deb\nURIs: file://{REPO_DIR}\nSuites: {SUITE}\nComponents: main\n"
        f"Signed-By: {KEYRING}\n"
    )


def policy_source(repo: testrepo.Repo) -> str:
    """The ``[[sources]]`` entry that approves the repository for its packages."""
    return (
        f'\n[[sources]]\nname = "aegis-booted"\nuri = "file://{REPO_DIR}"\nsuite = "{SUITE}"\n'
        f'component = "main"\nsigner_fingerprint = "{repo.fingerprint}"\n'
        'packages = ["aegis-*"]\n'
    )
