r"""Pure parsing of apt's source entries and of the paths ``apt-config dump`` resolves.

Sources come in two formats, both supported: one-line ``*.list`` files
(``deb [signed-by=/k.gpg trusted=yes] URI SUITE COMPONENT...``) and deb822
``*.sources`` files parsed with python-debian (``Types``, ``URIs``, ``Suites``,
``Components``, ``Signed-By`` (path, fingerprint list or an embedded key block),
``Trusted``, ``Enabled``). Each (type deb, URI, suite, component) becomes one
:class:`SourceEntry`; ``deb-src`` is ignored (planning never builds from source).

Example:
    >>> [e.uri for e in parse_one_line("deb [signed-by=/k.gpg] http://h/debian/ s main\n", "f")]
    ['http://h/debian']
"""

from __future__ import annotations

import io
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import PurePosixPath

_FPR_RE = re.compile(r"^[0-9A-Fa-f]{16,40}!?\Z")


@dataclass(frozen=True)
class SourceEntry:
    """One (URI, suite, component) of an apt source."""

    file: str
    uri: str
    """Without a trailing slash."""
    suite: str
    component: str
    signed_by: str | None
    """Raw Signed-By value (a path list, fingerprints, or an armoured key block)."""
    trusted_yes: bool
    options: tuple[tuple[str, str], ...] = ()

    @property
    def trusted_no(self) -> bool:
        """``[trusted=no]`` / ``Trusted: no``: apt will not install from this source.

        apt reads the option with ``StringToBool(value, false)``: any value that is not
        a yes word makes the source untrusted ("cannot be authenticated"), whatever
        its signature says.
        """
        values = [v for k, v in self.options if k == "trusted"]
        return bool(values) and not self.trusted_yes and not any(apt_true(v) for v in values)

    @property
    def signed_by_form(self) -> str:
        """keyring-path, armored-path, fingerprint, embedded or none."""
        return signed_by_form(self.signed_by)

    def one_line(self) -> str:
        """Normalised one-line form (embedded keys shown by form, not content)."""
        opts = [f"{k}={v}" for k, v in self.options if k not in ("signed-by",)]
        if self.signed_by is not None:
            shown = "(embedded key)" if self.signed_by_form == "embedded" else self.signed_by
            opts.insert(0, f"signed-by={shown}")
        bracket = f" [{' '.join(opts)}]" if opts else ""
        return f"deb{bracket} {self.uri} {self.suite} {self.component}".rstrip()


_APT_TRUE = frozenset({"1", "yes", "true", "with", "on", "enable"})


def apt_true(value: str) -> bool:
    """Whether apt's ``StringToBool`` reads an option value as true."""
    return value.strip().lower() in _APT_TRUE


def signed_by_form(value: str | None) -> str:
    """Classify a Signed-By value (docs/testing.md: all four forms)."""
    if value is None or not value.strip():
        return "none"
    if "BEGIN PGP PUBLIC KEY BLOCK" in value:
        return "embedded"
    tokens = signed_by_tokens(value)
    if tokens and all(_FPR_RE.match(t) for t in tokens):
        return "fingerprint"
    if any(t.endswith(".asc") for t in tokens):
        return "armored-path"
    return "keyring-path"


def signed_by_tokens(value: str) -> list[str]:
    """Paths or fingerprints of a (non-embedded) Signed-By value."""
    return [t for t in re.split(r"[\s,]+", value.strip()) if t]


def _norm_uri(uri: str) -> str:
    return uri.rstrip("/")


def parse_one_line(text: str, file: str) -> list[SourceEntry]:
    """Parse a one-line ``sources.list`` style file."""
    out: list[SourceEntry] = []
    for raw in text.splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        opts: list[tuple[str, str]] = []
        m = re.match(r"^(\S+)\s+\[([^\]]*)\]\s+(.*)$", line)
        if m:
            kind, optstr, rest = m[1], m[2], m[3]
            for tok in optstr.split():
                k, _, v = tok.partition("=")
                opts.append((k.lower().rstrip("+-"), v))
        else:
            kind, _, rest = line.partition(" ")
        if kind != "deb":
            continue
        match rest.split():
            case [uri, suite, *listed]:
                comps = listed or [""]
            case _:  # no suite: not a usable entry
                continue
        od = dict(opts)
        for comp in comps:
            out.append(
                SourceEntry(
                    file,
                    _norm_uri(uri),
                    suite,
                    comp,
                    od.get("signed-by"),
                    apt_true(od.get("trusted", "")),
                    tuple(opts),
                )
            )
    return out


def parse_deb822(text: str, file: str) -> list[SourceEntry]:
    """Parse a deb822 ``.sources`` file with python-debian."""
    from debian.deb822 import Deb822  # noqa: PLC0415 - deb822 takes ~60 ms to import: only when a file is parsed

    out: list[SourceEntry] = []
    for para in Deb822.iter_paragraphs(io.StringIO(text)):
        fields = {k.lower(): v for k, v in para.items()}
        if fields.get("enabled", "yes").strip().lower() == "no":
            continue
        if "deb" not in fields.get("types", "").split():
            continue
        signed = fields.get("signed-by")
        if signed is not None:
            # Embedded blocks use " ." for empty lines inside the field.
            signed = "\n".join(
                "" if ln.strip() == "." else ln.strip() for ln in signed.strip("\n").splitlines()
            ).strip()
        trusted = apt_true(fields.get("trusted", ""))
        opts = tuple(
            (k, v.strip())
            for k, v in sorted(fields.items())
            if k not in ("types", "uris", "suites", "components", "signed-by", "enabled")
        )
        comps = fields.get("components", "").split() or [""]
        for uri in fields.get("uris", "").split():
            for suite in fields.get("suites", "").split():
                for comp in comps:
                    out.append(
                        SourceEntry(file, _norm_uri(uri), suite, comp, signed, trusted, opts)
                    )
    return out


