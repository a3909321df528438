"""aegis.sockets.listen_at: what aegisd and aegis-reviewd listen on without systemd."""

from __future__ import annotations

import os
import socket
import stat
import threading
from pathlib import Path

import pytest

from aegis.errors import InputError
from aegis.execute.daemon import open_listener
from aegis.review.reviewd import bind_socket
from aegis.sockets import listen_at


def test_a_file_at_the_path_is_refused_and_left_alone(tmp_path: Path) -> None:
    path = tmp_path / "aegisd.sock"
    path.write_text("not a socket")
    with pytest.raises(InputError, match="not a socket"):
        listen_at(path, 0o660)
    assert path.read_text() == "not a socket"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["aegisd.sock"]


def test_a_stale_socket_is_replaced_with_the_mode_asked(tmp_path: Path) -> None:
    path = tmp_path / "aegisd.sock"
    stale = socket.socket(socket.AF_UNIX)
    stale.bind(str(path))
    stale.close()
    with listen_at(path, 0o660, os.getegid()) as sock:
        st = path.lstat()
        assert stat.S_ISSOCK(st.st_mode)
        assert stat.S_IMODE(st.st_mode) == 0o660
        with socket.socket(socket.AF_UNIX) as c:
            c.connect(str(path))
            sock.accept()[0].close()


@pytest.mark.parametrize("daemon", ["aegisd", "aegis-reviewd"])
def test_a_client_that_finds_the_path_can_connect(tmp_path: Path, daemon: str) -> None:
    """Both daemons used to bind at the path, then listen (aegisd chown'ed and chmod'ed in
    between): a client connecting as soon as the path existed was refused, tens of times
    in two hundred on a loaded machine (the review daemon's slow-client test flaked so)."""

    def listen(path: Path) -> socket.socket:
        if daemon == "aegisd":
            return open_listener(path, 0o660, None, {})
        return bind_socket(path)

    refused = 0
    for i in range(50):
        path = tmp_path / f"a{i}.sock"
        outcome: list[str] = []

        def client(path: Path = path, outcome: list[str] = outcome) -> None:
            while not path.exists():
                pass
            with socket.socket(socket.AF_UNIX) as c:
                try:
                    c.connect(str(path))
                    outcome.append("ok")
                except ConnectionRefusedError:
                    outcome.append("refused")

        thread = threading.Thread(target=client)
        thread.start()
        listener = listen(path)
        thread.join(timeout=10)
        listener.close()
        refused += outcome != ["ok"]
        assert stat.S_IMODE(path.stat().st_mode) == 0o660
    assert refused == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(f"a{i}.sock" for i in range(50))
