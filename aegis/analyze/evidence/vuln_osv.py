"""OSV records for Debian as a second import format (issue 12 item 22). Pure.

osv.dev publishes Debian's data in the OSV schema (https://ossf.github.io/osv-schema/):
``DEBIAN-CVE-*`` records (from the security tracker, with the tracker's urgency in
``affected[].ecosystem_specific.urgency``) and ``DSA-*``/``DLA-*``/``DTSA-*`` advisories,
one ``affected`` entry per (source package, release) with the ecosystem ``Debian:12``
(bookworm), ``Debian:13`` (trixie) ... :func:`parse_osv` reads one record, a JSON array of
records, or a zip of ``*.json`` records (osv.dev's ``Debian/all.zip``) into the same
:class:`~aegis.analyze.evidence.vulnerabilities.VulnIndex` the tracker import builds, so
matching and policy do not change.

Strict, like the tracker import: unknown keys, wrong types, duplicate keys, floats, an
ecosystem other than Debian, a package name or version that is not Debian's, a range
that is not Debian's shape (``ECOSYSTEM``, ``introduced: "0"``, at most one ``fixed``;
Aegis's index has no "introduced" and would misreport others) refuse the whole file
(one :class:`~aegis.errors.InputError` naming the record and field).

Mapping, for the configured release only:

- a ``fixed`` event F: ``resolved``, fixed in F; none: ``open`` (no fix yet);
- the entry id: the record's CVE (``DEBIAN-CVE-2024-1`` -> ``CVE-2024-1``); an advisory
  gives one entry per CVE in ``upstream``/``aliases``, or its own id when it names none;
- urgency: ``ecosystem_specific.urgency``; an advisory carries none, and then the
  tracker's ``not yet assigned`` applies (critical: untriaged fails closed) unless another
  record of the file rates the same CVE;
- several records for one (source, CVE) (a DEBIAN-CVE record and its DSA): a fix wins
  over "open", the newest fixed version is kept, and the most severe urgency given;
- ``withdrawn`` records are checked and skipped; a file without any record is refused.

Example:
    >>> rec = (b'{"id": "DEBIAN-CVE-2026-0001", "modified": "2026-01-01T00:00:00Z",'
    ...        b' "affected": [{"package": {"ecosystem": "Debian:12", "name": "openssl"},'
    ...        b' "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0"},'
    ...        b' {"fixed": "3.0.2"}]}], "ecosystem_specific": {"urgency": "high"}}]}')
    >>> idx = parse_osv(rec, release="bookworm", date="d", imported_at="i")
    >>> idx.entries["openssl"][0]
    Entry(cve='CVE-2026-0001', status='resolved', urgency='high', fixed_version='3.0.2')
"""

from __future__ import annotations

import io
import re
import zipfile
from typing import Any

from aegis.analyze.debversion import version_key
from aegis.analyze.evidence.vulnerabilities import (
    _CVE,
    _SOURCE,
    _VERSION,
    MAX_TRACKER_BYTES,
    URGENCIES,
    Entry,
    VulnIndex,
    valid_release,
)
from aegis.canonical import loads_strict, sha256_hex
from aegis.errors import InputError

RELEASE_NUMBERS = {
    "buster": "10",
    "bullseye": "11",
    "bookworm": "12",
    "trixie": "13",
    "forky": "14",
    "duke": "15",
}
"""Debian codename -> the release number OSV ecosystems use (``Debian:12``)."""

MAX_ZIP_MEMBERS = 200_000
"""Records in one zip (Debian's whole OSV export holds well under 100,000)."""
MAX_RECORD_BYTES = 4 * 1024 * 1024
"""One record, decompressed (the largest Debian records are tens of kilobytes)."""

_ID = re.compile(r"^(?:DEBIAN-)?(?:CVE-[0-9]{4}-[0-9]{4,}|TEMP-[0-9]{7}-[0-9A-F]{6})\Z")
_ADVISORY = re.compile(r"^(?:DSA|DLA|DTSA)-[0-9]{1,6}(?:-[0-9]{1,3})?\Z")
_ECOSYSTEM = re.compile(r"^Debian(?::([0-9]{1,3}))?\Z")
_RECORD_KEYS = frozenset(
    {
        "schema_version", "id", "modified", "published", "withdrawn", "aliases", "upstream",
        "related", "summary", "details", "severity", "affected", "references", "credits",
        "database_specific",
    }
)  # fmt: skip
_AFFECTED_KEYS = frozenset(
    {"package", "severity", "ranges", "versions", "ecosystem_specific", "database_specific"}
)
_PACKAGE_KEYS = frozenset({"ecosystem", "name", "purl"})
_RANGE_KEYS = frozenset({"type", "repo", "events", "database_specific"})
_SEVERITY_ORDER = ("not yet assigned", "high", "medium", "low", "end-of-life", "unimportant")
"""Most severe first; ``not yet assigned`` leads (untriaged fails closed)."""


def _fail(where: str, why: str) -> InputError:
    return InputError(f"OSV file: {where}: {why}")


