r"""Health probes: the record signed into an execution plan, and its strict text form.

A probe is one of four checks aegisd runs after a change (docs/operator-guide.md
"Health probes"):

- ``unit:NAME``: the systemd unit is active (``systemctl is-active``);
- ``tcp:ADDR:PORT``: a TCP connection to a loopback address is accepted;
- ``http:URL`` or ``http:STATUS:URL``: a GET of a loopback ``http://`` URL answers
  ``STATUS`` (200 by default);
- ``command:USER:ARGV...`` or ``command:USER:TIMEOUT:ARGV...``: the argv (absolute
  program path, split on blanks) exits 0, run as the named unprivileged user.

Network probes name a literal loopback address (``127.0.0.0/8`` or ``[::1]``), never a
host name: a name would be resolved through files an operator or package may change,
and aegisd (root) must not become a client of anything off the host. This parser is
our own rather than a URL library's because the bound is the point: every character
of what may reach a socket or an argv is checked here.

Example:
    >>> parse_probe("http:http://127.0.0.1:80/").status
    200
    >>> parse_probe("tcp:10.0.0.1:22")
    Traceback (most recent call last):
    aegis.errors.InputError: probe 'tcp:10.0.0.1:22': 10.0.0.1 is not a loopback address
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field

from aegis.errors import InputError

KINDS = ("unit", "tcp", "http", "command")
MAX_PROBES = 16
MAX_PORT = 65535
MAX_ARGV = 32
HTTP_STATUS_RANGE = range(100, 600)
DEFAULT_STATUS = 200
MAX_SPEC = 512
DEFAULT_TIMEOUT_S = 10
MAX_TIMEOUT_S = 300
MIN_WITHIN_S = 1
MAX_WITHIN_S = 86_400
DEFAULT_WITHIN_S = 300

_OMIT = {"aegis.omit_default": True}
_UNIT_RE = re.compile(
    r"\A[A-Za-z0-9:_.\\@-]{1,200}\.(service|socket|target|mount|timer|path)\Z", re.ASCII
)
_USER_RE = re.compile(r"\A[a-z_][a-z0-9_-]{0,31}\Z", re.ASCII)
_PATH_RE = re.compile(r"\A/[A-Za-z0-9._~!$&'()*+,;=:@%/?-]{0,400}\Z", re.ASCII)
_ARG_RE = re.compile(r"\A[\x21-\x7e]{1,200}\Z", re.ASCII)
_PROGRAM_RE = re.compile(r"\A/[A-Za-z0-9._+/-]{1,200}\Z", re.ASCII)
_PORT_RE = re.compile(r"\A[1-9][0-9]{0,4}\Z", re.ASCII)


@dataclass(frozen=True)
class Probe:
    """One health check, exactly as it is signed and run."""

    kind: str
    """``unit``, ``tcp``, ``http`` or ``command``."""
    target: str = ""
    """The unit name, ``ADDR:PORT`` (tcp) or the URL (http); empty for a command."""
    status: int | None = field(default=None, metadata=_OMIT)
    """http: the status the GET must answer."""
    user: str | None = field(default=None, metadata=_OMIT)
    """command: who runs it (never root)."""
    argv: tuple[str, ...] = field(default=(), metadata=_OMIT)
    timeout_s: int = DEFAULT_TIMEOUT_S

    def text(self) -> str:
        """The probe's text form (what :func:`parse_probe` reads)."""
        if self.kind == "command":
            return f"command:{self.user}:{self.timeout_s}:{' '.join(self.argv)}"
        if self.kind == "http" and self.status != DEFAULT_STATUS:
            return f"http:{self.status}:{self.target}"
        return f"{self.kind}:{self.target}"


@dataclass(frozen=True)
class Verification:
    """What aegisd checks after the run before the change is kept (signed)."""

    probes: tuple[Probe, ...]
    within_s: int
    """Wall-clock seconds after the run by which probes (and confirmation) must pass."""
    confirm: bool = False
    """Policy asks for ``aegisctl confirm`` too."""
    settle_s: int | None = field(default=None, metadata=_OMIT)
    """Probes still failing this long after the run restore at once, without waiting for
    the deadline (a confirmation window may be long; a broken service should not wait it
    out). None: the deadline alone."""


def loopback(host: str, where: str) -> str:
    """``host`` when it is a literal loopback address (``[::1]`` bracketed), else refuse."""
    bare = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    if bare != host and ":" not in bare:
        raise InputError(f"{where}: {host} is not an address")
    try:
        addr = ipaddress.ip_address(bare)
    except ValueError as e:
        raise InputError(f"{where}: {host} is not a literal IP address (no host names)") from e
    if isinstance(addr, ipaddress.IPv6Address) and bare == host:
        raise InputError(f"{where}: write an IPv6 address in brackets, [::1]")
    if not addr.is_loopback:
        raise InputError(f"{where}: {bare} is not a loopback address")
    return host


def split_address(text: str, where: str) -> tuple[str, int]:
    """``ADDR:PORT`` -> (address without brackets, port); loopback only."""
    host, sep, port = text.rpartition(":")
    if not sep or not _PORT_RE.match(port) or int(port) > MAX_PORT:
        raise InputError(f"{where}: expected ADDR:PORT with a port from 1 to 65535")
    loopback(host, where)
    return host.strip("[]"), int(port)


