"""The registry HTTP reader against a real loopback server: the anonymous bearer-token
exchange registries such as Docker Hub ask for, size caps, 404, and redirects."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from aegis.ecosystems.image.registry import Registry

BLOB = b'{"config": {}}'


class _Handler(BaseHTTPRequestHandler):
    def log_message(self, *args: object) -> None:
        """Quiet."""

    def _send(self, code: int, body: bytes = b"", **headers: str) -> None:
        self.send_response(code)
        for k, v in headers.items():
            self.send_header(k.replace("_", "-"), v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        host = f"127.0.0.1:{self.server.server_address[1]}"  # type: ignore[index]
        if self.path.startswith("/token?"):
            assert "scope=repository%3Ateam%2Fapp%3Apull" in self.path
            return self._send(200, b'{"token": "t0k"}')
        if self.path == "/v2/team/ftp/blobs/sha256:x":
            return self._send(302, Location="ftp://127.0.0.1/x")
        if self.path == "/v2/team/big/blobs/sha256:x":
            return self._send(200, b"x" * 100)
        if self.headers.get("Authorization") != "Bearer t0k":
            realm = f'Bearer realm="http://{host}/token",service="reg"'
            return self._send(401, WWW_Authenticate=realm)
        if self.path == "/v2/team/app/blobs/sha256:x":
            return self._send(200, BLOB)
        return self._send(404)


@pytest.fixture(scope="module")
def registry() -> Iterator[Registry]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield Registry(f"127.0.0.1:{server.server_address[1]}", plain_http=True)
    finally:
        server.shutdown()
        server.server_close()


def test_an_anonymous_token_is_fetched_once_and_sent(registry: Registry) -> None:
    got = registry.blob("team/app", "sha256:x", 1024)
    assert (got.ok, got.data) == (True, BLOB)
    assert registry.manifest("team/app", "v1", 1024).missing  # 404 with the token: missing


def test_caps_and_redirects_off_http_fail(registry: Registry) -> None:
    big = registry.blob("team/big", "sha256:x", 10)
    assert not big.ok
    assert "larger than" in big.error
    assert not registry.blob("team/ftp", "sha256:x", 1024).ok


def test_a_token_realm_over_http_is_refused_for_a_tls_registry() -> None:
    # Same challenge served to a TLS registry: the realm must be https (nothing listens here).
    tls = Registry("127.0.0.1:1", plain_http=False)
    assert tls._token("team/app", 'Bearer realm="http://127.0.0.1:1/token"')
