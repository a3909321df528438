"""Store records: strict parsing of untrusted rows."""

from __future__ import annotations

from typing import Any

import pytest

from aegis.errors import InputError
from aegis.workflow.records import (
    ArtifactRef,
    CorruptStoreError,
    HistoryRecord,
    RequestRecord,
    check_id,
    history_row,
    parse_history_row,
    parse_request_row,
    parse_time,
    request_row,
)

STATES = frozenset({"intent", "analyzed"})
T = "2026-01-01T00:00:00.000000Z"
REC = RequestRecord(
    id="r-1",
    kind="apt install",
    summary="x",
    state="analyzed",
    version=1,
    created_at=T,
    updated_at=T,
    plan_id="p-1",
    plan_hash="a" * 64,
    lease_owner=None,
    lease_expires_at=None,
    head="b" * 64,
)
HIST = HistoryRecord(
    request_id="r-1",
    seq=1,
    from_state="intent",
    to_state="analyzed",
    trigger="analyze",
    actor="me",
    at=T,
    artifacts=(ArtifactRef("plan", "a" * 64, "/p.json"),),
    facts={"reason": "x"},
    workflow="c" * 64,
    prev_hash="d" * 64,
)


def test_round_trips() -> None:
    assert parse_request_row(request_row(REC), STATES) == REC
    assert parse_history_row(history_row(HIST), STATES) == HIST


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        ({"version": "1"}, "expected an integer"),
        ({"version": True}, "expected an integer"),
        ({"state": "limbo"}, "unknown state"),
        ({"updated_at": "2026-01-01"}, "not a store timestamp"),
        ({"plan_hash": "A" * 64}, "SHA-256"),
        ({"id": "../x"}, "not a valid request id"),
        ({"extra": 1}, "unknown key"),
        ({"row_hash": "0" * 64}, "row hash does not match"),
        ({"summary": "y" * 5000}, "longer than"),
    ],
    ids=[
        "version-str",
        "version-bool",
        "state",
        "time",
        "hash-case",
        "id",
        "extra",
        "hash",
        "long",
    ],
)
def test_bad_request_rows(change: dict[str, Any], problem: str) -> None:
    row = {**request_row(REC), **change}
    with pytest.raises(CorruptStoreError, match=problem) as err:
        parse_request_row(row, STATES)
    assert err.value.exit_code == 4


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        ({"evidence": "{"}, "malformed JSON"),
        ({"evidence": '{"artifacts":[],"facts":{},"workflow":"w","x":1}'}, "wrong shape"),
        ({"evidence": '{"artifacts":[],"facts":{"a":1.5},"workflow":"w"}'}, "floats"),
        ({"evidence": '{"artifacts":[{"kind":"plan"}],"facts":{},"workflow":"w"}'}, "malformed"),
        ({"seq": -1}, "non-negative"),
        ({"to_state": "limbo"}, "unknown state"),
        ({"trigger": "decide"}, "row hash does not match"),
    ],
    ids=["json", "shape", "float", "artifact", "seq", "state", "edited"],
)
def test_bad_history_rows(change: dict[str, Any], problem: str) -> None:
    row = {**history_row(HIST), **change}
    with pytest.raises(CorruptStoreError, match=problem):
        parse_history_row(row, STATES)


@pytest.mark.parametrize("text", ["", "2026-13-01T00:00:00.000000Z", "now", "2026-01-01T00:00:00Z"])
def test_parse_time_is_strict(text: str) -> None:
    with pytest.raises(InputError):
        parse_time(text)


@pytest.mark.parametrize("value", ["", "-rf", "a b", "x" * 200, "r/1", "r\n1", 5])
def test_check_id_refuses(value: object) -> None:
    with pytest.raises(InputError):
        check_id(value)
