"""OSV records for Debian as a vulnerability import format (issue 12 item 22)."""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path
from typing import Any

import pytest

from aegis.analyze.evidence.vuln_osv import looks_like_osv, parse_osv
from aegis.analyze.evidence.vulnerabilities import Entry, index_from_dict, index_to_dict
from aegis.errors import InputError

ASSETS = Path(__file__).resolve().parents[2] / "assets" / "evidence" / "osv"
RECORDS = sorted(ASSETS.glob("*.json"))


def _records() -> list[Any]:
    return [json.loads(p.read_text()) for p in RECORDS]


def _parse(data: bytes, release: str = "bookworm") -> dict[str, tuple[Entry, ...]]:
    return dict(parse_osv(data, release=release, date="d", imported_at="i").entries)


def _zip(records: list[Any]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        for rec in records:
            z.writestr(f"{rec['id']}.json", json.dumps(rec))
    return buf.getvalue()


EXPECTED_BOOKWORM = {
    "openssl": (Entry("CVE-2026-0001", "resolved", "high", "3.0.2"),),
    "zlib": (Entry("CVE-2026-0002", "open", "low", None),),
    # CVE-2026-0003: the DEBIAN-CVE record (medium, deb12u8) and DSA-5999-1 (no urgency,
    # deb12u9) merge to the newer fix with the rated urgency; CVE-2026-0004 only in the DSA.
    "curl": (
        Entry("CVE-2026-0003", "resolved", "medium", "7.88.1-10+deb12u9"),
        Entry("CVE-2026-0004", "resolved", "not yet assigned", "7.88.1-10+deb12u9"),
    ),
}


@pytest.mark.parametrize("shape", ["array", "zip"])
def test_a_realistic_export_indexes_the_configured_release(shape: str) -> None:
    records = _records()
    data = json.dumps(records).encode() if shape == "array" else _zip(records)
    assert looks_like_osv(data)
    assert _parse(data) == EXPECTED_BOOKWORM  # the withdrawn DLA (sudo) is skipped


def test_trixie_reads_debian_13() -> None:
    data = json.dumps(_records()).encode()
    assert _parse(data, "trixie") == {
        "openssl": (Entry("CVE-2026-0001", "resolved", "high", "3.1.0-1"),)
    }


def test_one_record_and_the_stored_index_round_trip() -> None:
    data = RECORDS[0].read_bytes()
    index = parse_osv(data, release="bookworm", date="d", imported_at="i")
    assert index_from_dict(index_to_dict(index)) == index


def test_an_advisory_without_cves_keeps_its_own_id() -> None:
    rec = json.loads((ASSETS / "DSA-5999-1.json").read_text())
    del rec["upstream"]
    entries = _parse(json.dumps(rec).encode())
    index = parse_osv(json.dumps(rec).encode(), release="bookworm", date="d", imported_at="i")
    assert entries["curl"][0].cve == "DSA-5999-1"
    assert index_from_dict(index_to_dict(index)) == index


def test_the_tracker_export_is_not_taken_for_osv() -> None:
    assert not looks_like_osv(b'{"openssl": {"CVE-2026-0001": {"releases": {}}}}')
    assert not looks_like_osv(b"{}")


def _bad(**change: Any) -> bytes:
    rec = json.loads((ASSETS / "DEBIAN-CVE-2026-0001.json").read_text())
    affected = rec["affected"][0]
    for key, value in change.items():
        target, _, field = key.partition("__")
        where = {"rec": rec, "aff": affected, "pkg": affected["package"]}[target]
        if value is None:
            del where[field]
        else:
            where[field] = value
    return json.dumps(rec).encode()


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (_bad(rec__unknown=1), "unknown key(s) unknown"),
        (_bad(pkg__ecosystem="npm"), "not a Debian ecosystem"),
        (_bad(pkg__ecosystem="Ubuntu:22.04"), "not a Debian ecosystem"),
        (_bad(pkg__name="Open SSL"), "not a Debian source package name"),
        (_bad(rec__id="GHSA-xxxx-yyyy-zzzz"), "not a Debian record id"),
        (_bad(rec__affected={}), "expected a list"),
        (
            _bad(aff__ranges=[{"type": "SEMVER", "events": [{"introduced": "0"}]}]),
            "expected type ECOSYSTEM",
        ),
        (
            _bad(aff__ranges=[{"type": "ECOSYSTEM", "events": [{"introduced": "1.0"}]}]),
            "unsupported event introduced",
        ),
        (
            _bad(
                aff__ranges=[
                    {"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"last_affected": "2"}]}
                ]
            ),
            "unsupported event last_affected",
        ),
        (
            _bad(
                aff__ranges=[
                    {"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"fixed": "1 0"}]}
                ]
            ),
            "malformed version",
        ),
        (_bad(aff__ranges=[]), "exactly one range"),
        (_bad(aff__ecosystem_specific={"urgency": "critical"}), "unknown urgency"),
        (_bad(aff__versions=[1]), "expected a list of strings"),
        (_bad(rec__modified=3), "expected a string"),
        (b'{"id": "DSA-1-1", "id": "DSA-2-1", "affected": []}', "duplicate"),
        (b'{"id": "DSA-1-1", "affected": [], "x": 1.5}', ""),
        (b"PK\x03\x04 not really a zip", "not a readable zip"),
        (b"[]", "no records"),
    ],
)
def test_malformed_records_refuse_the_whole_file(data: bytes, message: str) -> None:
    with pytest.raises(InputError) as err:
        parse_osv(data, release="bookworm", date="d", imported_at="i")
    assert message in str(err.value)


def test_a_zip_member_too_large_is_refused_before_reading() -> None:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("DSA-1-1.json", b" " * (5 * 1024 * 1024))  # compresses to a few KiB
    with pytest.raises(InputError, match="too large"):
        parse_osv(buf.getvalue(), release="bookworm", date="d", imported_at="i")


def test_a_release_without_a_number_is_refused() -> None:
    with pytest.raises(InputError, match="no Debian release number"):
        parse_osv(RECORDS[0].read_bytes(), release="sid", date="d", imported_at="i")
