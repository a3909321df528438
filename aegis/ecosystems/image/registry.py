"""Read manifests and blobs straight from a registry's HTTP API (read-only, anonymous).

skopeo reads the manifest the reference names (:mod:`aegis.ecosystems.image.resolve`); the
other reads of a plan (the tag beside a digest, the platform manifest, the config blob, the
cosign signature manifest and its payload) are plain GETs of the distribution API, made here
in process: each skopeo start costs ~35 ms, and skopeo has no command that prints a blob.
Every byte read here is checked by the caller against a digest it already holds (or is a
tag's answer, whose digest the caller computes itself), so this module only has to bound
what it reads: one registry host, TLS verified (plain HTTP only when the caller says so, for
a loopback registry policy marks ``http://``), sizes capped, no credentials (skopeo runs with
none either: ``HOME=/nonexistent``). A registry that answers 401 with a bearer challenge
gets one anonymous token request to the realm it names (Docker Hub, ghcr.io, quay.io do so).
"""

from __future__ import annotations

import json
import re
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field

TIMEOUT_S = 30.0
MAX_TOKEN = 64 * 1024
MANIFEST_ACCEPT = ", ".join(
    (
        "application/vnd.oci.image.index.v1+json",
        "application/vnd.oci.image.manifest.v1+json",
        "application/vnd.docker.distribution.manifest.list.v2+json",
        "application/vnd.docker.distribution.manifest.v2+json",
    )
)
_API_HOST = {"docker.io": "registry-1.docker.io"}
_CHALLENGE_RE = re.compile(r'(\w+)="([^"]*)"')


@dataclass(frozen=True)
class Got:
    """One read: its bytes, or why there are none (``missing``: the registry said 404)."""

    ok: bool
    data: bytes
    error: str
    missing: bool = False


class _NoRedirectAuth(urllib.request.HTTPRedirectHandler):
    """Blob redirects (to a CDN): followed without the registry's token, over https only.

    Plain http only for a plain-HTTP loopback registry.
    """

    def __init__(self, plain_http: bool) -> None:
        self.plain_http = plain_http

    def redirect_request(self, req, fp, code, msg, headers, newurl):  # type: ignore[no-untyped-def]  # noqa: PLR0917
        scheme = urllib.parse.urlsplit(newurl).scheme
        if scheme != "https" and not (self.plain_http and scheme == "http"):
            raise urllib.error.HTTPError(newurl, code, "redirect off https", headers, fp)
        new = super().redirect_request(req, fp, code, msg, headers, newurl)
        if new is not None:
            new.remove_header("Authorization")
        return new


@dataclass
class Registry:
    """One registry host, read anonymously; the token it hands out is kept per scope."""

    host: str
    """``HOST[:PORT]`` as the reference names it."""
    plain_http: bool
    _tokens: dict[str, str] = field(default_factory=dict)

    @property
    def base(self) -> str:
        """The API root: Docker Hub's is registry-1.docker.io."""
        scheme = "http" if self.plain_http else "https"
        return f"{scheme}://{_API_HOST.get(self.host, self.host)}/v2/"

    def manifest(self, path: str, reference: str, cap: int) -> Got:
        """``GET /v2/PATH/manifests/REFERENCE`` (a tag or a digest), at most ``cap`` bytes."""
        return self._get(path, f"manifests/{reference}", cap, MANIFEST_ACCEPT)

    def blob(self, path: str, digest: str, cap: int) -> Got:
        """``GET /v2/PATH/blobs/DIGEST``, at most ``cap`` bytes."""
        return self._get(path, f"blobs/{digest}", cap, "*/*")

    def _get(self, path: str, tail: str, cap: int, accept: str) -> Got:
        url = self.base + urllib.parse.quote(f"{path}/{tail}", safe="/:@")
        opener = urllib.request.build_opener(_NoRedirectAuth(self.plain_http))
        for attempt in range(2):
            headers = {"Accept": accept, "User-Agent": "aegis"}
            token = self._tokens.get(path)
            if token:
                headers["Authorization"] = f"Bearer {token}"
            try:
                # http(s) only: the base is built from a checked host and scheme above.
                request = urllib.request.Request(url, headers=headers)  # noqa: S310
                with opener.open(request, timeout=TIMEOUT_S) as resp:
                    data = resp.read(cap + 1)
            except urllib.error.HTTPError as e:
                challenge = e.headers.get("WWW-Authenticate", "") if e.headers else ""
                if e.code == 401 and attempt == 0 and challenge.lower().startswith("bearer "):  # noqa: PLR2004 - HTTP status
                    error = self._token(path, challenge)
                    if error:
                        return Got(False, b"", error)
                    continue
                return Got(False, b"", f"{url}: HTTP {e.code}", missing=e.code == 404)  # noqa: PLR2004
            except (OSError, ValueError) as e:
                return Got(False, b"", f"{url}: {e}")
            if len(data) > cap:
                return Got(False, b"", f"{url}: larger than {cap} bytes")
            return Got(True, data, "")
        return Got(False, b"", f"{url}: still unauthorized with an anonymous token")

    def _token(self, path: str, challenge: str) -> str:
        """Fetch an anonymous pull token for ``path``; "" or why not."""
        params = dict(_CHALLENGE_RE.findall(challenge))
        realm = params.get("realm", "")
        if not realm.startswith("https://") and not (
            self.plain_http and realm.startswith("http://")
        ):
            return f"token realm {realm[:100]!r} is not https"
        query = {"scope": f"repository:{path}:pull"}
        if params.get("service"):
            query["service"] = params["service"]
        url = realm + ("&" if "?" in realm else "?") + urllib.parse.urlencode(query)
        try:
            with urllib.request.urlopen(url, timeout=TIMEOUT_S) as resp:  # noqa: S310 - https checked above
                doc = json.loads(resp.read(MAX_TOKEN))
        except (OSError, ValueError) as e:
            return f"anonymous token from {realm[:100]}: {e}"
        token = doc.get("token") or doc.get("access_token") if isinstance(doc, dict) else None
        if not isinstance(token, str) or not token:
            return f"no token from {realm[:100]}"
        self._tokens[path] = token
        return ""
