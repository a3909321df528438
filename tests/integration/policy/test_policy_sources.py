"""``aegis policy sources`` against real signed repositories in a throwaway apt root.

The root's apt configuration (a private APT_CONFIG with ``Dir`` set to the root) names:

- ``dist``: deb822, Signed-By the root's own distribution archive keyring
  (``usr/share/keyrings/debian-archive-keyring.gpg``, os-release ``ID=debian``);
- ``vendor``: a one-line ``.list`` with ``[signed-by=...]`` in ``etc/apt/keyrings``;
- ``lookalike``: ``Origin: Debian``, pointed at the distribution keyring but signed by
  its own key (the attack: it must not verify, and must not be approved);
- ``unsigned``: no signature at all;
- ``parts``: no Signed-By, its key dropped into ``trusted.gpg.d`` (verifies, weakly bound);
- ``loose``: Signed-By a keyring that group and others may write.

Release files are read from the ``file:`` repositories themselves (apt's lists are
empty), and verified with the real gpgv.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from aegis.cli.aegis import cli
from aegis.config import load_config
from aegis.devtools import testrepo
from aegis.policy.config import match_source
from aegis.policy.init import default_policy_text
from aegis.policy.load import load_policy_config
from tests.conftest import require_root

REPO = Path(__file__).resolve().parents[3]


def _deb822(path: Path, repo: testrepo.Repo, signed_by: str | None) -> None:
    text = f"Types: deb\nURIs: {repo.uri}\nSuites: {repo.suite}\nComponents: {repo.component}\n"
    if signed_by:
        text += f"Signed-By: {signed_by}\n"
    path.write_text(text)


@pytest.fixture(scope="module")
def repos(tmp_path_factory: pytest.TempPathFactory) -> dict[str, testrepo.Repo]:
    base = tmp_path_factory.mktemp("repos")
    return {
        "dist": testrepo.build_repo(base / "dist", suite="stable", name="dist"),
        "vendor": testrepo.build_repo(base / "vendor", key_name="vendor", name="vendor"),
        "lookalike": testrepo.debian_lookalike_repo(base / "lookalike"),
        "unsigned": testrepo.negative_repo(base / "unsigned", "unsigned"),
        "parts": testrepo.build_repo(base / "parts", key_name="parts", suite="parts"),
        "loose": testrepo.build_repo(base / "loose", key_name="loose", suite="loose"),
    }


@pytest.fixture
def host(
    tmp_path: Path,
    aegis_home: Path,
    repos: dict[str, testrepo.Repo],
    monkeypatch: pytest.MonkeyPatch,
) -> testrepo.AptRoot:
    """The throwaway root, AEGIS_APT_CONFIG pointing at it, and the shipped policy."""
    rootdir = (tmp_path / "root").resolve()
    root = testrepo.make_root(rootdir, [], extra_config=f'Dir "{rootdir}/";\n')
    (rootdir / "etc/os-release").write_text('PRETTY_NAME="Debian GNU/Linux 12"\nID=debian\n')
    shelf = rootdir / "usr/share/keyrings"
    shelf.mkdir(parents=True)
    archive = shelf / "debian-archive-keyring.gpg"
    shutil.copyfile(repos["dist"].key_path, archive)
    vendor_key = root.keyrings_dir / "vendor.gpg"
    shutil.copyfile(repos["vendor"].key_path, vendor_key)
    loose_key = root.keyrings_dir / "loose.gpg"
    shutil.copyfile(repos["loose"].key_path, loose_key)
    shutil.copyfile(repos["parts"].key_path, root.trusted_parts / "parts.gpg")
    for key in (archive, vendor_key, root.trusted_parts / "parts.gpg"):
        key.chmod(0o644)
    loose_key.chmod(0o666)
    _deb822(root.sources_dir / "dist.sources", repos["dist"], str(archive))
    v = repos["vendor"]
    (root.sources_dir / "vendor.list").write_text(
        f"deb [signed-by={vendor_key}] {v.uri} {v.suite} {v.component}\n"
    )
    _deb822(root.sources_dir / "lookalike.sources", repos["lookalike"], str(archive))
    _deb822(root.sources_dir / "unsigned.sources", repos["unsigned"], str(archive))
    _deb822(root.sources_dir / "parts.sources", repos["parts"], None)
    _deb822(root.sources_dir / "loose.sources", repos["loose"], str(loose_key))
    monkeypatch.setenv("AEGIS_APT_CONFIG", str(root.apt_config))
    cfg = load_config()
    cfg.policy_path.parent.mkdir(parents=True, exist_ok=True)
    cfg.policy_path.write_text(default_policy_text())
    return root


def _aegis(*args: str) -> object:
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def _by_file(out: str) -> dict[str, dict[str, object]]:
    """Rows keyed by their sources file's stem (dist, vendor, lookalike, ...)."""
    return {Path(s["file"]).stem: s for s in json.loads(out)["sources"]}


