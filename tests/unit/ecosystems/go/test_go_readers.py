"""The go.mod reader and the module-zip hasher that replaced three go processes per plan."""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest

from aegis.ecosystems.go import modcache, modfile

GOMOD = """// A module.
module example.com/app

go 1.18

require (
\texample.com/a v1.0.0 // indirect
\t"example.com/b" v1.2
)

require example.com/c v0.1.0-rc.1+build

replace example.com/a v1.0.0 => example.com/a v1.1.0
replace example.com/d => ../d
exclude example.com/c v0.0.1

retract (
\t// first
\t[v1.0.0, v1.1.0] // range

\tv1.2.0-rc.1
)
// own
retract v1.3.0
"""


def test_requirements_replacements_and_retractions_as_go_reads_them() -> None:
    mf = modfile.parse(GOMOD)
    assert mf.require == {"example.com/a": "v1.0.0", "example.com/b": "v1.2.0",
                          "example.com/c": "v0.1.0-rc.1"}  # fmt: skip
    assert mf.replace == [
        {"Old": {"Path": "example.com/a", "Version": "v1.0.0"},
         "New": {"Path": "example.com/a", "Version": "v1.1.0"}},
        {"Old": {"Path": "example.com/d"}, "New": {"Path": "../d"}},
    ]  # fmt: skip
    # go's comment rule: a blank line in a block is the next line's (empty) comment.
    assert [(r.low, r.high, r.rationale) for r in mf.retract] == [
        ("v1.0.0", "v1.1.0", "first\nrange"), ("v1.2.0-rc.1", "v1.2.0-rc.1", ""),
        ("v1.3.0", "v1.3.0", "own"),
    ]  # fmt: skip


@pytest.mark.parametrize(
    "text",
    [
        "require example.com/a v1.0.0 extra\n",
        "require example.com/a latest\n",
        'require "example.com/\\x61" v1.0.0\n',  # escapes: refused, not guessed
        "require example.com/a v1.0.0 /* c */\n",
        "require (\nexample.com/a v1.0.0\n",  # unterminated block
        "replace example.com/a => \n",
        "require 'example.com/a' v1.0.0\n",
        "require example.com/a\u0000 v1.0.0\n",
    ],
)
def test_files_outside_the_grammar_are_refused(text: str) -> None:
    with pytest.raises(modfile.ModFileError):
        modfile.parse(text)


def test_a_dependency_s_malformed_retraction_is_skipped_as_go_skips_it() -> None:
    assert modfile.parse("retract [v1.0.0, latest]\n", strict=False).retract == []
    with pytest.raises(modfile.ModFileError):
        modfile.parse("retract [v1.0.0, latest]\n")


def test_versions_are_canonical_and_ordered_as_semver() -> None:
    assert modfile.canonical("v1") == "v1.0.0"
    assert modfile.canonical("v1.2.3+meta") == "v1.2.3"
    assert modfile.canonical("v2.0.0+incompatible") == "v2.0.0+incompatible"
    assert modfile.canonical("v1.2.3-01") == ""
    assert modfile.canonical("1.2.3") == ""
    ordered = ["v1.0.0-alpha", "v1.0.0-alpha.1", "v1.0.0-alpha.beta", "v1.0.0-beta.2",
               "v1.0.0-beta.11", "v1.0.0-rc.1", "v1.0.0", "v1.10.0"]  # fmt: skip
    assert sorted(ordered[::2] + ordered[1::2], key=modfile.sort_key) == ordered
    assert modfile.compare("v1.0.0+x", "v1.0.0") == 0


def _zip(path: Path, names: list[str]) -> str:
    with zipfile.ZipFile(path, "w") as z:
        for n in names:
            z.writestr(n, f"content of {n}")
    return str(path)


