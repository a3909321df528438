"""Fixtures for review integration tests: the scripted model server."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from fakemodel import FakeModelServer, running


@pytest.fixture(scope="module")
def fake_model() -> Iterator[FakeModelServer]:
    """One scripted chat-completions server for the module."""
    with running() as server:
        yield server


@pytest.fixture
def model(fake_model: FakeModelServer) -> FakeModelServer:
    """The server, reset to the valid script."""
    fake_model.script = "valid"
    fake_model.requests.clear()
    return fake_model