def test_lists_every_source_with_its_verified_signer(
    host: testrepo.AptRoot, repos: dict[str, testrepo.Repo]
) -> None:
    result = _aegis("policy", "sources", "--json")
    assert result.exit_code == 0, result.output  # type: ignore[attr-defined]
    # The shipped policy approves nothing, and says so.
    assert "approves no source" in result.stderr  # type: ignore[attr-defined]
    rows = _by_file(result.stdout)  # type: ignore[attr-defined]
    assert set(rows) == {"dist", "vendor", "lookalike", "unsigned", "parts", "loose"}
    dist = rows["dist"]
    assert (dist["signature"], dist["signer_fingerprint"]) == ("good", repos["dist"].fingerprint)
    assert dist["distribution"] is True
    assert dist["approvable"] is True
    assert dist["approved"] is False
    assert dist["file"].endswith("dist.sources")
    vendor = rows["vendor"]
    assert vendor["file"].endswith("vendor.list")
    assert vendor["signer_fingerprint"] == repos["vendor"].fingerprint
    assert (vendor["approvable"], vendor["distribution"]) == (True, False)
    look = rows["lookalike"]
    assert look["signature"] == "no-pubkey"
    assert look["approvable"] is False
    assert rows["unsigned"]["signature"] == "unsigned"
    assert "does not verify" in rows["unsigned"]["refusal"]
    assert rows["parts"]["signature"] == "good"
    assert "Signed-By" in rows["parts"]["refusal"]
    assert "writable" in rows["loose"]["refusal"]
    table = _aegis("policy", "sources")
    assert repos["dist"].fingerprint in table.stdout  # type: ignore[attr-defined]


def test_check_warns_until_a_source_is_approved(host: testrepo.AptRoot) -> None:
    result = _aegis("policy", "check", "--json")
    assert result.exit_code == 0  # type: ignore[attr-defined]
    assert "approves no source" in result.stderr  # type: ignore[attr-defined]
    assert json.loads(result.stdout)["warnings"]  # type: ignore[attr-defined]


def test_approve_configured_writes_only_sources_that_verify_with_their_own_key(
    host: testrepo.AptRoot, repos: dict[str, testrepo.Repo]
) -> None:
    require_root("--approve-configured is root only")
    cfg = load_config()
    before = cfg.policy_path.read_text()
    cfg.policy_path.chmod(0o640)
    os.chown(cfg.policy_path, 0, 65534)  # e.g. root:aegis, readable by the group
    result = _aegis("policy", "sources", "--approve-configured")
    assert result.exit_code == 0, result.output  # type: ignore[attr-defined]
    out = result.stdout  # type: ignore[attr-defined]
    assert out.count("approved ") == 2, out
    assert f"signer {repos['dist'].fingerprint} (distribution)" in out
    assert "not approved:" in out
    assert f"policy file: {cfg.policy_path}" in out
    text = cfg.policy_path.read_text()
    assert text.startswith(before)  # the operator's text and comments are kept
    st = cfg.policy_path.stat()
    assert (st.st_mode & 0o777, st.st_uid, st.st_gid) == (0o640, 0, 65534)
    config = load_policy_config(cfg.policy_path)
    assert len(config.sources) == 2
    dist = match_source(config, repos["dist"].uri, "stable", "main", repos["dist"].fingerprint)
    assert dist is not None
    assert dist.distribution
    v = repos["vendor"]
    vendor = match_source(config, v.uri, v.suite, v.component, v.fingerprint)
    assert vendor is not None
    assert (vendor.distribution, vendor.packages) == (False, ())
    for name in ("lookalike", "unsigned", "parts", "loose"):
        r = repos[name]
        assert all(s.uri != r.uri for s in config.sources), name

    # Idempotent: nothing new, the file is not rewritten.
    again = _aegis("policy", "sources", "--approve-configured", "--json")
    assert again.exit_code == 0  # type: ignore[attr-defined]
    data = json.loads(again.stdout)  # type: ignore[attr-defined]
    assert data["added"] == []
    assert {s["reason"] for s in data["skipped"] if s["approved"]} == {
        f"already approved as {s.name!r}" for s in config.sources
    }
    assert cfg.policy_path.read_text() == text

    listed = _by_file(_aegis("policy", "sources", "--json").stdout)  # type: ignore[attr-defined]
    assert listed["dist"]["approved_as"] == dist.name
    check = _aegis("policy", "check")
    assert "approves no source" not in check.stderr  # type: ignore[attr-defined]


