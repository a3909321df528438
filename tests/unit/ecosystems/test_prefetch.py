"""Artifacts fetched ahead while a tool resolves: handed over once, per thread, never trusted."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from aegis.ecosystems import prefetch


@pytest.fixture
def server() -> Iterator[str]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:
            pass

        def do_GET(self) -> None:
            if self.path != "/a.tgz":
                self.send_error(404)
                return
            self.send_response(200)
            self.send_header("Content-Length", "5")
            self.end_headers()
            self.wfile.write(b"bytes")

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()


def test_fetched_ahead_once_failures_and_other_schemes_left_out(server: str) -> None:
    prefetch.fetch_ahead([f"{server}/a.tgz", f"{server}/missing.tgz", "file:///etc/passwd"])
    assert prefetch.take() == {f"{server}/a.tgz": b"bytes"}
    assert prefetch.take() == {}  # handed over once


def test_another_thread_never_takes_this_threads_bytes(server: str) -> None:
    prefetch.fetch_ahead([f"{server}/a.tgz"])
    seen: list[dict[str, bytes]] = []
    other = threading.Thread(target=lambda: seen.append(prefetch.take()))
    other.start()
    other.join()
    assert seen == [{}]
    prefetch.clear()
    assert prefetch.take() == {}


def test_get_refuses_what_is_not_http(server: str) -> None:
    assert prefetch.get(f"{server}/a.tgz") == b"bytes"
    with pytest.raises(OSError, match="not an http"):
        prefetch.get("file:///etc/passwd")


def test_what_exceeds_the_budget_is_left_for_after_the_tool(
    server: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(prefetch, "MAX_AHEAD_BYTES", 4)  # "bytes" is 5
    prefetch.fetch_ahead([f"{server}/a.tgz"])
    assert prefetch.take() == {}
