"""Strict dataclass codec: round trips and refusals."""

from __future__ import annotations

import collections
import dataclasses
import enum
from typing import Any, NamedTuple

import pytest

from aegis import codec
from aegis.canonical import canonical_bytes
from aegis.codec import canonical_of, from_dict, to_dict
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
        (lambda d: d.update(tool="gem"), "is not one of"),  # not an ecosystem Aegis plans
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


# canonical_of and to_dict take a fast per-type path; whatever it refuses is redone by the
# generic walk, so output and errors must equal the generic conversion's.
class _Name(str):
    __slots__ = ()


class _Pair(NamedTuple):
    a: str
    b: int


class _TupleEnum(enum.Enum):
    X = ("a", 1)


@dataclasses.dataclass(frozen=True)
class _Holder:
    value: Any
    others: tuple[Any, ...] = ()
    extra: dict[Any, Any] = dataclasses.field(default_factory=dict)


@pytest.mark.parametrize(
    "tree",
    [
        _Holder(INTENT, (Signal("kernel", "linux-image", "x"), None, True, 3)),
        _Holder(_Name("sub"), (_Name("x"),)),
        _Holder(_Pair("a", 1)),
        _Holder(_TupleEnum.X),
        _Holder({1: "int key"}, extra={"k": {2: [Tool.APT]}}),
        _Holder(collections.OrderedDict(b=1, a=2)),
        _Holder(2**70, (-(2**70),)),
    ],
    ids=["model", "str-subclass", "namedtuple", "tuple-enum", "int-keys", "ordered", "big"],
)
def test_fast_conversion_equals_the_generic_one(tree: Any) -> None:
    generic = codec._to_dict_generic(tree)
    assert to_dict(tree) == generic
    assert canonical_of(tree) == canonical_bytes(generic)


@pytest.mark.parametrize(
    ("tree", "message"),
    [
        (_Holder(1.5), "floats"),
        (_Holder((1, float("nan"))), "floats"),
        (_Holder(b"bytes"), "not JSON"),
        (_Holder(_Holder), "not JSON"),
        (_Holder("x", extra={"k": {"f": 0.0}}), "floats"),
    ],
    ids=["float", "nan", "bytes", "class", "nested-float"],
)
def test_canonical_of_refuses_what_canonical_bytes_refuses(tree: Any, message: str) -> None:
    with pytest.raises(InputError, match=message):
        canonical_bytes(codec._to_dict_generic(tree))
    with pytest.raises(InputError, match=message):
        canonical_of(tree)


def test_plan_hash_is_the_hash_of_the_canonical_dict() -> None:
    from aegis.canonical import canonical_hash
    from aegis.devtools import policy_plans
    from aegis.model import plan_hash

    plan = policy_plans.clean_plan(packages=20)
    assert plan_hash(plan) == canonical_hash(codec._to_dict_generic(plan))


def _paths(value: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [path]
    if isinstance(value, dict):
        for k, v in value.items():
            out += _paths(v, (*path, k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            out += _paths(v, (*path, i))
    return out


def _replaced(doc: Any, path: tuple[Any, ...], new: Any) -> Any:
    if not path:
        return new
    copy = dict(doc) if isinstance(doc, dict) else list(doc)
    if new is _DELETE and len(path) == 1:
        del copy[path[0]]
        return copy
    copy[path[0]] = _replaced(doc[path[0]], path[1:], new)
    return copy


_DELETE = object()
_MUTATIONS = [_DELETE, None, 1, True, 1.5, "", "upgrade", [], ["x"], {}, {"unknown": 1}]


def _outcome(decode: Any, doc: Any) -> Any:
    try:
        return ("ok", decode(doc))
    except InputError as e:
        return ("error", e.message)


def test_fast_decoder_accepts_and_refuses_exactly_as_the_generic_one() -> None:
    # Every field of an execution plan (its embedded plan, approvals, binding) replaced by
    # values of every JSON type, deleted, or given an unknown key: the fast decoder must
    # build the same record or fail with the generic decoder's message.
    from nacl.signing import SigningKey

    from aegis.devtools import policy_plans, signing
    from aegis.sign.execution_plan import ExecutionPlan, execution_plan_to_dict

    plan = policy_plans.clean_plan(packages=2)
    approval = signing.make_approval(plan, SigningKey.generate())
    ep = signing.make_execution_plan(plan, SigningKey.generate(), approvals=(approval,))
    doc = execution_plan_to_dict(ep)
    checked = 0
    for n, path in enumerate(_paths(doc)):
        # Deletion and three other values per field, rotating through the list (keeps
        # the test under a second; every value still meets every kind of field).
        for new in (_DELETE, *(_MUTATIONS[1 + (n + k) % 10] for k in (0, 4, 7))):
            if new is _DELETE and not path:
                continue
            mutated = _replaced(doc, path, new)
            fast = _outcome(lambda d: from_dict(ExecutionPlan, d), mutated)
            generic = _outcome(lambda d: codec._from_dict_generic(ExecutionPlan, d), mutated)
            assert fast == generic, (path, new)
            checked += 1
    assert checked > 500
    assert from_dict(ExecutionPlan, doc) == ep
