"""Vulnerability evidence from the Debian security tracker's JSON. Pure.

Input (docs/testing.md "Vulnerability data offline"): one JSON document, source package -> CVE id ->
``{description, scope?, debianbug?, releases: {codename: {status, urgency,
fixed_version?, repositories, nodsa?, nodsa_reason?}}}``. :func:`parse_tracker`
validates it strictly (unknown keys, wrong types, bad names or versions, duplicate
keys, floats: one :class:`~aegis.errors.InputError` naming the path) and keeps
only the configured release (``AEGIS_VULN_RELEASE``, default ``bookworm``) in a
compact :class:`VulnIndex`. :mod:`aegis.analyze.evidence.vulndb` stores it at
``cfg.vulndb_path`` with the database date.

Matching (:func:`match`) is by **source** package (``libssl3`` matches through
``Source: openssl``) at each change's **post-change** version (the candidate; the
current version for a held-back package; removals are skipped). Versions compare
in Debian order (:mod:`aegis.analyze.debversion`, the one comparator). Per tracker
entry for that source:

- ``resolved`` with ``fixed_version`` F:
  - the post-change version < F: a match with ``fixed_by_plan=False`` (a fix exists
    and the plan does not install it: policy denies), downgrades included;
  - the post-change version >= F and the installed version was below F: a match
    with ``fixed_by_plan=True`` (the plan installs the fix);
  - the post-change version >= F otherwise (already fixed, or a fresh install of a
    fixed version): not a match.
  ``fixed_version`` ``0`` means "never affected" and never matches.
- ``open`` or ``undetermined``: a match with ``fixed_version=None`` (no fix yet:
  policy asks for approval).

Severity mapping to the operator contract's "critical vulnerability evidence"
(``Vulnerability.critical``), by the tracker's urgency (trailing ``*``, the
tracker's "not yet confirmed" mark, is ignored):

===================  ==========  ========================================================
urgency              critical    why
===================  ==========  ========================================================
high                 yes         the tracker's highest urgency
not yet assigned     yes         untriaged: fail closed until the tracker rates it
medium               no
low                  no
unimportant          no          the tracker says no security impact worth a fix
end-of-life          no          the release no longer gets fixes for it; still listed
===================  ==========  ========================================================

The mapping is :data:`CRITICAL_URGENCIES`; docs/vulnerabilities.md repeats it.

Example:
    >>> idx = parse_tracker(
    ...     b'{"openssl": {"CVE-2024-0001": {"description": "x", "releases": {"bookworm":'
    ...     b' {"status": "resolved", "urgency": "high", "fixed_version": "3.0.2",'
    ...     b' "repositories": {"bookworm": "3.0.2"}}}}}}',
    ...     release="bookworm", date="2026-01-01T00:00:00Z", imported_at="2026-01-02T00:00:00Z")
    >>> idx.entries["openssl"][0].fixed_version
    '3.0.2'
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from aegis.analyze.debversion import VERSION_GRAMMAR, version_at_least
from aegis.canonical import loads_strict, sha256_hex
from aegis.errors import InputError
from aegis.model import Action, PackageChange, Vulnerability

INDEX_SCHEMA = "aegis.vulndb/1"

MAX_TRACKER_BYTES = 512 * 1024 * 1024
"""Largest tracker file accepted (the full Debian file is well under this)."""

MAX_INDEX_BYTES = 256 * 1024 * 1024

STATUSES = frozenset({"resolved", "open", "undetermined"})
URGENCIES = frozenset({"unimportant", "low", "medium", "high", "not yet assigned", "end-of-life"})
CRITICAL_URGENCIES = frozenset({"high", "not yet assigned"})
"""Urgencies that make a match the contract's "critical" (see the module docstring)."""

_SOURCE = re.compile(r"^[a-z0-9][a-z0-9+.-]{0,127}\Z")
_CVE = re.compile(r"^(?:CVE-[0-9]{4}-[0-9]{4,}|TEMP-[0-9]{7}-[0-9A-F]{6})\Z")
_ENTRY_ID = re.compile(
    r"^(?:CVE-[0-9]{4}-[0-9]{4,}|TEMP-[0-9]{7}-[0-9A-F]{6}|(?:DSA|DLA|DTSA)-[0-9]{1,6}(?:-[0-9]{1,3})?)\Z"
)
"""A stored entry's id: a CVE or TEMP id, or a Debian advisory naming none (OSV import)."""
_VERSION = re.compile(rf"\A(?=.{{1,256}}\Z){VERSION_GRAMMAR}\Z", re.ASCII)
"""A tracker or OSV version: the comparator's grammar, at most 256 characters."""
_RELEASE = re.compile(r"^[a-z][a-z0-9-]{1,31}\Z")
_CVE_KEYS = frozenset({"description", "scope", "debianbug", "releases"})
_REL_KEYS = frozenset(
    {"status", "urgency", "fixed_version", "repositories", "nodsa", "nodsa_reason"}
)


