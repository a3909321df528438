"""OSV records for Debian fail only through the error tree (issue 12 items 20, 22).

Mutated real-shaped records and damaged zips go through :func:`parse_osv`: nothing but
:class:`AegisError` may escape, and what it accepts is a well-formed index.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from aegis.errors import AegisError

from .test_parsers_fuzz import mutated
from .test_script_fuzz import SETTINGS

OSV_SAMPLE = (
    Path(__file__).parents[2] / "assets" / "evidence" / "osv" / "DSA-5999-1.json"
).read_text()


@SETTINGS
@given(st.one_of(mutated(OSV_SAMPLE), st.text(max_size=300)))
def test_osv_records_fail_only_through_the_error_tree(text: str) -> None:
    from aegis.analyze.evidence.vuln_osv import parse_osv

    try:
        index = parse_osv(
            text.encode("utf-8", "surrogatepass"), release="bookworm", date="d", imported_at="i"
        )
    except AegisError:
        return
    for source, rows in index.entries.items():
        assert source
        assert rows
        for row in rows:
            assert row.status in ("open", "resolved")


@SETTINGS
@given(st.binary(max_size=400), st.integers(0, 400))
def test_damaged_osv_zips_fail_only_through_the_error_tree(noise: bytes, at: int) -> None:
    import io
    import zipfile

    from aegis.analyze.evidence.vuln_osv import parse_osv

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("DSA-5999-1.json", OSV_SAMPLE)
    data = buf.getvalue()
    data = data[:at] + noise + data[at + len(noise) :]
    with contextlib.suppress(AegisError):
        parse_osv(data, release="bookworm", date="d", imported_at="i")
