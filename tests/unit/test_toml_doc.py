"""Every TOML document Aegis reads goes through one strict reader (aegis/toml_doc.py).

The attacks: an integer past Python's 4300-digit limit (a bare ValueError from inside
tomllib, which escaped two readers as an internal error), bytes that are not UTF-8, and a
document over the reader's size cap. Each loader answers with its own error class.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from aegis.ecosystems.cargo.crate import CrateError, _toml
from aegis.errors import InputError
from aegis.fleet.plan import read_hosts
from aegis.policy.config import PolicyConfigError, parse_policy_config
from aegis.toml_doc import load_toml
from aegis.workflow.graph import WorkflowError, parse_workflow

HUGE_INT = b"x = " + b"1" * 5000 + b"\n"
NOT_UTF8 = b'x = "\xff"\n'


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (HUGE_INT, "an integer has too many digits"),
        (NOT_UTF8, "not UTF-8"),
        (b"x = [", "Invalid"),
        (b"#" * 9000, "larger than 8192 bytes"),
    ],
)
def test_each_bad_document_is_the_callers_error_with_a_reason(data: bytes, reason: str) -> None:
    with pytest.raises(InputError, match=reason):
        load_toml(data, what="config t.toml", max_bytes=8192)
    with pytest.raises(CrateError, match=reason):
        load_toml(data, what="Cargo.toml", max_bytes=8192, error=CrateError)


def test_the_loaders_that_let_a_huge_integer_through_now_refuse_it(tmp_path: Path) -> None:
    hosts = tmp_path / "hosts.toml"
    hosts.write_bytes(HUGE_INT)
    with pytest.raises(InputError, match=r"hosts file .* too many digits"):
        read_hosts(hosts)
    with pytest.raises(CrateError, match="too many digits"):
        _toml(HUGE_INT, "Cargo.toml")
    with pytest.raises(PolicyConfigError, match="too many digits"):
        parse_policy_config(HUGE_INT.decode())
    with pytest.raises(WorkflowError, match="too many digits"):
        parse_workflow(HUGE_INT, source="workflow.toml")
