r"""Pure parsers of apt's output.

Covered: the simulated delta, ``apt-cache policy`` and ``apt-cache show``,
``apt-get download --print-uris``, ``apt-config dump`` and why ``apt-get update`` refused a
repository (gpgv's and sqv's wordings alike).

``apt-get -s -qq`` (docs/testing.md "Throwaway roots") prints one line per action:

- ``Inst pkg [old] (new Origin:Release[, Origin:Release] [arch]) [extra]``
- ``Conf pkg (ver Origin:Release [arch])``   (the configure order)
- ``Remv pkg [ver]`` / ``Purg pkg [ver]``

Versions are ordered by :mod:`aegis.analyze.debversion` (dpkg's order, the one comparator):
``Inst`` with an installed version lower than the new one is an upgrade, higher a
downgrade, equal a reinstall. ``apt-get -s upgrade`` (without ``-qq``) also lists
"The following packages have been kept back:", which becomes held-back entries.
Origin text in these lines is never used as identity (repositories are identified
through ``apt-cache policy`` lines: URI, suite/component).

Example:
    >>> sim = parse_apt_simulation("Inst a [1.0] (1.2 X:s [all])\nConf a (1.2 X:s [all])\n")
    >>> [(c.name, c.action.value, c.current_version, c.candidate_version) for c in sim.changes]
    [('a', 'upgrade', '1.0', '1.2')]
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from urllib.parse import unquote

from aegis.analyze.debversion import check_version, compare_versions
from aegis.errors import InputError
from aegis.model import Action

_INST = re.compile(
    r"^Inst (?P<pkg>\S+)(?: \[(?P<old>[^\]\s]+)\])? \((?P<new>\S+) (?P<origins>.*?) ?"
    r"\[(?P<arch>[^\]\s]+)\]\)(?P<rest>.*)$"
)
_CONF = re.compile(r"^Conf (?P<pkg>\S+)(?: \[[^\]]*\])?(?: \((?P<ver>\S+) .*)?\Z")
_REMV = re.compile(r"^(?P<verb>Remv|Purg) (?P<pkg>\S+)(?: \[(?P<ver>[^\]\s]+)\])?(?P<rest>.*)\Z")
_POLICY_SRC = re.compile(
    r"^\s+(?:\*\*\* )?(?P<prio>-?\d+) (?P<uri>\S+) (?P<dist>\S+) (?P<arch>\S+) Packages$"
)
_POLICY_VER = re.compile(r"^ (?:\*\*\*| {3}) (?P<ver>\S+) (?P<prio>-?\d+)\Z")
# ``'URI' FILE SIZE [HASH]``: ``apt-get install --print-uris`` prints no hash for a local .deb.
_PRINT_URI = re.compile(r"^'(?P<uri>[^']+)' (?P<file>\S+) (?P<size>\d+)(?: (?P<hash>\S+))?\Z")


def split_arch(pkg: str, default: str | None) -> tuple[str, str | None]:
    """``libc6:i386`` -> (``libc6``, ``i386``); no suffix -> (name, default)."""
    name, sep, arch = pkg.partition(":")
    return (name, arch) if sep else (name, default)


@dataclass(frozen=True)
class SimChange:
    """One line of the simulated delta (before repository evidence is attached)."""

    name: str
    arch: str | None
    action: Action
    current_version: str | None
    candidate_version: str | None
    origins: str = ""
    """apt's Origin:Release text; shown, never trusted."""


@dataclass(frozen=True)
class Simulation:
    """Parsed ``apt-get -s`` output."""

    changes: tuple[SimChange, ...]
    configure_order: tuple[str, ...]
    held_back: tuple[str, ...] = ()


