"""Strict dataclass codec: round trips and refusals."""

from __future__ import annotations

import pytest

from aegis.codec import from_dict, to_dict
from aegis.errors import InputError
from aegis.model import Intent, Operation, Signal, Tool

INTENT = Intent(
    tool=Tool.APT,
    operation=Operation.INSTALL,
    targets=("nginx", "aegis-base=1.2"),
    requested_by="alice",
    requested_at="2026-11-26T12:00:00Z",
)


def test_round_trip() -> None:
    assert from_dict(Intent, to_dict(INTENT)) == INTENT


def test_defaults_may_be_omitted() -> None:
    data = to_dict(INTENT)
    del data["rollback_of"]
    assert from_dict(Intent, data) == INTENT


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: d.update(extra=1), "unknown key"),
        (lambda d: d.pop("tool"), "missing key 'tool'"),
        (lambda d: d.update(tool="cargo"), "is not one of"),  # npm and pip are tools now
        (lambda d: d.update(targets="nginx"), "expected a list"),
        (lambda d: d.update(targets=[1]), "expected a string"),
        (lambda d: d.update(requested_by=None), "expected a string"),
    ],
    ids=["unknown-key", "missing-key", "bad-enum", "not-a-list", "bad-item", "null"],
)
def test_refusals(change, message: str) -> None:  # type: ignore[no-untyped-def]
    data = to_dict(INTENT)
    change(data)
    with pytest.raises(InputError, match=message):
        from_dict(Intent, data)


def test_bool_is_not_int() -> None:
    from aegis.model import Provenance

    data = {
        "package": "a",
        "version": "1",
        "arch": "all",
        "uri": "u",
        "filename": "f",
        "size": True,
        "sha256": "0" * 64,
        "repository": None,
        "chain": [],
        "verified": False,
    }
    with pytest.raises(InputError, match="integer"):
        from_dict(Provenance, data)


def test_not_an_object() -> None:
    with pytest.raises(InputError, match="expected an object"):
        from_dict(Signal, ["name"])