def _keys(value: Any, allowed: frozenset[str], where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise _fail(where, "expected an object")
    unknown = set(value) - allowed
    if unknown:
        raise _fail(where, f"unknown key(s) {', '.join(sorted(unknown))[:120]}")
    return value


def _strings(value: Any, where: str) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise _fail(where, "expected a list of strings")
    return value


def _text(value: Any, where: str) -> str:
    if not isinstance(value, str):
        raise _fail(where, f"expected a string, got {type(value).__name__}")
    return value


_OSV_KEY = re.compile(rb'(?<!\\)"affected"\s*:')


def looks_like_osv(data: bytes) -> bool:
    """Whether ``data`` is an OSV file rather than a tracker export (import auto-detects).

    A zip, a JSON array, or an object with an ``affected`` key near its start (a tracker
    export never has one: its keys are source packages, CVE ids and the tracker's own
    fields). Only a guess: the strict parse that follows refuses what does not fit.
    """
    if data.startswith(b"PK\x03\x04"):
        return True
    head = data.lstrip()[:1]
    if head == b"[":
        return True
    return head == b"{" and _OSV_KEY.search(data[:65536]) is not None


def _records(data: bytes) -> list[tuple[str, Any]]:
    """(where, record) pairs from a JSON record, a JSON array or a zip of records."""
    if data.startswith(b"PK\x03\x04"):
        return _zip_records(data)
    doc = loads_strict(data, max_bytes=MAX_TRACKER_BYTES)
    if isinstance(doc, list):
        return [(f"[{i}]", rec) for i, rec in enumerate(doc)]
    return [("record", doc)]


def _zip_records(data: bytes) -> list[tuple[str, Any]]:
    # Bounds before reading: a zip's declared sizes decide how much is decompressed
    # (zipfile stops at the declared size and checks the CRC), so a bomb is refused here.
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
        infos = archive.infolist()
    except Exception as e:  # zipfile raises many types on a damaged archive: all refuse
        raise InputError(f"OSV file: not a readable zip ({type(e).__name__})") from e
    if len(infos) > MAX_ZIP_MEMBERS:
        raise InputError(f"OSV file: more than {MAX_ZIP_MEMBERS} members")
    total = 0
    out: list[tuple[str, Any]] = []
    for info in infos:
        if info.is_dir():
            continue
        name = info.filename[:80]
        if not info.filename.endswith(".json"):
            raise _fail(name, "a zip member that is not a .json record")
        if info.file_size > MAX_RECORD_BYTES or info.flag_bits & 0x1:
            raise _fail(name, "too large or encrypted")
        total += info.file_size
        if total > MAX_TRACKER_BYTES:
            raise InputError(f"OSV file: more than {MAX_TRACKER_BYTES} bytes decompressed")
        try:
            body = archive.read(info)
        except Exception as e:  # bad CRC, zlib errors, unsupported methods: all refuse
            raise _fail(name, f"cannot be read ({type(e).__name__})") from e
        out.append((name, loads_strict(body, max_bytes=MAX_RECORD_BYTES)))
    return out


def _events(value: Any, where: str) -> str | None:
    """The fixed version of Debian's range shape (introduced 0, at most one fixed)."""
    if not isinstance(value, list) or not value:
        raise _fail(where, "expected a non-empty list of events")
    fixed: str | None = None
    for i, event in enumerate(value):
        if not isinstance(event, dict) or len(event) != 1:
            raise _fail(f"{where}[{i}]", "expected an object with one key")
        ((kind, version),) = event.items()
        version = _text(version, f"{where}[{i}].{kind}")
        if kind == "introduced" and i == 0 and version == "0":
            continue
        if kind == "fixed" and i == len(value) - 1 and i > 0:
            if not _VERSION.match(version):
                raise _fail(f"{where}[{i}]", f"malformed version {version[:60]!r}")
            fixed = version
            continue
        raise _fail(
            f"{where}[{i}]",
            f"unsupported event {kind}={version[:40]!r} (Aegis reads Debian's "
            "introduced 0 / fixed ranges)",
        )
    return fixed


def _affected(value: Any, where: str, wanted: str) -> tuple[str, str | None, str | None] | None:
    """(source, fixed version, urgency) of one affected entry, if it is for ``wanted``."""
    entry = _keys(value, _AFFECTED_KEYS, where)
    package = _keys(entry.get("package"), _PACKAGE_KEYS, f"{where}.package")
    ecosystem = _text(package.get("ecosystem"), f"{where}.package.ecosystem")
    m = _ECOSYSTEM.match(ecosystem)
    if m is None:
        raise _fail(where, f"not a Debian ecosystem: {ecosystem[:40]!r}")
    name = _text(package.get("name"), f"{where}.package.name")
    if not _SOURCE.match(name):
        raise _fail(where, f"not a Debian source package name: {name[:60]!r}")
    if "purl" in package:
        _text(package["purl"], f"{where}.package.purl")
    for v in _strings(entry.get("versions"), f"{where}.versions"):
        if not _VERSION.match(v):
            raise _fail(f"{where}.versions", f"malformed version {v[:60]!r}")
    ranges = entry.get("ranges")
    if not isinstance(ranges, list) or len(ranges) != 1:
        raise _fail(f"{where}.ranges", "expected exactly one range (Debian's shape)")
    rng = _keys(ranges[0], _RANGE_KEYS, f"{where}.ranges[0]")
    if rng.get("type") != "ECOSYSTEM":
        raise _fail(f"{where}.ranges[0]", "expected type ECOSYSTEM")
    fixed = _events(rng.get("events"), f"{where}.ranges[0].events")
    specific = entry.get("ecosystem_specific", {})
    if not isinstance(specific, dict):
        raise _fail(f"{where}.ecosystem_specific", "expected an object")
    urgency = specific.get("urgency")
    if urgency is not None:
        urgency = _text(urgency, f"{where}.ecosystem_specific.urgency").rstrip("*")
        if urgency not in URGENCIES:
            raise _fail(where, f"unknown urgency {urgency[:40]!r}")
    if m.group(1) != wanted:
        return None
    return name, fixed, urgency


def _ids(record: dict[str, Any], where: str) -> list[str]:
    rid = _text(record.get("id"), f"{where}.id")
    if _ID.match(rid):
        return [rid.removeprefix("DEBIAN-")]
    if not _ADVISORY.match(rid):
        raise _fail(where, f"not a Debian record id: {rid[:60]!r}")
    named = _strings(record.get("upstream"), f"{where}.upstream")
    named += _strings(record.get("aliases"), f"{where}.aliases")
    cves = sorted({n.removeprefix("DEBIAN-") for n in named if _ID.match(n)})
    return cves or [rid]


def _check_record(record: Any, where: str) -> dict[str, Any]:
    rec = _keys(record, _RECORD_KEYS, where)
    for key in ("modified", "published", "withdrawn", "summary", "details", "schema_version"):
        if key in rec:
            _text(rec[key], f"{where}.{key}")
    for key in ("aliases", "upstream", "related"):
        _strings(rec.get(key), f"{where}.{key}")
    if not isinstance(rec.get("affected"), list):
        raise _fail(f"{where}.affected", "expected a list")
    return rec


def _merge(old: Entry | None, new: Entry) -> Entry:
    if old is None:
        return new
    ranked = [u for u in (old.urgency, new.urgency) if u]
    urgency = min(ranked, key=_SEVERITY_ORDER.index) if ranked else ""
    fixed = [e.fixed_version for e in (old, new) if e.fixed_version]
    if not fixed:
        return Entry(new.cve, "open", urgency, None)
    return Entry(new.cve, "resolved", urgency, max(fixed, key=version_key))


def parse_osv(data: bytes, *, release: str, date: str, imported_at: str) -> VulnIndex:
    """Validate OSV records for Debian and index them for ``release``.

    Args:
        data: one record, a JSON array of records, or a zip of ``*.json`` records.
        release: codename to keep (``bookworm`` reads ``Debian:12``).
        date: the database date to record (UTC ``...Z``).
        imported_at: when the import ran (UTC ``...Z``).

    Raises:
        InputError: oversized, not strict JSON, not Debian, or any record malformed.
    """
    valid_release(release)
    wanted = RELEASE_NUMBERS.get(release)
    if wanted is None:
        raise InputError(f"OSV file: no Debian release number known for {release!r}")
    if len(data) > MAX_TRACKER_BYTES:
        raise InputError(f"OSV file is larger than {MAX_TRACKER_BYTES} bytes")
    found: dict[tuple[str, str], Entry] = {}
    records = _records(data)
    if not records:
        # An export always holds records: an empty one is a failed download, and importing
        # it would silently say "no known issues" (the tracker's own "{}" does say that).
        raise InputError("OSV file: no records")
    for where, record in records:
        rec = _check_record(record, where)
        ids = _ids(rec, where)
        for i, item in enumerate(rec["affected"]):
            hit = _affected(item, f"{where}.affected[{i}]", wanted)
            if hit is None or "withdrawn" in rec:
                continue
            source, fixed, urgency = hit
            for cve in ids:
                if not _CVE.match(cve) and not _ADVISORY.match(cve):
                    raise _fail(where, f"bad id {cve[:60]!r}")
                key = (source, cve)
                entry = Entry(cve, "resolved" if fixed else "open", urgency or "", fixed)
                found[key] = _merge(found.get(key), entry)
    entries: dict[str, list[Entry]] = {}
    for (source, cve), merged in found.items():
        # No record rated it (advisories carry no urgency): the tracker's untriaged one.
        urgency = merged.urgency or "not yet assigned"
        entries.setdefault(source, []).append(
            Entry(cve, merged.status, urgency, merged.fixed_version)
        )
    return VulnIndex(
        release,
        date,
        imported_at,
        sha256_hex(data),
        {src: tuple(sorted(rows, key=lambda e: e.cve)) for src, rows in sorted(entries.items())},
    )
