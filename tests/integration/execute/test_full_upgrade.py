"""``aegis apt full-upgrade --plan`` (alias ``dist-upgrade``): the held-back upgrade, planned.

``apt-get upgrade`` keeps ``aegis-held 1.1`` back because it needs a package not yet
installed (``aegis-newdep``); ``full-upgrade`` installs it. Planned through the real CLI,
signed, and applied by aegisd with exactly that delta; a dpkg hold stays a hold.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from aegis.devtools import testrepo
from aegis.model import Operation

from .chain_helpers import AEGIS, Chain, make_chain, run_cli

pytestmark = pytest.mark.root


@pytest.fixture
def chain(tmp_path: Path, key_set) -> Chain:  # type: ignore[no-untyped-def]
    chain = make_chain(tmp_path, key_set)
    testrepo.run_apt(chain.root, "install", "-y", "aegis-held=1.0")
    return chain


def _plan_json(chain: Chain, verb: str) -> dict:  # type: ignore[type-arg]
    out = run_cli([*AEGIS, "apt", verb, "--plan", "--json", "--no-contents"], chain.env)
    return json.loads(out.stdout)["plan"]  # type: ignore[no-any-return]


def _rows(plan: dict) -> list[tuple[str, str, str | None, str | None]]:  # type: ignore[type-arg]
    return [
        (c["name"], c["action"], c["current_version"], c["candidate_version"])
        for c in plan["changes"]
    ]


def test_full_upgrade_plans_what_upgrade_keeps_back_and_aegisd_applies_it(
    chain: Chain, make_daemon
) -> None:  # type: ignore[no-untyped-def]
    upgrade = _plan_json(chain, "upgrade")
    assert _rows(upgrade) == [("aegis-held", "held-back", "1.0", "1.1")]
    [kept] = [s for s in upgrade["signals"] if s["name"] == "held-back"]
    assert "aegis apt full-upgrade --plan" in kept["detail"]
    full = _plan_json(chain, "full-upgrade")
    assert full["intent"]["operation"] == "full-upgrade"
    assert _rows(full) == [
        ("aegis-newdep", "install", None, "1.0"),
        ("aegis-held", "upgrade", "1.0", "1.1"),
    ]
    assert sorted(p["package"] for p in full["provenance"]) == ["aegis-held", "aegis-newdep"]
    alias = _plan_json(chain, "dist-upgrade")
    assert alias["intent"]["operation"] == "full-upgrade"
    assert _rows(alias) == _rows(full)
    # Signed and applied: exactly that delta, by its verified files.
    plan = chain.plan(op=Operation.FULL_UPGRADE)
    assert plan.command_preview[plan.command_preview.index("install") + 1] == "--trivial-only"
    extra = {k: v for k, v in chain.env.items() if k in ("AEGIS_APT_CONFIG", "AEGIS_DPKG_ROOT")}
    d = make_daemon(env_extra=extra, home=chain.home)
    answer = d.submit(chain.sign(plan))
    assert answer.ok, answer
    assert answer.result is not None
    assert answer.result["drift"] == []
    installed = chain.installed()
    assert (installed["aegis-held"], installed["aegis-newdep"]) == ("1.1", "1.0")


def test_a_dpkg_hold_is_still_a_hold_under_full_upgrade(chain: Chain) -> None:
    status = chain.root.status
    head, sep, tail = status.read_text().partition(
        "Package: aegis-held\nStatus: install ok installed"
    )
    assert sep
    status.write_text(head + "Package: aegis-held\nStatus: hold ok installed" + tail)
    full = _plan_json(chain, "full-upgrade")
    assert _rows(full) == [("aegis-held", "held-back", "1.0", "1.1")]
    [held] = [s for s in full["signals"] if s["name"] == "held-back"]
    assert "held by dpkg (apt-mark hold)" in held["detail"]
    assert full["command_preview"] == []  # nothing to run
