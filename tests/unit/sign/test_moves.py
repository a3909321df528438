"""Stale-plan refusals name what moved (issue 12 item 13)."""

from __future__ import annotations

from dataclasses import replace

from aegis.devtools import policy_plans as pp
from aegis.model import Action
from aegis.sign.moves import MAX_MOVES, describe_moves, only_repositories_moved

BASE = pp.clean_plan(changes=(pp.change("nginx"), pp.change("libssl3")))


def test_nothing_moved() -> None:
    assert describe_moves(BASE, BASE) == []
    assert not only_repositories_moved(BASE, BASE)


def test_installed_and_candidate_versions_are_named() -> None:
    moved = replace(
        BASE,
        changes=(pp.change("nginx", current="1.1-1"), pp.change("libssl3", candidate="1.3-1")),
        package_state_hash="f" * 64,
    )
    assert describe_moves(BASE, moved) == [
        "libssl3:amd64 candidate 1.2-1 -> 1.3-1",
        "nginx:amd64 installed 1.0-1 -> 1.1-1",
    ]


def test_joined_and_left_the_delta() -> None:
    moved = replace(
        BASE, changes=(pp.change("nginx"), pp.change("zlib1g", action=Action.INSTALL, current=None))
    )
    assert describe_moves(BASE, moved) == [
        "libssl3:amd64 left the delta (was upgrade)",
        "zlib1g:amd64 joined the delta (install)",
    ]


def test_a_change_outside_the_delta_is_said_so() -> None:
    moved = replace(BASE, package_state_hash="e" * 64)
    assert describe_moves(BASE, moved) == ["installed packages outside the delta changed"]


def test_a_repository_that_moved_is_not_blamed_on_package_state() -> None:
    repo, *others = BASE.repositories
    newer = replace(BASE, repositories=(replace(repo, date="2099-01-01T00:00:00Z"), *others))
    moves = describe_moves(BASE, newer)
    assert len(moves) == 1
    assert moves[0].startswith(f"repository {repo.uri} {repo.suite}/{repo.component} changed (date")
    assert only_repositories_moved(BASE, newer)
    assert not only_repositories_moved(BASE, replace(newer, package_state_hash="e" * 64))


def test_hostile_names_are_inert_and_the_list_is_capped() -> None:
    many = tuple(pp.change(f"p{i}\x1b[31m", action=Action.INSTALL, current=None) for i in range(20))
    moves = describe_moves(BASE, replace(BASE, changes=many))
    assert len(moves) == MAX_MOVES + 1
    assert moves[-1] == f"and {22 - MAX_MOVES} more"
    assert not any("\x1b" in m for m in moves)
