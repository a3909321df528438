"""apt hooks that installed packages ship unmodified are recorded, not findings.

Every Debian host has debconf's ``DPkg::Pre-Install-Pkgs`` hook in
``/etc/apt/apt.conf.d/70debconf``; if that alone asked for approval, no plan (and no
unattended update) could ever be allowed on a stock host. A hook counts as packaged only
while dpkg's status lists its file as a conffile with the MD5 of the bytes now: an edited
file, a hand-written one, or one "vouched for" by text in a package description keeps
``config.apt-hooks`` (approval).
"""

from __future__ import annotations

import hashlib
import subprocess
from pathlib import Path

from aegis.devtools import testrepo
from aegis.devtools.testrepo_packages import FileSpec, PackageSpec, build_deb

from .apt_parity import approve, cli_plan, config, decide, fired

HOOK = "/bin/true --aegis-packaged-hook"
CONF = "/etc/apt/apt.conf.d/50aegis-hookpkg"


def _dpkg_install(root: testrepo.AptRoot, spec: PackageSpec) -> None:
    deb = build_deb(spec)
    subprocess.run(
        [
            "dpkg",
            f"--root={root.root}",
            f"--log={root.root}/var/log/dpkg.log",
            "--force-script-chrootless",
            "--force-not-root",
            "-i",
            str(deb),
        ],
        check=True,
        capture_output=True,
    )


def _hook_pkg(
    name: str, *, conffiles: bool = True, description: str = "hook fixture"
) -> PackageSpec:
    text = f'// shipped by {name}\nDPkg::Pre-Install-Pkgs {{"{HOOK}";}};\n'
    return PackageSpec(
        name=name,
        version="1.0",
        description=description,
        files=(FileSpec(CONF, text),),
        conffiles=conffiles,
    )


def _plan_and_fired(tmp_path: Path, root: testrepo.AptRoot, repo: testrepo.Repo, tag: str):  # type: ignore[no-untyped-def]
    cfg = config(tmp_path / f"home-{tag}", root)
    approve(cfg, repo)
    plan = cli_plan(cfg, root, "install", "aegis-tool")
    return plan, fired(decide(cfg, plan))


def test_a_hook_a_package_ships_unmodified_is_recorded_not_a_finding(
    tmp_path: Path, test_repo: testrepo.Repo
) -> None:
    root = testrepo.make_root(tmp_path / "root", [test_repo])
    testrepo.apt_update(root)
    _dpkg_install(root, _hook_pkg("aegis-hookpkg"))
    plan, hits = _plan_and_fired(tmp_path, root, test_repo, "clean")
    assert plan.config.flags == ("packaged-hooks",), plan.config
    assert any(HOOK in h and "shipped unmodified" in h for h in plan.config.hooks)
    assert "config.apt-hooks" not in hits

    # The attack: the same file edited to run something else is no longer the package's.
    conf = root.root / CONF.lstrip("/")
    conf.write_text(conf.read_text() + 'DPkg::Post-Invoke-Success {"/tmp/evil";};\n')
    plan, hits = _plan_and_fired(tmp_path, root, test_repo, "edited")
    assert "apt-hooks" in plan.config.flags
    assert "config.apt-hooks" in hits, hits


def test_a_hand_written_hook_vouched_for_by_a_description_stays_a_finding(
    tmp_path: Path, test_repo: testrepo.Repo
) -> None:
    root = testrepo.make_root(tmp_path / "root", [test_repo])
    testrepo.apt_update(root)
    evil = f'DPkg::Pre-Install-Pkgs {{"{HOOK}";}};\n'
    md5 = hashlib.md5(evil.encode(), usedforsecurity=False).hexdigest()
    # A package whose description carries a conffile-shaped line for a file it never
    # shipped; the file itself is written by hand (not a conffile of anything).
    _dpkg_install(
        root,
        PackageSpec(
            name="aegis-liar",
            version="1.0",
            description=f"liar\n /etc/apt/apt.conf.d/60evil {md5}",
        ),
    )
    (root.root / "etc/apt/apt.conf.d/60evil").write_text(evil)
    status = (root.root / "var/lib/dpkg/status").read_text()
    assert f"/etc/apt/apt.conf.d/60evil {md5}" in status
    plan, hits = _plan_and_fired(tmp_path, root, test_repo, "liar")
    assert plan.config.flags == ("apt-hooks",), plan.config
    assert "config.apt-hooks" in hits


def test_a_link_in_place_of_a_packaged_file_is_not_the_package_s(
    tmp_path: Path, test_repo: testrepo.Repo
) -> None:
    root = testrepo.make_root(tmp_path / "root", [test_repo])
    testrepo.apt_update(root)
    _dpkg_install(root, _hook_pkg("aegis-hookpkg"))
    conf = root.root / CONF.lstrip("/")
    copy = tmp_path / "copy.conf"
    copy.write_bytes(conf.read_bytes())
    conf.unlink()
    conf.symlink_to(copy)
    plan, hits = _plan_and_fired(tmp_path, root, test_repo, "link")
    assert "apt-hooks" in plan.config.flags
    assert "config.apt-hooks" in hits