@dataclass(frozen=True)
class Entry:
    """One tracker entry for the configured release."""

    cve: str
    status: str
    """resolved, open or undetermined."""
    urgency: str
    fixed_version: str | None


@dataclass(frozen=True)
class VulnIndex:
    """The imported database for one release."""

    release: str
    date: str
    """Database date (the tracker file's modification time, UTC ``...Z``)."""
    imported_at: str
    source_sha256: str
    entries: Mapping[str, tuple[Entry, ...]]
    """Source package -> its entries for :attr:`release`, sorted by CVE id."""

    @property
    def entry_count(self) -> int:
        """Entries across all source packages (what ``aegis vulndb`` reports)."""
        return sum(len(v) for v in self.entries.values())


def is_critical(urgency: str) -> bool:
    """The documented severity mapping: urgency -> the contract's "critical"."""
    return urgency.rstrip("*") in CRITICAL_URGENCIES


def valid_release(name: str) -> str:
    """Return ``name`` if it is a plausible Debian codename, else raise InputError."""
    if not _RELEASE.match(name):
        raise InputError(f"vulnerability release {name!r} is not a Debian codename")
    return name


# --- parsing -------------------------------------------------------------------------


def _fail(where: str, why: str) -> InputError:
    return InputError(f"tracker file: {where}: {why}")


def _str(value: Any, where: str) -> str:
    if not isinstance(value, str):
        raise _fail(where, f"expected a string, got {type(value).__name__}")
    return value


def _parse_release(value: Any, where: str) -> Entry | None:
    """Validate one release entry; None when it can never match ('not affected')."""
    if not isinstance(value, dict):
        raise _fail(where, "expected an object")
    unknown = set(value) - _REL_KEYS
    if unknown:
        raise _fail(where, f"unknown key(s) {', '.join(sorted(unknown))}")
    status = _str(value.get("status"), f"{where}.status")
    if status not in STATUSES:
        raise _fail(where, f"unknown status {status!r}")
    urgency = _str(value.get("urgency"), f"{where}.urgency").rstrip("*")
    if urgency not in URGENCIES:
        raise _fail(where, f"unknown urgency {urgency!r}")
    fixed = value.get("fixed_version")
    if fixed is not None:
        fixed = _str(fixed, f"{where}.fixed_version")
        if not _VERSION.match(fixed):
            raise _fail(where, f"malformed fixed_version {fixed[:60]!r}")
    repos = value.get("repositories", {})
    if not isinstance(repos, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in repos.items()
    ):
        raise _fail(f"{where}.repositories", "expected an object of strings")
    for key in ("nodsa", "nodsa_reason"):
        if key in value:
            _str(value[key], f"{where}.{key}")
    if status == "resolved":
        if fixed is None:
            raise _fail(where, "resolved without fixed_version")
        if fixed == "0":
            return None  # the tracker's "not affected"
    return Entry("", status, urgency, fixed if status == "resolved" else None)


def parse_tracker(data: bytes, *, release: str, date: str, imported_at: str) -> VulnIndex:
    """Validate a tracker JSON document and index it for ``release``.

    Args:
        data: the file's bytes.
        release: codename to keep (``bookworm``).
        date: the database date to record (UTC ``...Z``).
        imported_at: when the import ran (UTC ``...Z``).

    Raises:
        InputError: oversized, not strict JSON, or any entry malformed.
    """
    valid_release(release)
    if len(data) > MAX_TRACKER_BYTES:
        raise InputError(f"tracker file is larger than {MAX_TRACKER_BYTES} bytes")
    doc = loads_strict(data, max_bytes=MAX_TRACKER_BYTES)
    if not isinstance(doc, dict):
        # An empty object is a valid export: "no known issues" must be importable.
        raise InputError("tracker file: expected an object keyed by source package")
    entries: dict[str, tuple[Entry, ...]] = {}
    for source, cves in doc.items():
        if not _SOURCE.match(source):
            raise _fail(repr(source[:60]), "not a Debian source package name")
        if not isinstance(cves, dict):
            raise _fail(source, "expected an object keyed by CVE id")
        found: list[Entry] = []
        for cve, body in cves.items():
            entry = _parse_cve(f"{source}.{cve[:40]}", cve, body, release)
            if entry is not None:
                found.append(entry)
        if found:
            entries[source] = tuple(sorted(found, key=lambda e: e.cve))
    return VulnIndex(release, date, imported_at, sha256_hex(data), entries)