def parse_sources(files: Iterable[tuple[str, str]]) -> list[SourceEntry]:
    """Parse (path, text) pairs; ``.sources`` is deb822, anything else one-line."""
    out: list[SourceEntry] = []
    for path, text in files:
        if path.endswith(".sources"):
            out.extend(parse_deb822(text, path))
        else:
            out.extend(parse_one_line(text, path))
    return out


@dataclass(frozen=True)
class AptPaths:
    """Files and directories apt uses, resolved like apt's FindFile/FindDir."""

    sourcelist: str
    sourceparts: str
    trusted: str
    trustedparts: str
    etc_dir: str
    lists: str
    preferences: str
    preferencesparts: str
    archives: str
    status: str
    conf_parts: str
    root: str
    """``Dir`` (``/`` on a host)."""
    methods: str = "/usr/lib/apt/methods/"
    """``Dir::Bin::Methods``: whether apt has an ``sqv`` method decides its verifier."""
    gpgv_command: str = ""
    """``APT::Key::GPGVCommand``: when set, apt 3 verifies with gpgv instead of sqv."""
    assert_pubkey_algo: str = ""
    """``APT::Key::Assert-Pubkey-Algo``: apt passes it to a gpgv that knows the option."""
    by_hash: str = "yes"
    """``Acquire::By-Hash``: ``yes`` (fetch indexes by hash when the Release says
    ``Acquire-By-Hash: yes``), ``force`` or a false word (never)."""


def resolve_apt_paths(dump: Iterable[tuple[str, str]]) -> AptPaths:
    """Resolve apt's directory tree from ``apt-config dump`` (key, value) pairs."""
    conf: dict[str, str] = {}
    lower: dict[str, str] = {}  # apt's configuration keys are case-insensitive
    for k, v in dump:
        conf.setdefault(k, v)
        lower.setdefault(k.lower(), v)

    def find_dir(key: str, default: str) -> str:
        value = conf.get(key, default)
        if value.startswith("/"):
            return value.rstrip("/") + "/" if value != "/dev/null" else value
        parent_key = key.rsplit("::", 1)[0] if "::" in key else None
        parent = find_dir(parent_key, "/") if parent_key else "/"
        return str(PurePosixPath(parent) / value).rstrip("/") + "/"

    def find_file(key: str, default: str) -> str:
        value = conf.get(key, default)
        if value.startswith("/"):
            return value
        parent = find_dir(key.rsplit("::", 1)[0], "/")
        return str(PurePosixPath(parent) / value)

    return AptPaths(
        sourcelist=find_file("Dir::Etc::sourcelist", "sources.list"),
        sourceparts=find_dir("Dir::Etc::sourceparts", "sources.list.d"),
        trusted=find_file("Dir::Etc::trusted", "trusted.gpg"),
        trustedparts=find_dir("Dir::Etc::trustedparts", "trusted.gpg.d"),
        etc_dir=find_dir("Dir::Etc", "etc/apt/"),
        lists=find_dir("Dir::State::lists", "lists/"),
        preferences=find_file("Dir::Etc::preferences", "preferences"),
        preferencesparts=find_dir("Dir::Etc::preferencesparts", "preferences.d"),
        archives=find_dir("Dir::Cache::archives", "archives/"),
        status=find_file("Dir::State::status", "/var/lib/dpkg/status"),
        conf_parts=find_dir("Dir::Etc::parts", "apt.conf.d"),
        root=find_dir("Dir", "/"),
        methods=str(
            PurePosixPath(find_dir("Dir", "/"))
            / lower.get("dir::bin::methods", "usr/lib/apt/methods")
        ).rstrip("/")
        + "/",
        gpgv_command=lower.get("apt::key::gpgvcommand", ""),
        assert_pubkey_algo=lower.get("apt::key::assert-pubkey-algo", ""),
        by_hash=lower.get("acquire::by-hash", "yes"),
    )


_QUOTE = set('\\|{}[]<>"^~_=!@#$%^&*')
_UNQUOTED = frozenset(chr(c) for c in range(0x21, 0x7F)) - _QUOTE
"""Printable ASCII apt keeps as is; space, controls, non-ASCII and _QUOTE become %xx."""


def uri_to_filename(uri: str) -> str:
    """Mirror apt's ``URItoFileName``: the lists file prefix of a URI (no scheme, no user)."""
    rest = uri.split("://", 1)[1] if "://" in uri else uri.split(":", 1)[1]
    if "@" in rest.split("/", 1)[0]:
        rest = rest.split("@", 1)[1]
    quoted = "".join(c if c in _UNQUOTED else f"%{ord(c):02x}" for c in rest)
    return quoted.replace("/", "_")


def release_dir_uri(entry_uri: str, suite: str) -> str:
    """URI of the directory holding InRelease (flat repositories: ``suite`` ends in /)."""
    if suite.endswith("/"):
        return f"{entry_uri}/{suite}".replace("//", "/").replace(":/", "://", 1)
    return f"{entry_uri}/dists/{suite}/"


def lists_prefix(entry_uri: str, suite: str) -> str:
    """Lists file prefix for a release, e.g. ``deb.debian.org_debian_dists_bookworm_``."""
    if suite.endswith("/"):
        return uri_to_filename(f"{entry_uri}/{suite}")
    return uri_to_filename(f"{entry_uri}/dists/{suite}/")