def parse_apt_simulation(text: str) -> Simulation:
    """Parse ``apt-get -s [-qq]`` output into the delta.

    Raises:
        InputError: a line starting with Inst/Conf/Remv/Purg that does not parse
            (a format we do not understand must never be silently dropped).
    """
    changes: list[SimChange] = []
    conf: list[str] = []
    held: list[str] = []
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        i += 1
        if line.startswith("The following packages have been kept back:"):
            while i < len(lines) and lines[i].startswith("  "):
                held.extend(lines[i].split())
                i += 1
            continue
        if line.startswith("Inst "):
            changes.append(_inst_change(line))
        elif line.startswith("Conf "):
            m = _CONF.match(line)
            if m is None:
                raise InputError(f"unparsed apt simulation line: {line[:200]!r}")
            conf.append(split_arch(m["pkg"], None)[0])
        elif line.startswith(("Remv ", "Purg ")):
            m = _REMV.match(line)
            if m is None:
                raise InputError(f"unparsed apt simulation line: {line[:200]!r}")
            name, arch = split_arch(m["pkg"], None)
            action = Action.REMOVE if m["verb"] == "Remv" else Action.PURGE
            if m["ver"] is not None:
                check_version(m["ver"])
            changes.append(SimChange(name, arch, action, m["ver"], None))
    for name in held:
        bare, arch = split_arch(name, None)
        changes.append(SimChange(bare, arch, Action.HELD_BACK, None, None))
    return Simulation(tuple(changes), tuple(conf), tuple(split_arch(h, None)[0] for h in held))


def _inst_change(line: str) -> SimChange:
    m = _INST.match(line)
    if m is None:
        raise InputError(f"unparsed apt simulation line: {line[:200]!r}")
    name, arch = split_arch(m["pkg"], m["arch"])
    old, new = m["old"], m["new"]
    if old is None:
        check_version(new)
        action = Action.INSTALL
    else:
        order = compare_versions(new, old)
        action = (
            Action.UPGRADE if order > 0 else Action.DOWNGRADE if order < 0 else Action.REINSTALL
        )
    return SimChange(name, arch, action, old, new, m["origins"].strip())


def parse_apt_error(stderr: str) -> tuple[str, str]:
    """Classify an apt failure from its stderr: (failure kind, message).

    Kinds: unknown-package, broken-dependencies, held, lock, tool-failed.
    """
    errors = [ln[3:].strip() for ln in stderr.splitlines() if ln.startswith("E: ")]
    message = "; ".join(errors) or stderr.strip()[-500:] or "apt failed"
    low = stderr.lower()
    if (
        "unable to locate package" in low
        or "has no installation candidate" in low
        or ("version '" in low and "was not found" in low)
    ):
        return "unknown-package", message
    if "held packages were changed" in low:
        return "held", (
            f"{message} (a package this change needs is on hold: 'apt-mark showhold' lists "
            "them; 'apt-mark unhold NAME' as root lets it change)"
        )
    if (
        "unmet dependencies" in low
        or "broken packages" in low
        or "unable to correct problems" in low
    ):
        return "broken-dependencies", message
    if (
        "could not get lock" in low
        or "unable to acquire the dpkg frontend lock" in low
        or ("unable to lock" in low)
    ):
        return "lock", message
    return "tool-failed", message


def unknown_names(stderr: str) -> tuple[str, ...]:
    """Names from ``E: Unable to locate package X`` lines."""
    return tuple(
        ln.rsplit(" ", 1)[-1]
        for ln in stderr.splitlines()
        if ln.startswith("E: Unable to locate package ")
    )


@dataclass(frozen=True)
class PolicySource:
    """One ``apt-cache policy`` source line under a version."""

    priority: int
    uri: str
    suite: str
    component: str
    arch: str


@dataclass(frozen=True)
class PackagePolicy:
    """``apt-cache policy`` for one package."""

    name: str
    installed: str | None
    candidate: str | None
    versions: dict[str, tuple[PolicySource, ...]] = field(default_factory=dict)
    """Version -> sources (``/var/lib/dpkg/status`` lines are dropped: not a repository)."""


