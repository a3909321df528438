"""Every AegisError subclass has a stable exit code, and the CLI handler exits with it."""

from __future__ import annotations

import importlib
import pkgutil

import click
import pytest
from click.testing import CliRunner

import aegis
from aegis import errors
from aegis.cli.shell import LazyGroup
from aegis.errors import EXIT_CODES, AegisError

STABLE = {
    "InputError": 3,
    "TrustError": 4,
    "PolicyDenied": 5,
    "StateError": 6,
    "EnvironmentFailure": 7,
    "ApprovalRequired": 8,
    "ExecutionFailed": 9,
    "OutcomeUnknown": 10,
}


def _import_all() -> None:
    for mod in pkgutil.walk_packages(aegis.__path__, "aegis."):
        if mod.name.endswith("__main__"):
            continue
        try:
            importlib.import_module(mod.name)
        except Exception:  # noqa: S112 - another area's module in progress must not hide ours
            continue


def _subclasses(cls: type[AegisError]) -> list[type[AegisError]]:
    out: list[type[AegisError]] = []
    for sub in cls.__subclasses__():
        out.append(sub)
        out.extend(_subclasses(sub))
    return sorted(set(out), key=lambda c: f"{c.__module__}.{c.__qualname__}")


_import_all()
ALL = _subclasses(AegisError)


def test_the_table_never_changes() -> None:
    assert {c.__name__: c.exit_code for c in EXIT_CODES} == STABLE
    assert {c.__name__: code for c, code in EXIT_CODES.items()} == STABLE


def _base(cls: type[AegisError]) -> type[AegisError]:
    for klass in cls.__mro__:
        if klass in EXIT_CODES:
            return klass
    raise AssertionError(f"{cls} derives from no base of the exit-code table")


def _make(cls: type[AegisError]) -> AegisError:
    try:
        return cls("boom [/] \x1b[31m")
    except Exception:  # a subclass with its own constructor: build it bare
        err = cls.__new__(cls)
        AegisError.__init__(err, "boom [/] \x1b[31m")
        return err


def _is_mixin_base(cls: type[AegisError]) -> bool:
    """An intermediate base (e.g. a refusal mixin) never raised itself: all its leaves are coded."""
    if any(k in EXIT_CODES for k in cls.__mro__):
        return False
    leaves = [c for c in _subclasses(cls) if not c.__subclasses__()]
    return bool(leaves) and all(any(k in EXIT_CODES for k in c.__mro__) for c in leaves)


@pytest.mark.parametrize("cls", ALL, ids=lambda c: f"{c.__module__}.{c.__qualname__}")
def test_every_subclass_exits_with_its_base_code(cls: type[AegisError]) -> None:
    if _is_mixin_base(cls):
        return
    base = _base(cls)
    assert cls.exit_code == EXIT_CODES[base]
    assert 3 <= cls.exit_code <= 10

    @click.group(cls=LazyGroup, table={})
    def cli() -> None:
        pass

    @cli.command()
    def fail() -> None:
        raise _make(cls)

    result = CliRunner().invoke(cli, ["fail"])
    assert result.exit_code == cls.exit_code
    assert result.stderr.startswith("Error: boom [/] \\x1b[31m")
    assert "Traceback" not in result.stderr


def test_internal_bug_exits_1_and_traceback_only_with_debug() -> None:
    @click.group(cls=LazyGroup, table={})
    @click.option("--debug", is_flag=True, expose_value=False)
    def cli() -> None:
        pass

    @cli.command()
    def bug() -> None:
        raise ZeroDivisionError("oops")

    plain = CliRunner().invoke(cli, ["bug"])
    assert plain.exit_code == 1
    assert "internal error (ZeroDivisionError: oops)" in plain.stderr
    assert "Traceback" not in plain.stderr
    debug = CliRunner().invoke(cli, ["--debug", "bug"])
    assert debug.exit_code == 1
    assert "Traceback" in debug.stderr


def test_usage_errors_exit_2() -> None:
    @click.group(cls=LazyGroup, table={})
    def cli() -> None:
        pass

    assert CliRunner().invoke(cli, ["nope"]).exit_code == 2


def test_errors_module_bases_are_all_in_the_table() -> None:
    bases = [
        c for c in vars(errors).values() if isinstance(c, type) and c.__bases__ == (AegisError,)
    ]
    assert set(bases) == set(EXIT_CODES)


def test_a_message_cannot_start_a_line_of_its_own() -> None:
    @click.group(cls=LazyGroup, table={})
    def cli() -> None:
        pass

    @cli.command()
    def fail() -> None:
        raise errors.PolicyDenied("denied\ndecision: allow\x1b[0m", hint="see policy")

    result = CliRunner().invoke(cli, ["fail"])
    assert result.exit_code == 5
    assert result.stderr.splitlines() == [
        "Error: denied",
        "  decision: allow\\x1b[0m",
        "  hint: see policy",
    ]