def test_a_module_zip_is_hashed_strictly(tmp_path: Path) -> None:
    ok = _zip(tmp_path / "ok.zip", ["m.com/x@v1.0.0/go.mod", "m.com/x@v1.0.0/a.go"])
    assert modcache.zip_sum(
        ok,
        "m.com/x",
        "v1.0.0",
    ).startswith("h1:")  # type: ignore[union-attr]
    for i, names in enumerate([
        ["m.com/x@v1.0.0/go.mod", "other@v1.0.0/a.go"],  # outside the module's prefix
        ["m.com/x@v1.0.0/a\nb.go"],  # a newline would forge a line of the hashed summary
    ]):  # fmt: skip
        assert modcache.zip_sum(_zip(tmp_path / f"{i}.zip", names), "m.com/x", "v1.0.0") \
            == modcache.BAD  # fmt: skip
    (tmp_path / "bad.zip").write_bytes(b"PK not a zip")
    assert modcache.zip_sum(str(tmp_path / "bad.zip"), "m.com/x", "v1.0.0") == modcache.BAD
    (tmp_path / "link.zip").symlink_to(ok)
    assert modcache.zip_sum(str(tmp_path / "link.zip"), "m.com/x", "v1.0.0") is None
    assert modcache.zip_sum(str(tmp_path / "none.zip"), "m.com/x", "v1.0.0") is None


def _cache_files(cache: Path, text: str) -> tuple[str, str]:
    zpath = modcache.cached(str(cache), "m.com/x", "v1.0.0", "zip")
    Path(zpath).parent.mkdir(parents=True)
    _zip(Path(zpath), [f"m.com/x@v1.0.0/{text}.go"])
    mpath = modcache.cached(str(cache), "m.com/x", "v1.0.0", "mod")
    Path(mpath).write_text(f"module m.com/x // {text}\n")
    return zpath, mpath


def test_files_read_while_go_ran_count_only_while_they_are_the_files_read(tmp_path: Path) -> None:
    zpath, mpath = _cache_files(tmp_path, "first")
    early = modcache.Early()
    early.read_zip(zpath)
    early.read_mod(mpath)
    first = modcache.sums(str(tmp_path), "m.com/x", "v1.0.0")
    assert first is not None
    assert modcache.sums(str(tmp_path), "m.com/x", "v1.0.0", early) == first
    # The attack: files swapped in after they were read early. The sums are of what is
    # there now (what go checked against go.sum), never of what was read before.
    for p in (zpath, mpath):
        Path(p).rename(p + ".old")
    _zip(Path(zpath), ["m.com/x@v1.0.0/second.go"])
    Path(mpath).write_text("module m.com/x // second\n")
    now = modcache.sums(str(tmp_path), "m.com/x", "v1.0.0")
    assert now is not None
    assert now[0] != first[0]
    assert now[1] != first[1]
    assert modcache.sums(str(tmp_path), "m.com/x", "v1.0.0", early) == now


def test_go_s_progress_lines_are_taken_whole_and_bounded() -> None:
    from aegis.ecosystems.go.gotool import MAX_LINE, _lines

    seen: list[str] = []
    rest = _lines(bytearray(b"go: downloading a.com/x v1.0.0\ngo: downl"), seen.append)
    rest = _lines(rest + b"oading b.com/y v2.0.0\n", seen.append)
    assert seen == ["go: downloading a.com/x v1.0.0", "go: downloading b.com/y v2.0.0"]
    assert rest == b""
    # A line longer than MAX_LINE is dropped whole: its tail never passes for a line.
    seen.clear()
    rest = _lines(bytearray(b"x" * (MAX_LINE + 1)), seen.append)
    rest = _lines(rest + b"go: downloading evil.com/z v1.0.0\nok\n", seen.append)
    assert seen == ["ok"]


def test_only_plain_module_paths_are_read_early(tmp_path: Path) -> None:
    from aegis.ecosystems.go.prehash import Prehash

    reader = Prehash(str(tmp_path), "file:///nonexistent/")
    for line in ("go: downloading ../../etc v1.0.0", "go: downloading a.com/x v1.0.0 extra",
                 "go: finding a.com/x v1.0.0"):  # fmt: skip
        reader.line(line)
    assert reader.thread is None
    reader.line("go: downloading a.com/x v1.0.0")
    early = reader.finish()
    assert early.lists == {"a.com/x": None}
    assert early.files == {}
