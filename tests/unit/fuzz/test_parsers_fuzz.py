"""Parsers of untrusted input fail only through the error tree (issue 12 item 20).

Every parser of tool output, of files read back and of wire frames gets mutated inputs
built from a real sample (byte flips, insertions of hostile characters, truncation,
duplication) and random ones. Nothing but :class:`AegisError` may escape: anything else
reaches a user as an internal error. Where a parser accepts, what it returns must hold
the invariants its callers rely on. Bounded by Hypothesis's example count, not by time.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aegis.analyze.debversion import VERSION as _VERSION
from aegis.ecosystems.apt.dpkg import parse_dpkg_query
from aegis.ecosystems.apt.names import parse_target
from aegis.ecosystems.apt.parse import (
    parse_apt_config_dump,
    parse_apt_error,
    parse_apt_policy,
    parse_apt_simulation,
    parse_control_records,
    parse_print_uris,
)
from aegis.errors import AegisError
from aegis.execute.protocol import parse_answer as parse_wire_answer
from aegis.execute.protocol import parse_request
from aegis.execute.resolve import parse_resolution
from aegis.policy.config import parse_policy_config
from aegis.review.parse import parse_answer as parse_review_answer
from aegis.review.parse import parse_envelope
from aegis.sign.approvals import parse_approval
from aegis.sign.execution_plan import parse_execution_plan
from aegis.workflow.graph import default_workflow_path, parse_workflow

ASSETS = Path(__file__).parents[2] / "assets"
HOSTILE = ["\xff", "\x00", "\u202e", "[", "]", "(", ")", ":", " ", "\n", "\t", "~", "-", "1\xff.0"]
SIM_SAMPLE = (ASSETS / "apt" / "upgrade.out").read_text() + (
    ASSETS / "apt" / "remove-base.out"
).read_text()
SETTINGS = settings(
    max_examples=60, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large]
)


@st.composite
def mutated(draw: st.DrawFn, sample: str) -> str:
    """``sample`` with a few random edits: insert, replace, delete, truncate, duplicate."""
    text = sample
    for _ in range(draw(st.integers(1, 6))):
        pos = draw(st.integers(0, len(text)))
        how = draw(st.sampled_from(["insert", "replace", "delete", "truncate", "duplicate"]))
        piece = draw(st.one_of(st.sampled_from(HOSTILE), st.text(max_size=8)))
        if how == "insert":
            text = text[:pos] + piece + text[pos:]
        elif how == "replace":
            text = text[:pos] + piece + text[pos + len(piece) :]
        elif how == "delete":
            text = text[:pos] + text[pos + draw(st.integers(1, 20)) :]
        elif how == "truncate":
            text = text[:pos]
        else:
            line = text[pos:].split("\n", 1)[0]
            text = text[:pos] + line + "\n" + text[pos:]
    return text


def _only_aegis_errors(parse: Callable[[Any], Any], value: Any) -> Any:
    try:
        return parse(value)
    except AegisError:
        return None


def texts(sample: str) -> st.SearchStrategy[str]:
    return st.one_of(mutated(sample), st.text(max_size=300))


@SETTINGS
@given(texts(SIM_SAMPLE))
def test_apt_simulation(text: str) -> None:
    sim = _only_aegis_errors(parse_apt_simulation, text)
    if sim is not None:  # what is accepted carries only valid versions
        for change in sim.changes:
            for version in (change.current_version, change.candidate_version):
                assert version is None or _VERSION.match(version), change


def test_the_reported_version_crash_is_an_input_error() -> None:
    line = "Inst base [1.0] (1\xff.0 Test:stable [all])\n"
    with pytest.raises(AegisError) as err:
        parse_apt_simulation(line)
    assert err.value.exit_code == 3


POLICY_SAMPLE = """aegis-base:
  Installed: 1.0
  Candidate: 1.2
  Version table:
     1.2 500
        500 file:/srv/repo stable/main amd64 Packages
 *** 1.0 100
        100 /var/lib/dpkg/status
"""
URIS_SAMPLE = "'file:/srv/repo/pool/a_1.0_all.deb' a_1.0_all.deb 1234 SHA256:" + "a" * 64 + "\n"
CONTROL_SAMPLE = "Package: a\nVersion: 1.0\nDescription: x\n more\n\nPackage: b\nVersion: 2\n"
DUMP_SAMPLE = 'Dir "/";\nDir::State "var/lib/apt";\nAPT::Architecture "amd64";\n'
ERROR_SAMPLE = "E: Unable to locate package nosuch\nW: something\n"
DPKG_SAMPLE = "a\tall\t1.0\tinstall ok installed\nb\tamd64\t2\tnot-installed\n"


@SETTINGS
@pytest.mark.parametrize(
    ("parse", "sample"),
    [
        (parse_apt_policy, POLICY_SAMPLE),
        (parse_print_uris, URIS_SAMPLE),
        (parse_control_records, CONTROL_SAMPLE),
        (parse_apt_config_dump, DUMP_SAMPLE),
        (parse_apt_error, ERROR_SAMPLE),
        (parse_dpkg_query, DPKG_SAMPLE),
        (parse_target, "aegis-base=1.0"),
        (parse_policy_config, "format = 'aegis.policy-config/1'\nruleset = 'aegis.rules/1'\n"),
    ],
    ids=["apt-policy", "print-uris", "control", "config-dump", "apt-error", "dpkg", "target", "pc"],
)
@given(data=st.data())
def test_tool_output_parsers(parse: Callable[[str], Any], sample: str, data: st.DataObject) -> None:
    _only_aegis_errors(parse, data.draw(texts(sample)))


WORKFLOW = default_workflow_path().read_text(encoding="utf-8")


@SETTINGS
@given(texts(WORKFLOW))
def test_workflow_file(text: str) -> None:
    _only_aegis_errors(parse_workflow, text.encode("utf-8", "surrogatepass"))


_JSON_DOC = {
    "schema_version": "x",
    "plan_id": "p-1",
    "decision": "allow",
    "nested": {"a": [1, 2, "3"], "b": None},
}


@SETTINGS
@pytest.mark.parametrize(
    "parse",
    [parse_execution_plan, parse_approval, parse_resolution, parse_envelope, parse_review_answer],
    ids=["execution-plan", "approval", "resolution", "review-envelope", "review-answer"],
)
@given(data=st.data())
def test_documents_read_back(parse: Callable[[bytes], Any], data: st.DataObject) -> None:
    text = data.draw(texts(json.dumps(_JSON_DOC)))
    _only_aegis_errors(parse, text.encode("utf-8", "surrogatepass"))


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner),
    max_leaves=12,
)


@SETTINGS
@pytest.mark.parametrize("parse", [parse_request, parse_wire_answer], ids=["request", "answer"])
@given(value=json_values)
def test_wire_frames(parse: Callable[[Any], Any], value: Any) -> None:
    _only_aegis_errors(parse, value)
