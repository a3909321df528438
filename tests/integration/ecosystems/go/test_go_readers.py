"""The plan's own readers agree with go: go.mod (go mod edit -json), sums (go mod download
-json) and retractions (go list -m -json -retracted), against the real go tool."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from aegis.ecosystems.go import modcache, modfile
from aegis.ecosystems.go.gotool import GO, json_stream, planning_env

from .go_fixtures import GoProxy, needs_go, new_module

pytestmark = needs_go
RETRACTING = """
// Bad ones.
retract (
\t// first
\t[v1.0.0, v1.1.0] // range

\tv1.2.0-rc.1
)
retract v1.2.0 // self
"""


def test_the_readers_give_what_go_gives(tmp_path: Path) -> None:
    p = GoProxy(tmp_path / "proxy")
    for v in ("v1.0.0", "v1.1.0", "v1.2.0-rc.1", "v1.3.0-rc.1"):
        p.add("example.com/rng", v, {"a.go": "package rng\n"})
    p.add("example.com/rng", "v1.2.0", {"a.go": "package rng\n"}, extra_mod=RETRACTING)
    p.add("example.com/Upper", "v1.0.0", {"a.go": "package upper\n"})
    extra = ('require (\n\t"example.com/rng" v1.1 // indirect\n)\n\n'
             "replace example.com/rng v1.0.0 => example.com/rng v1.1.0\n"
             "replace example.com/x => ../x\n")  # fmt: skip
    module = new_module(tmp_path / "m", extra)
    env = planning_env(str(tmp_path / "s"), p.url)

    def go(*args: str) -> str:
        out = subprocess.run([GO, *args], cwd=module, env=env, capture_output=True, text=True,
                             check=True, timeout=120)  # fmt: skip
        return out.stdout

    edit = json.loads(go("mod", "edit", "-json"))
    mf = modfile.parse((module / "go.mod").read_text())
    assert mf.require == {r["Path"]: r["Version"] for r in edit["Require"]}
    assert mf.replace == edit["Replace"]
    versions = ("v1.0.0", "v1.1.0", "v1.2.0-rc.1", "v1.2.0", "v1.3.0-rc.1")
    mods = [*(f"example.com/rng@{v}" for v in versions), "example.com/Upper@v1.0.0"]
    cache = env["GOMODCACHE"]
    for d in json_stream(go("mod", "download", "-json", *mods)):
        assert modcache.sums(cache, d["Path"], d["Version"]) == (d["Sum"], d["GoModSum"])
    (module / "go.mod").write_text("module example.com/app\n\ngo 1.18\n")  # no replace now
    for d in json_stream(go("list", "-m", "-json", "-retracted", *mods)):
        mine = modcache.retracted(d["Path"], d["Version"], replaced=False, proxy=p.url,
                                  modcache=cache, sumdb_on=False)  # fmt: skip
        assert mine == d.get("Retracted", []), d
