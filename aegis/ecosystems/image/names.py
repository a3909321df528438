"""Image references and image stores: strict grammars, checked before anything runs. Pure.

A target is an OCI distribution reference (``[HOST[:PORT]/]PATH[:TAG][@sha256:HEX]``), as the
distribution project's grammar defines it, narrowed: ASCII only (a Unicode host or path is a
lookalike, never planned), digests are ``sha256`` with 64 lower-case hex digits, no IPv6
literals, no transports (``docker://``, ``oci:``, ``containers-storage:``) and nothing
option-shaped. Hand-written on purpose: the grammar is a security bound, and what it accepts
is what ``skopeo`` and ``podman`` are handed.

Normalisation makes the registry explicit, the way docker and podman resolve short names
for Docker Hub: ``nginx`` is ``docker.io/library/nginx``, ``user/app`` is
``docker.io/user/app``. A first component is a registry host when it holds ``.`` or ``:``
or is ``localhost``. Podman's unqualified-search registries are never consulted.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass

from aegis.errors import InputError

MAX_TARGET = 512
MAX_NAME = 255
MAX_PORT = 65535
_TRANSPORTS = ("oci", "docker", "containers-storage", "docker-archive", "oci-archive", "dir")
DOCKER_HUB = "docker.io"
RUNTIMES = ("podman", "docker")
DEFAULT_STORES = {"podman": "/var/lib/containers/storage", "docker": "/var/run/docker.sock"}
KNOWN_REGISTRIES = frozenset(
    {
        "docker.io", "registry-1.docker.io", "index.docker.io", "ghcr.io", "quay.io", "gcr.io",
        "registry.k8s.io", "public.ecr.aws", "mcr.microsoft.com", "registry.gitlab.com",
        "registry.access.redhat.com", "registry.fedoraproject.org", "nvcr.io",
    }
)  # fmt: skip
"""Well-known registries a lookalike host would imitate (``image.registry-lookalike``)."""

_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_PATH_RE = re.compile(rf"\A{_COMPONENT}(?:/{_COMPONENT})*\Z")
_DOMAIN_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_HOST_RE = re.compile(rf"\A{_DOMAIN_COMPONENT}(?:\.{_DOMAIN_COMPONENT})*(?::[0-9]{{1,5}})?\Z")
_TAG_RE = re.compile(r"\A[\w][\w.-]{0,127}\Z", re.ASCII)
_DIGEST_RE = re.compile(r"\Asha256:[0-9a-f]{64}\Z")


@dataclass(frozen=True)
class ImageRef:
    """One parsed reference, registry explicit."""

    host: str
    """``HOST[:PORT]`` (``docker.io`` for Docker Hub)."""
    path: str
    """``library/nginx``."""
    tag: str = ""
    digest: str = ""
    """``sha256:<hex>``, or "" when only a tag names the image."""

    @property
    def repository(self) -> str:
        """``docker.io/library/nginx``."""
        return f"{self.host}/{self.path}"

    @property
    def canonical(self) -> str:
        """The reference as plans record it: registry explicit, tag and digest kept."""
        out = self.repository
        if self.tag:
            out += ":" + self.tag
        if self.digest:
            out += "@" + self.digest
        return out

    def by_digest(self, digest: str) -> str:
        """``REPOSITORY@DIGEST``: what is inspected and pulled once a digest is known."""
        return f"{self.repository}@{digest}"

    @property
    def hostname(self) -> str:
        """The host without its port."""
        return self.host.rsplit(":", 1)[0] if ":" in self.host else self.host


def _bad(target: str, why: str) -> InputError:
    shown = target[:80].encode("ascii", "backslashreplace").decode("ascii")
    return InputError(f"bad image reference {shown!r}: {why}")


def parse_reference(target: str) -> ImageRef:  # noqa: PLR0912 - one check per grammar rule
    """Parse ``target``; the registry and ``library/`` made explicit.

    Raises:
        InputError: outside the grammar above (exit 3), with why.
    """
    if not target or len(target) > MAX_TARGET:
        raise _bad(target, "empty or too long")
    if target.startswith("-"):
        raise _bad(target, "options are not references")
    if not target.isascii():
        raise _bad(target, "references are ASCII (a Unicode lookalike?)")
    if any(c.isspace() or not c.isprintable() for c in target):
        raise _bad(target, "whitespace or control characters")
    if "://" in target or target.split(":", 1)[0] in _TRANSPORTS:
        raise _bad(target, "transports and URLs are never planned (a registry reference only)")
    rest, _, digest = target.partition("@")
    if digest and not _DIGEST_RE.match(digest):
        raise _bad(target, "a digest is sha256:<64 lower-case hex digits>")
    tag = ""
    last = rest.rsplit("/", 1)[-1]
    if ":" in last:
        rest, tag = rest[: len(rest) - len(last)] + last.split(":", 1)[0], last.split(":", 1)[1]
        if not _TAG_RE.match(tag):
            raise _bad(target, "a tag is [A-Za-z0-9_][A-Za-z0-9_.-]{0,127}")
    first, slash, remainder = rest.partition("/")
    if slash and ("." in first or ":" in first or first == "localhost"):
        host, path = first, remainder
        if not _HOST_RE.match(host) or host.startswith("["):
            raise _bad(target, "a registry is HOST[:PORT] (no IPv6 literals)")
        port = host.rsplit(":", 1)[1] if ":" in host else ""
        if port and not 0 < int(port) <= MAX_PORT:
            raise _bad(target, "bad port")
    else:
        host, path = DOCKER_HUB, rest
        if host == DOCKER_HUB and "/" not in path:
            path = "library/" + path
    if host in ("index.docker.io", "registry-1.docker.io"):
        host = DOCKER_HUB  # the same registry, one spelling in plans and policy
    if not _PATH_RE.match(path):
        raise _bad(target, "a repository path is lower-case components [a-z0-9] with . _ - /")
    if len(f"{host}/{path}") > MAX_NAME:
        raise _bad(target, f"a name is at most {MAX_NAME} characters")
    if not tag and not digest:
        tag = "latest"  # what docker and podman pull; mutable, so applying it is denied
    return ImageRef(host, path, tag, digest)


def check_targets(targets: tuple[str, ...] | list[str]) -> tuple[ImageRef, ...]:
    """Exactly one reference per plan (one pull is one image)."""
    if len(targets) != 1:
        raise InputError("an image plan pulls exactly one image reference")
    return (parse_reference(targets[0]),)


def is_loopback(hostname: str) -> bool:
    """``localhost`` or a loopback IP: the only hosts policy may mark plain HTTP."""
    if hostname == "localhost":
        return True
    try:
        return ipaddress.ip_address(hostname).is_loopback
    except ValueError:
        return False


def registry_url(ref: ImageRef, plain_http: bool) -> str:
    """The registry as plans and ``[[registries]]`` name it: ``https://HOST[:PORT]/``.

    ``http://`` only for a loopback host (the caller found a plain-HTTP policy entry).
    """
    scheme = "http" if plain_http and is_loopback(ref.hostname) else "https"
    return f"{scheme}://{ref.host}/"


def store_location(runtime: str, store: str | None) -> str:
    """``podman:/graph/root`` or ``docker:/docker.sock``: where the image lands.

    Raises:
        InputError: an unknown runtime, or a store path that is not absolute and plain.
    """
    if runtime not in RUNTIMES:
        raise InputError(f"unknown container runtime {runtime[:20]!r}: podman or docker")
    path = store or DEFAULT_STORES[runtime]
    if (not path.startswith("/") or "\x00" in path or not path.isascii() or ".." in path.split("/")
            or any(c.isspace() for c in path)):  # fmt: skip
        raise InputError("bad --storage path: absolute, ASCII, no '..'")
    if runtime == "docker" and store is not None:
        raise InputError("docker keeps its own store: --storage is podman's graph root")
    return f"{runtime}:{path.rstrip('/') or '/'}"


def split_location(location: str | None) -> tuple[str, str]:
    """(runtime, path) of a recorded location.

    Raises:
        InputError: not one :func:`store_location` makes (fail closed).
    """
    runtime, _, path = (location or "").partition(":")
    if runtime not in RUNTIMES or not path.startswith("/"):
        raise InputError(f"unsupported image location {str(location)[:80]!r}")
    return runtime, path
