"""Validators anchor at the very end of the value: a trailing newline never passes.

Python's ``$`` also matches just before a final newline, so ``re.match(r"^[a-z]+$",
"abc\\n")`` succeeds. A store id, an audit kind or a fingerprint that carried a newline
would split a log line or a file name; each validator below uses ``\\Z`` instead.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from aegis.errors import InputError
from aegis.workflow.records import check_id

ROOT = Path(__file__).resolve().parents[2] / "aegis"
# A one-line validator written the old way: ``re.compile(r"^...$")``.
OLD_STYLE = re.compile(r're\.compile\(r"\^[^"\n]*(?<!\\)\$"\)')


def test_a_store_id_with_a_trailing_newline_is_refused() -> None:
    assert check_id("req-1") == "req-1"
    with pytest.raises(InputError):
        check_id("req-1\n")


def test_no_validator_ends_in_a_dollar() -> None:
    offenders = [
        f"{path.relative_to(ROOT.parent)}:{n}"
        for path in sorted(ROOT.rglob("*.py"))
        for n, line in enumerate(path.read_text().splitlines(), 1)
        if OLD_STYLE.search(line)
    ]
    assert offenders == []
