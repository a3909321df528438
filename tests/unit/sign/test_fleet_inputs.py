"""Fleet inputs read from files: hosts files and cohort documents are parsed strictly."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from aegis.devtools import signing
from aegis.errors import InputError
from aegis.fleet.cohort import cohort_bytes, cohort_document, document_hash
from aegis.fleet.plan import read_hosts
from aegis.fleet.service import read_cohort_document


def test_hosts_file_gives_each_host_its_home(tmp_path: Path) -> None:
    path = tmp_path / "hosts.toml"
    path.write_text(
        '[[hosts]]\nname = "a"\nhome = "/srv/a"\n[hosts.env]\nAEGIS_HOST_ID = "a"\n'
        '[[hosts]]\nname = "b"\nhome = "/srv/b"\n'
    )
    hosts = read_hosts(path)
    assert [(h.name, h.env["AEGIS_HOME"]) for h in hosts] == [("a", "/srv/a"), ("b", "/srv/b")]
    assert hosts[0].env["AEGIS_HOST_ID"] == "a"


@pytest.mark.parametrize(
    "text",
    [
        "",
        '[[hosts]]\nname = "a"\n',
        '[[hosts]]\nname = "a"\nhome = "/a"\n[[hosts]]\nname = "a"\nhome = "/b"\n',
        '[[hosts]]\nname = "a"\nhome = "/a"\n[hosts.env]\nLD_PRELOAD = "/x.so"\n',
        '[[hosts]]\nname = "a"\nhome = "/a"\nshell = "rm -rf /"\n',
        "not toml [",
    ],
)
def test_a_bad_hosts_file_is_refused(tmp_path: Path, text: str) -> None:
    path = tmp_path / "hosts.toml"
    path.write_text(text)
    with pytest.raises(InputError):
        read_hosts(path)


def test_a_cohort_document_edited_after_planning_is_refused(tmp_path: Path) -> None:
    doc = cohort_document(signing.make_plan(), signing.binding())
    digest = document_hash(doc)
    path = tmp_path / "c.json"
    path.write_bytes(cohort_bytes(doc))
    assert read_cohort_document(path, digest) == doc
    doc["changes"][0]["to"] = "9.9"
    path.write_bytes(cohort_bytes(doc))
    with pytest.raises(InputError, match="not"):
        read_cohort_document(path, digest)


def test_approve_needs_exactly_one_of_a_plan_or_a_cohort(tmp_path: Path) -> None:
    from aegis.cli.aegisctl import cli

    key = tmp_path / "k.key"
    for args in ([], ["p.json", "--cohort", "a" * 64]):
        result = CliRunner().invoke(cli, ["approve", *args, "--reason", "x", "--key", str(key)])
        assert result.exit_code == 3, result.output