def parse_apt_policy(text: str) -> dict[str, PackagePolicy]:
    """Parse ``apt-cache policy PKG...`` output by package name."""
    out: dict[str, PackagePolicy] = {}
    name: str | None = None
    installed: str | None = None
    candidate: str | None = None
    versions: dict[str, list[PolicySource]] = {}
    current: str | None = None

    def flush() -> None:
        if name is not None:
            out[name] = PackagePolicy(
                name, installed, candidate, {v: tuple(s) for v, s in versions.items()}
            )

    for line in text.splitlines():
        if line and not line.startswith(" ") and line.endswith(":"):
            flush()
            name = split_arch(line[:-1], None)[0]
            installed = candidate = current = None
            versions = {}
            continue
        stripped = line.strip()
        if stripped.startswith("Installed:"):
            val = stripped.split(":", 1)[1].strip()
            installed = None if val == "(none)" else val
        elif stripped.startswith("Candidate:"):
            val = stripped.split(":", 1)[1].strip()
            candidate = None if val == "(none)" else val
        elif (mv := _POLICY_VER.match(line)) is not None:
            current = mv["ver"]
            versions.setdefault(current, [])
        elif (ms := _POLICY_SRC.match(line)) is not None and current is not None:
            suite, _, component = ms["dist"].partition("/")
            versions[current].append(
                PolicySource(int(ms["prio"]), ms["uri"], suite, component, ms["arch"])
            )
    flush()
    return out


@dataclass(frozen=True)
class DownloadUri:
    """One line of ``apt-get download --print-uris`` or ``apt-get install --print-uris``."""

    uri: str
    filename: str
    """apt's file name for it (``name_version_arch.deb``, ``:`` written ``%3a``)."""
    size: int
    sha256: str | None
    hash_type: str = ""
    """The hash apt printed (``MD5Sum``, ``SHA256``, ...); empty when none."""
    hash_value: str = ""


# Names apt prints a hash under -> the field of an index record holding it.
_HASH_FIELDS = {"MD5SUM": "MD5sum", "SHA1": "SHA1", "SHA256": "SHA256", "SHA512": "SHA512"}


def parse_print_uris(text: str) -> tuple[DownloadUri, ...]:
    """Parse ``'URI' FILE SIZE [ALGO:HEX]`` lines."""
    out: list[DownloadUri] = []
    for line in text.splitlines():
        m = _PRINT_URI.match(line.strip())
        if m is None:
            continue
        algo, _, value = (m["hash"] or "").partition(":")
        out.append(
            DownloadUri(
                m["uri"],
                m["file"],
                int(m["size"]),
                value.lower() if algo.upper() == "SHA256" else None,
                algo if value else "",
                value.lower(),
            )
        )
    return tuple(out)


def download_hash_compared(download: DownloadUri, record: dict[str, str]) -> bool:
    """Whether apt printed a hash for ``download`` that ``record`` carries too.

    Without one (an index with no MD5sum: apt 2.6 prints none), URI and size alone
    cannot tell two builds of the same size apart.
    """
    field = _HASH_FIELDS.get(download.hash_type.upper()) if download.hash_type else None
    return field is not None and bool(record.get(field))


def download_matches(download: DownloadUri, record: dict[str, str]) -> bool:
    """Whether an index record describes the file apt named in ``download``.

    The URI must end in the record's ``Filename``, the sizes must be equal, and the
    hash apt printed (any algorithm) must equal the record's field of that algorithm
    when the record has one. Two builds of one version differ in size or hashes.
    """
    filename = record.get("Filename", "")
    size = record.get("Size", "")
    if not filename or not size.isdigit() or int(size) != download.size:
        return False
    # apt percent-encodes the URI ('~' as %7e, '+' as %2b); Filename is plain text.
    if not unquote(download.uri).endswith("/" + filename.lstrip("/")):
        return False
    if download.hash_type:
        field = _HASH_FIELDS.get(download.hash_type.upper())
        if field is None:
            return False  # a hash we cannot compare is no evidence of sameness
        theirs = record.get(field, "").lower()
        if theirs and theirs != download.hash_value:
            return False
    return True


