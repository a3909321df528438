"""Fixtures for audit tests: a real audit key and a log factory with a fixed clock."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from aegis.audit.chain import AuditLog
from aegis.sign.keys import load_signing_key, write_keypair


class StepClock:
    """A clock that advances one millisecond per call."""

    def __init__(self) -> None:
        self.now = datetime(2026, 1, 1, tzinfo=UTC)

    def __call__(self) -> datetime:
        self.now += timedelta(milliseconds=1)
        return self.now


@pytest.fixture(scope="session")
def audit_key(tmp_path_factory: pytest.TempPathFactory) -> tuple[Any, str, Path]:
    """(signing key, public hex, key path) of a real audit key."""
    d = tmp_path_factory.mktemp("audit-key")
    path, pub = write_keypair(d, "audit")
    return load_signing_key(path), pub, path


@pytest.fixture
def make_log(tmp_path: Path, audit_key: tuple[Any, str, Path]) -> Iterator[Callable[..., AuditLog]]:
    """Build AuditLog instances on tmp_path/log/audit.jsonl (closed at teardown)."""
    opened: list[AuditLog] = []

    def factory(**kwargs: Any) -> AuditLog:
        kwargs.setdefault("use_syslog", False)
        kwargs.setdefault("clock", StepClock())
        path = kwargs.pop("path", tmp_path / "log" / "audit.jsonl")
        log = AuditLog(path, audit_key[0], "test-host", **kwargs)
        opened.append(log)
        return log

    yield factory
    for log in opened:
        log.close()