def test_approve_configured_refuses_a_file_it_cannot_extend(host: testrepo.AptRoot) -> None:
    require_root("--approve-configured is root only")
    cfg = load_config()
    inline = default_policy_text().replace('name = "default"\n', 'name = "default"\nsources = []\n')
    cfg.policy_path.write_text(inline)
    result = _aegis("policy", "sources", "--approve-configured")
    assert result.exit_code == 3  # type: ignore[attr-defined]
    assert "nothing was written" in result.stderr  # type: ignore[attr-defined]
    assert cfg.policy_path.read_text() == inline
    cfg.policy_path.unlink()
    absent = _aegis("policy", "sources", "--approve-configured")
    assert absent.exit_code == 3  # type: ignore[attr-defined]
    assert "aegis policy init" in absent.stderr  # type: ignore[attr-defined]


def test_approve_configured_as_non_root_is_refused(host: testrepo.AptRoot) -> None:
    """A real unprivileged process (uid 65534) gets exit 7 and a clear reason."""
    require_root("needs root to drop to uid 65534")
    cfg = load_config()
    before = cfg.policy_path.read_bytes()
    # CAP_DAC_READ_SEARCH only lets the unprivileged process read the checkout
    # wherever it was cloned (e.g. under /root); its euid is 65534.
    proc = subprocess.run(
        [
            "setpriv",
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "--inh-caps=+dac_read_search",
            "--ambient-caps=+dac_read_search",
            sys.executable,
            "-m",
            "aegis",
            "policy",
            "sources",
            "--approve-configured",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        check=False,
    )
    assert proc.returncode == 7, proc.stderr
    assert "runs as root only" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert cfg.policy_path.read_bytes() == before


def test_after_approving_an_install_from_the_distribution_is_not_denied_as_unapproved(
    host: testrepo.AptRoot,
) -> None:
    """The point of the command: on a fresh policy every install is denied (unapproved);
    after --approve-configured, an install from the distribution source is not."""
    require_root("--approve-configured is root only")
    testrepo.apt_update(host, check=False)  # the broken sources fail; the good ones update

    def decide() -> dict[str, object]:
        planned = _aegis("apt", "install", "aegis-tool", "--plan", "--json", "--no-contents")
        assert planned.exit_code == 0, planned.output  # type: ignore[attr-defined]
        path = json.loads(planned.stdout)["plan_path"]  # type: ignore[attr-defined]
        result = _aegis("policy", path, "--dry-run", "--json")
        return json.loads(result.stdout)["result"]  # type: ignore[attr-defined]

    before = decide()
    assert before["decision"] == "deny"
    untrusted = [f for f in before["fired"] if f["rule_id"] == "repo.untrusted"]  # type: ignore[attr-defined]
    assert untrusted, before
    assert "not an approved source" in untrusted[0]["reason"]
    assert _aegis("policy", "sources", "--approve-configured").exit_code == 0  # type: ignore[attr-defined]
    after = decide()
    fired = {f["rule_id"] for f in after["fired"]}  # type: ignore[attr-defined]
    assert not {r for r in fired if r.startswith("repo.")}, fired
    assert after["decision"] != "deny", fired
