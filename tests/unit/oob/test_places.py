"""Managed npm prefix and pip venvs: what changed is named per package, once per baseline."""

from __future__ import annotations

from pathlib import Path

import pytest

from aegis.errors import InputError
from aegis.oob.baseline import Baseline, from_doc, to_doc
from aegis.oob.logs import Cursor
from aegis.oob.places import place_changes

VENV = "managed:/var/lib/aegis/managed/python/tools"
NPM = "global:/var/lib/aegis/managed/npm"


def test_each_changed_package_is_named_with_its_tool_place_and_versions() -> None:
    before = {VENV: {"six": "1.16.0 aa", "idna": "3.6 bb", "gone": "1.0 cc"},
              NPM: {"dep-a": "1.0.0 sha512-x"}}  # fmt: skip
    now = {VENV: {"six": "1.17.0 dd", "idna": "3.6 ee", "new-lib": "2.0 ff"},
           NPM: {"dep-a": "1.0.0 sha512-x", "lodahs": "1.0.0 sha512-y"}}  # fmt: skip
    got = {(f.tool, f.package): (f.action, f.old, f.new, f.place)
           for f in place_changes("d", before, now)}  # fmt: skip
    assert (
        got
        == {
            ("pip", "six"): ("upgrade", "1.16.0", "1.17.0", VENV[8:]),
            ("pip", "idna"): ("changed", "3.6", "3.6", VENV[8:]),  # same version, other files
            ("pip", "gone"): ("remove", "1.0", None, VENV[8:]),
            ("pip", "new-lib"): ("install", None, "2.0", VENV[8:]),
            ("npm", "lodahs"): ("install", None, "1.0.0", NPM[7:]),
        }
    )
    again = place_changes("d", before, now)
    assert [f.finding_id for f in again] == [f.finding_id for f in place_changes("d", before, now)]
    assert {f.finding_id for f in again}.isdisjoint(
        f.finding_id for f in place_changes("other", before, now)
    )
    assert "(install) by npm in /var/lib/aegis/managed/npm" in again[0].summary()
    assert place_changes("d", now, now) == []


def test_the_baseline_keeps_places_and_reads_one_written_before_them() -> None:
    b = Baseline("t", "apply", "sha", {}, Cursor("", 0), places={VENV: {"six": "1.16.0 aa"}})
    assert from_doc(to_doc(b)).places == b.places
    old = to_doc(Baseline("t", "apply", "sha", {}, Cursor("", 0)))
    del old["places"]
    assert from_doc(old).places == {}
    assert from_doc(old).digest == Baseline("t", "apply", "sha", {}, Cursor("", 0)).digest
    with pytest.raises(InputError, match="places"):
        from_doc({**to_doc(b), "places": {VENV: {"six": 1}}})


def test_a_place_aegisd_changed_is_watched_until_it_is_gone(tmp_path: Path) -> None:
    import shutil

    from aegis.config import load_config
    from aegis.oob.places import read_places

    cfg = load_config({"AEGIS_HOME": str(tmp_path / "home")})
    info = tmp_path / "app/.venv/lib/python3.11/site-packages/Demo_Lib-1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: Demo_Lib\nVersion: 1.0\n\nx\n")
    (info / "RECORD").write_text("demo_lib/__init__.py,sha256=x,1\n")
    where = f"venv:{tmp_path / 'app/.venv'}"
    first = read_places(cfg, {}, also=where)
    assert list(first) == [where]
    assert first[where]["demo-lib"].startswith("1.0 ")
    assert read_places(cfg, first) == first  # watched without being named again
    assert read_places(cfg, {}, also="gomod:/srv/x") == {}  # another ecosystem's place
    shutil.rmtree(tmp_path / "app")
    gone = read_places(cfg, first)
    assert gone == {where: {}}  # read once as empty: everything removed is named
    assert [f.action for f in place_changes("d", first, gone)] == ["remove"]
    assert read_places(cfg, gone) == {}  # then no longer watched