def pick_build(
    download: DownloadUri, records: list[dict[str, str]], name: str, version: str
) -> tuple[dict[str, str] | None, str]:
    """The one index record (of every build apt shows) describing the file apt would fetch.

    Returns (record, "") when exactly one distinct file (by SHA-256) matches
    (:func:`download_matches`), else (None, why): none, or several builds that URI, size
    and the hash apt printed cannot tell apart. Pure.
    """
    builds = {
        r.get("SHA256", "").lower(): r
        for r in records
        if r.get("Package") == name
        and r.get("Version") == version
        and download_matches(download, r)
    }
    if len(builds) == 1:
        return next(iter(builds.values())), ""
    what = "no build" if not builds else f"{len(builds)} builds"
    return None, (
        f"{name} {version}: {what} in the signed indexes match the file apt would install "
        f"({download.uri[:200]}, {download.size} bytes)"
    )


def parse_control_records(text: str) -> list[dict[str, str]]:
    """Parse ``apt-cache show`` (deb822 paragraphs) into one field dict per record.

    Only a field's first line is kept; continuation lines are skipped, so Description
    is its one-line synopsis.
    """
    # Hand-read for speed: python-debian's Deb822.iter_paragraphs gives the same records
    # about 25 times slower (23 ms against 0.8 ms for 83 records, 64 KB, measured), and
    # this runs on every plan's delta (scripts/bench --only apt).
    records: list[dict[str, str]] = []
    cur: dict[str, str] = {}
    for line in text.splitlines():
        if not line.strip():
            if cur:
                records.append(cur)
                cur = {}
            continue
        if line[0] in " \t":
            continue
        key, sep, value = line.partition(":")
        if sep:
            cur.setdefault(key, value.strip())
    if cur:
        records.append(cur)
    return records


def parse_source_field(
    binary: str, version: str | None, source: str | None
) -> tuple[str, str | None]:
    """``Source: openssl (3.0.2-1)`` -> (openssl, 3.0.2-1); absent -> (binary, version)."""
    if not source:
        return binary, version
    m = re.match(r"^(\S+)(?: \((\S+)\))?$", source.strip())
    if m is None:
        return binary, version
    return m[1], m[2] or version


def parse_apt_config_dump(text: str) -> list[tuple[str, str]]:
    """``apt-config dump`` lines ``Key "value";`` -> (key, value) in order."""
    out: list[tuple[str, str]] = []
    for raw in text.splitlines():
        line = raw.strip()
        if not line.endswith(";") or " " not in line:
            continue
        key, _, rest = line[:-1].partition(" ")
        value = rest.strip()
        if value.startswith('"') and value.endswith('"'):
            value = value[1:-1]
        out.append((key, value))
    return out


# Why ``apt-get update`` refused a repository, in the wording of each verifier apt uses:
# gpgv (bookworm's apt 2.6: status keywords) and sqv (trixie's apt 3.0: Sequoia's messages).
# Most specific first: under sqv every signature failure also ends in "... is not signed".
_UPDATE_REFUSALS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("missing-key", ("NO_PUBKEY", "Missing key", "no keyring is specified")),
    ("bad-signature", ("BADSIG", "Message has been manipulated")),
    ("hash-mismatch", ("Hash Sum mismatch",)),
    ("expired", ("is expired", "is no longer valid")),
    ("unsigned", ("is not signed",)),
)
UPDATE_REFUSALS = tuple(name for name, _ in _UPDATE_REFUSALS)
"""The stable names :func:`update_refusal` returns."""


def update_refusal(output: str) -> str | None:
    r"""Why ``apt-get update`` refused a repository, whichever verifier apt ran; None if none.

    ``missing-key`` (no trusted key made the signature: gpgv ``NO_PUBKEY``, sqv ``Missing
    key`` or ``no keyring is specified``), ``bad-signature`` (gpgv ``BADSIG``, sqv ``Message
    has been manipulated``), ``hash-mismatch``, ``expired``, ``unsigned``.

    Example:
        >>> update_refusal("Message has been manipulated\nE: The repository ... is not signed.")
        'bad-signature'
    """
    for name, wordings in _UPDATE_REFUSALS:
        if any(w in output for w in wordings):
            return name
    return None
