"""A ``file://`` GOPROXY directory for tests, the demo and the bench.

Laid out as Go's module proxy protocol says (``go help goproxy``): for each module
``<escaped path>/@v/list`` (one version a line), ``<version>.info`` (JSON: Version, Time),
``<version>.mod`` and ``<version>.zip``. Zips follow Go's module zip format: every file under
``<path>@<version>/``, ``go.mod`` at the module root, forward slashes, no directories or
links; go checks the layout and computes the ``h1:`` sums itself (nothing here computes one).
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

from aegis.ecosystems.go.names import escape_path, is_pseudo


class GoProxy:
    """A module proxy directory; :attr:`url` is its ``file://`` GOPROXY."""

    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        self.url = f"file://{root.resolve()}/"

    def add(
        self,
        path: str,
        version: str,
        files: dict[str, str] | None = None,
        *,
        requires: dict[str, str] | None = None,
        extra_mod: str = "",
        time: str = "2024-01-01T00:00:00Z",
    ) -> None:
        """Publish ``path@version`` with ``files`` (name -> text) and its requirements."""
        gomod = f"module {path}\n\ngo 1.18\n"
        if requires:
            gomod += "\nrequire (\n" + "".join(f"\t{m} {v}\n" for m, v in requires.items()) + ")\n"
        gomod += extra_mod
        d = self.root / escape_path(path) / "@v"
        d.mkdir(parents=True, exist_ok=True)
        (d / f"{version}.info").write_text(json.dumps({"Version": version, "Time": time}))
        (d / f"{version}.mod").write_text(gomod)
        prefix = f"{path}@{version}/"
        with zipfile.ZipFile(d / f"{version}.zip", "w", zipfile.ZIP_DEFLATED) as z:
            z.writestr(prefix + "go.mod", gomod)
            for name, text in sorted((files or {}).items()):
                z.writestr(prefix + name, text)
        listed = d / "list"
        if is_pseudo(version):
            return  # proxies list releases only; a pseudo-version is fetched by name
        versions = listed.read_text().split() if listed.exists() else []
        if version not in versions:
            listed.write_text("".join(f"{v}\n" for v in [*versions, version]))

    def tamper(self, path: str, version: str, name: str, text: str) -> None:
        """Replace one file of a published zip (a proxy serving other bytes than before)."""
        zpath = self.root / escape_path(path) / "@v" / f"{version}.zip"
        with zipfile.ZipFile(zpath) as z:
            entries = {n: z.read(n) for n in z.namelist()}
        entries[f"{path}@{version}/{name}"] = text.encode()
        with zipfile.ZipFile(zpath, "w", zipfile.ZIP_DEFLATED) as z:
            for n, data in entries.items():
                z.writestr(n, data)


def build_proxy(root: Path) -> GoProxy:
    """The fixture modules: clean, with a dependency, retracted, replaced, a command."""
    p = GoProxy(root)
    p.add(
        "example.com/greet",
        "v1.0.0",
        {"greet.go": 'package greet\n\nfunc Hi() string { return "hi" }\n'},
    )
    p.add(
        "example.com/greet",
        "v1.1.0",
        {"greet.go": 'package greet\n\nfunc Hi() string { return "hello" }\n'},
    )
    main = (
        'package main\n\nimport (\n\t"fmt"\n\n\t"example.com/greet"\n)\n\n'
        "func main() { fmt.Println(greet.Hi()) }\n"
    )
    p.add(
        "example.com/hello", "v1.0.0", {"main.go": main}, requires={"example.com/greet": "v1.0.0"}
    )
    p.add(
        "example.com/hello", "v1.1.0", {"main.go": main}, requires={"example.com/greet": "v1.1.0"}
    )
    # v1.0.1 is retracted by its author in the latest go.mod.
    p.add("example.com/oops", "v1.0.1", {"oops.go": "package oops\n"})
    p.add(
        "example.com/oops",
        "v1.0.2",
        {"oops.go": "package oops\n"},
        extra_mod="\nretract v1.0.1 // broken release\n",
    )
    p.add("example.com/pseudo", "v0.0.0-20240101000000-0123456789ab", {"p.go": "package pseudo\n"})
    return p
