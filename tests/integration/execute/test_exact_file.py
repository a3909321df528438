"""One file from plan to install (docs/apt-trust.md): two builds of one version.

apt's test-same-version-but-different: ``aegis-dup 2.0`` exists as two builds (same
version string, different files) in two signed repositories, suites ``stable`` and
``rebuild``, and a pin makes apt prefer one of them. Under each pin order, for install and
upgrade, the build Aegis inspected, the one the signed plan names (SHA-256 and URI) and
the one dpkg unpacked are the same file. ``stable`` is listed first, so with ``rebuild``
pinned apt installs the build it knows second, the one ``pkg=2.0`` does not select.
Through the real analyzer, signer, aegisd, apt and dpkg.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path

import pytest

from aegis.devtools import testrepo
from aegis.devtools.testrepo_keys import get_key, run_tool
from aegis.devtools.testrepo_packages import FileSpec, PackageSpec
from aegis.devtools.testrepo_repos import sign_release
from aegis.execute.ledger import Ledger
from aegis.model import Intent, Operation, Plan, Tool

from .chain_helpers import Chain
from .conftest import base_env

pytestmark = pytest.mark.root

BUILD = "/usr/share/aegis-dup/build"
"""The file whose content says which build dpkg unpacked."""


def _dup(version: str, build: str, *, padded: bool = False) -> PackageSpec:
    """``aegis-dup`` whose build file names ``build``; ``padded`` makes its .deb larger.

    apt 2.6 tells two builds of one version apart by their size alone, and two small
    gzip'd builds differ by a byte or two that their timestamps can even out. Padding
    with text gzip cannot shrink keeps such builds apart on every run.
    """
    files = [FileSpec(BUILD, build + "\n")]
    if padded:
        files.append(FileSpec(BUILD + ".pad", hashlib.sha512(build.encode()).hexdigest() + "\n"))
    return PackageSpec("aegis-dup", version, description=f"{build} build", files=tuple(files))


@dataclass(frozen=True)
class Builds:
    stable: testrepo.Repo
    rebuild: testrepo.Repo

    def repo(self, suite: str) -> testrepo.Repo:
        return self.stable if suite == "stable" else self.rebuild

    def deb(self, suite: str) -> Path:
        return self.repo(suite).path / "pool/main/aegis-dup_2.0_all.deb"

    def sha256(self, suite: str) -> str:
        return hashlib.sha256(self.deb(suite).read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def builds(tmp_path_factory: pytest.TempPathFactory) -> Builds:
    base = tmp_path_factory.mktemp("builds")
    stable = testrepo.build_repo(
        base / "a-stable",
        suite="stable",
        name="a-stable",
        packages=(_dup("1.0", "stable-old"), _dup("2.0", "stable")),
    )
    rebuild = testrepo.build_repo(
        base / "b-rebuild",
        suite="rebuild",
        name="b-rebuild",
        packages=(_dup("2.0", "rebuild", padded=True),),
    )
    out = Builds(stable, rebuild)
    # Two builds apt keeps apart (same size: test_same_size_builds_without_md5_...).
    assert out.deb("stable").stat().st_size != out.deb("rebuild").stat().st_size
    return out


def _policy(repos: tuple[testrepo.Repo, ...]) -> str:
    default = (Path(__file__).resolve().parents[3] / "aegis/policy/default_policy.toml").read_text()
    return default + "".join(
        f'\n[[sources]]\nname = "{r.suite}"\nuri = "{r.uri}"\nsuite = "{r.suite}"\n'
        f'component = "main"\nsigner_fingerprint = "{r.fingerprint}"\npackages = ["aegis-*"]\n'
        for r in repos
    )


def _chain(tmp_path: Path, key_set, repos: tuple[testrepo.Repo, ...], pin: str) -> Chain:  # type: ignore[no-untyped-def]
    root = testrepo.make_root(tmp_path / "root", list(repos))
    (root.preferences_dir / "pin").write_text(
        f"Package: *\nPin: release n={pin}\nPin-Priority: 600\n"
    )
    testrepo.apt_update(root)
    home = tmp_path / "home"
    home.mkdir()
    env = base_env(home, AEGIS_APT_CONFIG=str(root.apt_config), AEGIS_DPKG_ROOT=str(root.root))
    chain = Chain(home, repos[0], root, key_set, env)
    chain.cfg.etc_dir.mkdir(parents=True, exist_ok=True)
    chain.cfg.policy_path.write_text(_policy(repos))
    return chain


def _daemon(make_daemon, chain: Chain):  # type: ignore[no-untyped-def]
    extra = {k: v for k, v in chain.env.items() if k in ("AEGIS_APT_CONFIG", "AEGIS_DPKG_ROOT")}
    return make_daemon(env_extra=extra, home=chain.home)


def _plan(chain: Chain, op: Operation, *targets: str, inspect: bool = True) -> Plan:
    from aegis.ecosystems.apt.plan import analyze_apt

    intent = Intent(Tool.APT, op, targets, "tester", "2026-01-01T00:00:00Z")
    return analyze_apt(chain.cfg, intent, datetime.now(UTC), inspect_contents=inspect)


@pytest.mark.parametrize("op", [Operation.INSTALL, Operation.UPGRADE], ids=["install", "upgrade"])
@pytest.mark.parametrize("pin", ["stable", "rebuild"])
def test_the_inspected_signed_and_unpacked_build_is_the_one_apt_prefers(
    tmp_path: Path, key_set, make_daemon, builds: Builds, pin: str, op: Operation
) -> None:  # type: ignore[no-untyped-def]
    chain = _chain(tmp_path, key_set, (builds.stable, builds.rebuild), pin)
    if op is Operation.UPGRADE:
        testrepo.run_apt(chain.root, "install", "-y", "aegis-dup=1.0")
    plan = _plan(chain, op, *(("aegis-dup",) if op is Operation.INSTALL else ()))
    # Planned and inspected: the pinned build, by its file.
    [prov] = plan.provenance
    assert (prov.package, prov.version) == ("aegis-dup", "2.0")
    assert prov.sha256 == builds.sha256(pin)
    assert prov.uri.startswith(f"file:{builds.repo(pin).path}/")
    assert prov.verified  # the inspection hashed exactly this file
    [change] = plan.changes
    assert change.repository == next(r.id for r in plan.repositories if r.suite == pin)
    assert plan.command_preview[-1] == f"{chain.cfg.deb_dir}/aegis-dup_2.0_all_{prov.sha256}.deb"
    # Signed: the execution plan's target names that file.
    data = chain.sign(plan)
    [target] = json.loads(data)["targets"]
    assert (target["sha256"], target["size"], target["uri"]) == (prov.sha256, prov.size, prov.uri)
    # Unpacked: that file, whatever apt's own `pkg=2.0` would pick.
    d = _daemon(make_daemon, chain)
    answer = d.submit(data)
    assert answer.ok, answer
    assert (chain.root.root / BUILD.lstrip("/")).read_text() == pin + "\n"
    assert chain.installed()["aegis-dup"] == "2.0"
    assert answer.result is not None
    assert answer.result["fetched"]["files"] == 1
    assert answer.result["drift"] == []
    # dpkg shortens the path from the left: the file's own name ends in its SHA-256.
    assert f"{prov.sha256[-24:]}.deb ..." in str(answer.result["stdout_tail"])
    assert list(chain.cfg.deb_dir.iterdir()) == []  # removed after the run


def test_a_build_swapped_in_the_repository_after_signing_is_never_installed(
    tmp_path: Path, key_set, make_daemon, builds: Builds
) -> None:  # type: ignore[no-untyped-def]
    """The pool file changes under an unchanged index: aegisd refuses, nothing runs.

    Planned without content inspection, so only aegisd's fetch (planned URI, planned
    SHA-256) stands between the swapped bytes and dpkg.
    """
    local = testrepo.build_repo(
        tmp_path / "repo", suite="stable", name="stable", packages=(_dup("2.0", "stable"),)
    )
    chain = _chain(tmp_path, key_set, (local,), "stable")
    plan = _plan(chain, Operation.INSTALL, "aegis-dup", inspect=False)
    assert not plan.content_inspected
    data = chain.sign(plan)
    pool = local.path / "pool/main/aegis-dup_2.0_all.deb"
    pool.unlink()
    shutil.copyfile(builds.deb("rebuild"), pool)
    d = _daemon(make_daemon, chain)
    answer = d.submit(data)
    assert answer.refusal == "refused:deb-mismatch", answer
    assert "does not match the signed index" in answer.message
    assert "aegis-dup" not in chain.installed()
    assert Ledger(d.cfg.ledger_path).entries() == []
    assert list(chain.cfg.deb_dir.iterdir()) == []
    [event] = [e for e in d.audit_events() if e["kind"] == "apply-refused"]
    assert event["decision"]["rule_ids"] == ["refused:deb-mismatch"]


def _resign_with_size(repo: testrepo.Repo, size: int) -> None:
    """Give the index record of ``repo``'s aegis-dup ``size`` and drop its MD5 (re-signed).

    With no MD5sum apt prints no hash in its download set, and the two builds then agree
    in file name and size: only the SHA-256 (which apt does not print) differs.
    """
    dist = repo.path / "dists" / repo.suite
    for bdir in (dist / "main").glob("binary-*"):
        p = bdir / "Packages"
        lines = [ln for ln in p.read_text().splitlines() if not ln.startswith("MD5sum:")]
        p.write_text(
            "\n".join(f"Size: {size}" if ln.startswith("Size:") else ln for ln in lines) + "\n"
        )
        (bdir / "Packages.gz").write_bytes(gzip.compress(p.read_bytes(), mtime=0))
    pfx = "APT::FTPArchive::Release::"
    release = run_tool(
        [
            "apt-ftparchive",
            "-o",
            f"{pfx}Suite={repo.suite}",
            "-o",
            f"{pfx}Codename={repo.suite}",
            "-o",
            f"{pfx}Origin={repo.origin}",
            "release",
            f"dists/{repo.suite}",
        ],
        cwd=repo.path,
    )
    (dist / "Release").write_text(release)
    sign_release(dist, get_key("default"))


def test_same_size_builds_without_md5_are_bound_or_denied_as_apt_sees_them(
    tmp_path: Path, key_set
) -> None:  # type: ignore[no-untyped-def]
    """Two builds of one size whose indexes carry no MD5, so apt prints no hash for them.

    apt 2.6 merges them into one version: it shows one record and downloads one file,
    and the plan binds that file (its URI and its index's SHA-256). apt 3.0 keeps them
    apart and fetches the pinned one: two records then fit the file apt names, and the
    plan is denied as ``provenance.build-ambiguous``, never a guess.
    """
    stable = testrepo.build_repo(
        tmp_path / "a", suite="stable", name="a", packages=(_dup("2.0", "stable"),)
    )
    rebuild = testrepo.build_repo(
        tmp_path / "b", suite="rebuild", name="b", packages=(_dup("2.0", "rebuild"),)
    )
    size = (stable.path / "pool/main/aegis-dup_2.0_all.deb").stat().st_size
    _resign_with_size(stable, size)
    _resign_with_size(rebuild, size)
    chain = _chain(tmp_path, key_set, (stable, rebuild), "rebuild")
    uris = testrepo.run_apt(chain.root, "install", "--print-uris", "-qq", "aegis-dup").stdout
    [line] = uris.splitlines()
    fetched = line.split("'")[1]
    shown = testrepo.run_apt(chain.root, "show", "aegis-dup", tool="/usr/bin/apt-cache").stdout
    plan = _plan(chain, Operation.INSTALL, "aegis-dup")
    if shown.count("Package: aegis-dup") > 1:  # apt 3.0: two builds apt cannot tell apart
        assert [s.name for s in plan.signals if s.package == "aegis-dup"] == [
            "provenance.build-ambiguous"
        ]
        assert (plan.provenance, plan.command_preview) == ((), ())
        return
    assert [s.name for s in plan.signals if s.package == "aegis-dup"] == []
    [prov] = plan.provenance
    assert prov.uri == fetched
    assert prov.verified  # the inspected bytes are that URI's, with the index's SHA-256
    served = Path(fetched.removeprefix("file:"))
    assert prov.sha256 == hashlib.sha256(served.read_bytes()).hexdigest()
    assert plan.command_preview[-1].endswith(f"_{prov.sha256}.deb")


@pytest.fixture
def http_repo(tmp_path: Path) -> Iterator[testrepo.Repo]:
    """A signed repository served over HTTP on 127.0.0.1 (apt's http method, apt-helper)."""
    repo = testrepo.build_repo(
        tmp_path / "served", suite="stable", name="served", packages=(_dup("2.0", "stable"),)
    )
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = subprocess.Popen(
        [sys.executable, "-m", "http.server", "--bind", "127.0.0.1", str(port)],
        cwd=repo.path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 15
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert time.monotonic() < deadline, "http.server did not start"
                time.sleep(0.05)
        yield replace(repo, uri=f"http://127.0.0.1:{port}")
    finally:
        server.terminate()
        server.wait()


def test_a_remote_build_is_fetched_by_its_uri_and_hash(
    tmp_path: Path, key_set, make_daemon, http_repo: testrepo.Repo
) -> None:  # type: ignore[no-untyped-def]
    """Over HTTP, inspection and aegisd fetch with apt's own downloader and the planned hash.

    Then the pool file changes under the unchanged index: apt's downloader refuses the
    bytes (Hash Sum mismatch) and aegisd refuses the apply; nothing is installed.
    """
    chain = _chain(tmp_path, key_set, (http_repo,), "stable")
    plan = _plan(chain, Operation.INSTALL, "aegis-dup")
    [prov] = plan.provenance
    assert prov.uri.startswith(http_repo.uri + "/pool/")
    assert prov.verified
    d = _daemon(make_daemon, chain)
    answer = d.submit(chain.sign(plan))
    assert answer.ok, answer
    assert (chain.root.root / BUILD.lstrip("/")).read_text() == "stable\n"
    testrepo.run_apt(chain.root, "purge", "-y", "aegis-dup")
    again = _plan(chain, Operation.INSTALL, "aegis-dup", inspect=False)
    data = chain.sign(again)
    pool = http_repo.path / "pool/main/aegis-dup_2.0_all.deb"
    pool.write_bytes(pool.read_bytes()[:-1] + b"X")
    shutil.rmtree(chain.cfg.cache_dir / "debs")  # no verified copy left from the first apply
    answer = d.submit(data)
    assert answer.refusal == "refused:deb-mismatch", answer
    assert "aegis-dup" not in chain.installed()
