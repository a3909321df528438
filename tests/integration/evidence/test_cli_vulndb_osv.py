"""``aegis vulndb import`` of OSV records for Debian, through the real CLI (issue 12 item 22).

osv.dev's Debian export (a zip of ``DEBIAN-CVE-*``/``DSA-*`` records) is imported, then a
plan made by real apt from the signed test repository installs the vulnerable
``libssl3 3.0.1`` (``Source: openssl``): the OSV record's fix (3.0.2) exists and is not
installed, so policy denies, as with the tracker's own export.
"""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

import pytest
from click.testing import CliRunner

from aegis.cli.aegis import cli
from aegis.config import load_config
from aegis.devtools import testrepo

ASSETS = Path(__file__).resolve().parents[2] / "assets" / "evidence" / "osv"


@pytest.fixture
def osv_zip(tmp_path: Path) -> Path:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        for record in sorted(ASSETS.glob("*.json")):
            z.writestr(record.name, record.read_bytes())
    path = tmp_path / "Debian-all.zip"
    path.write_bytes(buf.getvalue())
    return path


def test_osv_import_then_a_vulnerable_install_is_denied(
    osv_zip: Path,
    aegis_home: Path,
    apt_root: testrepo.AptRoot,
    test_repo: testrepo.Repo,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    run = CliRunner()
    imported = run.invoke(cli, ["vulndb", "import", str(osv_zip), "--json"])  # auto-detected
    assert imported.exit_code == 0, imported.output
    out = json.loads(imported.stdout)
    assert (out["release"], out["packages"], out["entries"]) == ("bookworm", 3, 4)
    status = json.loads(run.invoke(cli, ["vulndb", "status", "--json"]).stdout)
    assert status["entries"] == 4

    monkeypatch.setenv("AEGIS_APT_CONFIG", str(apt_root.apt_config))
    cfg = load_config()
    cfg.policy_path.parent.mkdir(parents=True, exist_ok=True)
    default = (Path(__file__).resolve().parents[3] / "aegis/policy/default_policy.toml").read_text()
    cfg.policy_path.write_text(
        default + f'\n[[sources]]\nname = "test"\nuri = "{test_repo.uri}"\n'
        f'suite = "{test_repo.suite}"\ncomponent = "main"\n'
        f'signer_fingerprint = "{test_repo.fingerprint}"\npackages = ["aegis-*", "libssl3"]\n'
    )
    planned = run.invoke(
        cli, ["apt", "install", "libssl3=3.0.1", "--plan", "--json", "--no-contents"]
    )
    assert planned.exit_code == 0, planned.output
    plan_path = json.loads(planned.stdout)["plan_path"]
    plan = json.loads(Path(plan_path).read_text())
    assert [
        (v["source_package"], v["cve"], v["fixed_version"]) for v in plan["vulnerabilities"]
    ] == [("openssl", "CVE-2026-0001", "3.0.2")]
    assert run.invoke(cli, ["review", plan_path, "--no-review"]).exit_code == 0
    decided = run.invoke(cli, ["policy", plan_path, "--json"])
    assert decided.exit_code == 5, decided.output
    fired = {f["rule_id"] for f in json.loads(decided.stdout)["result"]["fired"]}
    assert "vuln.fixed-available" in fired


def test_a_malformed_osv_file_is_refused_and_the_index_kept(
    osv_zip: Path, aegis_home: Path, tmp_path: Path
) -> None:
    run = CliRunner()
    assert run.invoke(cli, ["vulndb", "import", str(osv_zip)]).exit_code == 0
    before = load_config().vulndb_path.read_bytes()
    bad = json.loads((ASSETS / "DEBIAN-CVE-2026-0001.json").read_text())
    bad["affected"][0]["package"]["ecosystem"] = "PyPI"
    path = tmp_path / "bad.json"
    path.write_text(json.dumps([bad]))
    result = run.invoke(cli, ["vulndb", "import", str(path), "--format", "osv"])
    assert result.exit_code == 3
    assert "not a Debian ecosystem" in result.stderr
    assert "Traceback" not in result.output
    # The tracker format asked for explicitly does not read an OSV file as a tracker export.
    wrong = run.invoke(cli, ["vulndb", "import", str(osv_zip), "--format", "tracker"])
    assert wrong.exit_code == 3
    assert load_config().vulndb_path.read_bytes() == before