def _parse_cve(where: str, cve: str, body: Any, release: str) -> Entry | None:
    """Validate one CVE object fully; return its entry for ``release``, if any.

    Every release is checked, not just ``release``: a malformed file is refused whole.
    """
    if not _CVE.match(cve):
        raise _fail(where, "not a CVE or TEMP id")
    if not isinstance(body, dict):
        raise _fail(where, "expected an object")
    unknown = set(body) - _CVE_KEYS
    if unknown:
        raise _fail(where, f"unknown key(s) {', '.join(sorted(unknown))}")
    if "description" in body:
        _str(body["description"], f"{where}.description")
    if "scope" in body:
        _str(body["scope"], f"{where}.scope")
    bug = body.get("debianbug")
    if bug is not None and (not isinstance(bug, int) or isinstance(bug, bool)):
        raise _fail(f"{where}.debianbug", "expected an integer")
    releases = body.get("releases")
    if not isinstance(releases, dict):
        raise _fail(f"{where}.releases", "expected an object")
    kept: Entry | None = None
    for codename, rel in releases.items():
        if not _RELEASE.match(codename):
            raise _fail(f"{where}.releases", f"bad codename {codename[:40]!r}")
        entry = _parse_release(rel, f"{where}.releases.{codename}")
        if codename == release and entry is not None:
            kept = Entry(cve, entry.status, entry.urgency, entry.fixed_version)
    return kept


# --- the stored index ----------------------------------------------------------------


_ROW_FIELDS = 4
"""A stored row: ``[cve, status, urgency, fixed_version|null]``."""


def index_to_dict(index: VulnIndex) -> dict[str, Any]:
    """The stored form: compact rows ``[cve, status, urgency, fixed_version|null]``."""
    return {
        "schema_version": INDEX_SCHEMA,
        "release": index.release,
        "date": index.date,
        "imported_at": index.imported_at,
        "source_sha256": index.source_sha256,
        "packages": {
            src: [[e.cve, e.status, e.urgency, e.fixed_version] for e in rows]
            for src, rows in sorted(index.entries.items())
        },
    }


def index_from_dict(doc: Any) -> VulnIndex:
    """Parse a stored index strictly (it sits in a group-writable store: untrusted).

    Raises:
        InputError: wrong schema or malformed rows.
    """
    if not isinstance(doc, dict) or doc.get("schema_version") != INDEX_SCHEMA:
        raise InputError(f"not an Aegis vulnerability index (schema {INDEX_SCHEMA!r})")
    keys = {"schema_version", "release", "date", "imported_at", "source_sha256", "packages"}
    if set(doc) != keys:
        raise InputError("vulnerability index: unexpected or missing keys")
    for key in ("release", "date", "imported_at", "source_sha256"):
        if not isinstance(doc[key], str):
            raise InputError(f"vulnerability index: {key} must be a string")
    packages = doc["packages"]
    if not isinstance(packages, dict):
        raise InputError("vulnerability index: packages must be an object")
    entries: dict[str, tuple[Entry, ...]] = {}
    for src, rows in packages.items():
        if not _SOURCE.match(src) or not isinstance(rows, list):
            raise InputError(f"vulnerability index: bad package {src[:60]!r}")
        parsed: list[Entry] = []
        for row in rows:
            if (
                not isinstance(row, list)
                or len(row) != _ROW_FIELDS
                or not all(isinstance(x, str) for x in row[:3])
                or not (row[3] is None or isinstance(row[3], str))
                or not _ENTRY_ID.match(row[0])
                or row[1] not in STATUSES
                or row[2] not in URGENCIES
                or (row[3] is not None and not _VERSION.match(row[3]))
            ):
                raise InputError(f"vulnerability index: bad row for {src}")
            parsed.append(Entry(row[0], row[1], row[2], row[3]))
        entries[src] = tuple(parsed)
    return VulnIndex(doc["release"], doc["date"], doc["imported_at"], doc["source_sha256"], entries)


# --- matching ------------------------------------------------------------------------


def _post_version(change: PackageChange) -> str | None:
    if change.action in (Action.REMOVE, Action.PURGE):
        return None
    if change.action == Action.HELD_BACK:
        return change.current_version
    return change.candidate_version


def match(changes: Iterable[PackageChange], index: VulnIndex) -> tuple[Vulnerability, ...]:
    """Vulnerabilities of the delta's packages at their post-change versions.

    Args:
        changes: the plan's package changes.
        index: the imported tracker index.

    Returns:
        Matches sorted by (package, arch order of input, CVE); see the module docstring.
    """
    out: list[Vulnerability] = []
    for change in changes:
        version = _post_version(change)
        if version is None:
            continue
        source = change.source_package or change.name
        rows = index.entries.get(source)
        if not rows:
            continue
        # Tracker versions are source versions; a binNMU or a Source: (version) field
        # makes the binary version differ, so compare the source version when known.
        post = change.source_version or version
        current = change.current_version
        for entry in rows:
            fixed = entry.fixed_version
            by_plan = False
            if fixed is not None and version_at_least(post, fixed):
                # Fixed after the change: worth listing only when this plan is what
                # fixes it (the installed version was below the fix).
                if current is None or version_at_least(current, fixed):
                    continue
                by_plan = True
            out.append(
                Vulnerability(
                    package=change.name,
                    source_package=source,
                    version=version,
                    cve=entry.cve,
                    urgency=entry.urgency,
                    fixed_version=fixed,
                    fixed_by_plan=by_plan,
                    critical=is_critical(entry.urgency),
                )
            )
    return tuple(sorted(out, key=lambda v: (v.package, v.cve)))