def split_url(url: str, where: str) -> tuple[str, int, str]:
    """``http://ADDR[:PORT]/PATH`` -> (address, port, path); loopback, plain http only."""
    if not url.startswith("http://"):
        raise InputError(f"{where}: only http:// URLs on loopback")
    rest = url[len("http://") :]
    authority, slash, path = rest.partition("/")
    path = slash + path if slash else "/"
    if not _PATH_RE.match(path) or "#" in path:
        raise InputError(f"{where}: the path has characters a probe does not send")
    if authority.startswith("[") and "]" in authority:
        end = authority.index("]") + 1
        host, port_part = authority[:end], authority[end:]
    else:
        host, colon, port_part = authority.partition(":")
        port_part = colon + port_part
    if not port_part:
        return loopback(host, where).strip("[]"), 80, path
    return (*split_address(host + port_part, where), path)


def _check_command(p: Probe, where: str) -> None:
    if p.target or p.status is not None:
        raise InputError(f"{where}: a command probe takes USER and ARGV only")
    if p.user is None or not _USER_RE.match(p.user) or p.user == "root":
        raise InputError(f"{where}: a command runs as a named unprivileged user, not root")
    if not p.argv or len(p.argv) > MAX_ARGV or not _PROGRAM_RE.match(p.argv[0]):
        raise InputError(f"{where}: the command needs an absolute program path")
    if not all(_ARG_RE.match(a) for a in p.argv):
        raise InputError(f"{where}: command arguments are printable ASCII without blanks")


def check_probe(p: Probe, where: str = "probe") -> Probe:
    """Refuse a probe record outside its grammar (also run on signed plans read back).

    Raises:
        InputError: naming the problem.
    """
    if p.kind not in KINDS:
        raise InputError(f"{where}: kind must be one of {', '.join(KINDS)}")
    if not 1 <= p.timeout_s <= MAX_TIMEOUT_S:
        raise InputError(f"{where}: timeout must be 1 to {MAX_TIMEOUT_S} seconds")
    other = p.user is not None or bool(p.argv)
    if p.kind == "unit":
        if not _UNIT_RE.match(p.target) or p.target.startswith("-") or other or p.status:
            raise InputError(f"{where}: not a systemd unit name: {p.target[:80]!r}")
    elif p.kind == "tcp":
        if other or p.status is not None:
            raise InputError(f"{where}: a tcp probe takes only ADDR:PORT")
        split_address(p.target, where)
    elif p.kind == "http":
        if p.status not in HTTP_STATUS_RANGE or other:
            raise InputError(f"{where}: an http probe needs a status from 100 to 599")
        split_url(p.target, where)
    else:
        _check_command(p, where)
    return p


def parse_probe(text: object) -> Probe:
    """Parse one probe in its text form (policy file, ``--probe``), strictly.

    Raises:
        InputError: the text is not one of the four forms, or a target is off loopback.
    """
    if not isinstance(text, str) or not text or len(text) > MAX_SPEC:
        raise InputError(f"probe {str(text)[:80]!r}: expected KIND:TARGET text")
    where = f"probe {text[:80]!r}"
    kind, sep, rest = text.partition(":")
    if not sep or kind not in KINDS:
        raise InputError(f"{where}: starts with one of {', '.join(k + ':' for k in KINDS)}")
    if kind in ("unit", "tcp"):
        return check_probe(Probe(kind, rest), where)
    if kind == "http":
        status = DEFAULT_STATUS
        head, _, tail = rest.partition(":")
        if head.isascii() and head.isdigit():
            status, rest = int(head), tail
        return check_probe(Probe("http", rest, status=status), where)
    user, sep, rest = rest.partition(":")
    timeout = DEFAULT_TIMEOUT_S
    head, sep2, tail = rest.partition(":")
    if sep2 and head.isascii() and head.isdigit():
        timeout, rest = int(head), tail
    argv = tuple(rest.split(" ")) if rest else ()
    if not sep or "" in argv:
        raise InputError(f"{where}: expected command:USER[:TIMEOUT]:/PROGRAM ARG ...")
    return check_probe(Probe("command", user=user, argv=argv, timeout_s=timeout), where)


def check_verification(v: Verification) -> Verification:
    """Refuse a verification record outside its bounds.

    Raises:
        InputError: too many probes, a bad probe, or a deadline out of range.
    """
    if len(v.probes) > MAX_PROBES:
        raise InputError(f"at most {MAX_PROBES} probes")
    if not MIN_WITHIN_S <= v.within_s <= MAX_WITHIN_S:
        raise InputError(f"the verification deadline must be 1 s to {MAX_WITHIN_S} s")
    if not v.probes and not v.confirm:
        raise InputError("a verification without probes asks for a confirmation")
    if v.settle_s is not None and not MIN_WITHIN_S <= v.settle_s <= v.within_s:
        raise InputError("settle must be at least 1 s and at most the deadline")
    for i, p in enumerate(v.probes):
        check_probe(p, f"probe #{i + 1}")
    return v
