"""The maintainer-script reader fails only through the error tree (issue 12 items 10, 20).

Scripts are untrusted: mutated real Debian scripts and random text go through bashlex
(:func:`parse_script`) and the whole scanner. The parser may refuse only with
:class:`ScriptParseError`; the scanner may not raise at all (a script it cannot read is
a finding), and what it returns holds the invariants policy relies on.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aegis.analyze.evidence.script_parse import ScriptParseError, parse_script
from aegis.analyze.evidence.script_text import RANK
from aegis.analyze.evidence.scripts import RULE_IDS, scan_script
from aegis.errors import AegisError

from .test_parsers_fuzz import mutated

ASSETS = Path(__file__).parents[2] / "assets" / "evidence" / "debian-scripts"
SAMPLE = (ASSETS / "openssh-server.postinst").read_text()[:3000]
SHELL_BITS = ["$(", "`", "${", "<<EOF\n", "'", '"', "case x in", ";;", "esac", "| sh", "\\\n"]
SETTINGS = settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


def scripts() -> st.SearchStrategy[str]:
    shellish = st.lists(st.sampled_from(SHELL_BITS) | st.text(max_size=6), max_size=40)
    return st.one_of(mutated(SAMPLE), st.text(max_size=300), shellish.map("".join))


@SETTINGS
@given(scripts())
def test_parse_refuses_only_with_its_error(text: str) -> None:
    with contextlib.suppress(ScriptParseError):  # the one refusal allowed
        parse_script(text)


@SETTINGS
@given(scripts())
def test_the_scanner_raises_nothing_and_reports_known_rules(text: str) -> None:
    try:
        findings = scan_script("p", "postinst", text.encode("utf-8", "surrogatepass"))
    except AegisError:
        return
    for f in findings:
        assert f.rule in RULE_IDS, f
        assert f.severity in RANK, f
        assert f.line >= 1, f
