"""Go's pure parts: the target and proxy grammars, pinned versions, environment signals."""

from __future__ import annotations

import pytest

from aegis.ecosystems.go.gotool import env_signals
from aegis.ecosystems.go.names import (
    binary_name,
    check_proxy_url,
    check_targets,
    escape_path,
    is_exact,
    is_pseudo,
    split_target,
)
from aegis.errors import InputError


@pytest.mark.parametrize(
    ("target", "path", "query"),
    [
        ("example.com/mod", "example.com/mod", ""),
        ("golang.org/x/tools/cmd/stringer@v0.20.0", "golang.org/x/tools/cmd/stringer", "v0.20.0"),
        ("github.com/Foo/Bar@latest", "github.com/Foo/Bar", "latest"),
        ("example.com/m/v2@v2.1.0-rc.1", "example.com/m/v2", "v2.1.0-rc.1"),
        ("example.com/m@main", "example.com/m", "main"),
        ("example.com/m@0123abcd", "example.com/m", "0123abcd"),
    ],
)  # fmt: skip
def test_targets_in_the_grammar(target: str, path: str, query: str) -> None:
    assert split_target(target) == (path, query)


@pytest.mark.parametrize(
    "bad",
    ["-modfile=../x.mod", "example.com/a b", "example.com/x@v1|sh", "example.com/x@$(id)",
     "example.com/\u0445", "exam_ple.com/x", ".example.com/x", "example.com/x/..",
     "example.com/x@-v1", "example.com/x@@v1"],
)  # fmt: skip
def test_targets_outside_the_grammar(bad: str) -> None:
    with pytest.raises(InputError):
        split_target(bad)


def test_go_install_takes_one_versioned_package() -> None:
    assert check_targets(["example.com/x@v1.0.0"], install=True) == ("example.com/x",)
    with pytest.raises(InputError, match="needs a version"):
        check_targets(["example.com/x"], install=True)
    with pytest.raises(InputError, match="one package"):
        check_targets(["example.com/x@v1.0.0", "example.com/y@v1.0.0"], install=True)
    with pytest.raises(InputError, match="twice"):
        check_targets(["example.com/x@v1.0.0", "example.com/x@latest"])


@pytest.mark.parametrize(
    ("version", "exact", "pseudo"),
    [
        ("v1.2.3", True, False),
        ("v1.2.3-rc.1", True, False),
        ("v0.0.0-20240101000000-0123456789ab", True, True),
        ("v1.2.4-0.20240101000000-0123456789ab", True, True),
        ("v1.2.3-pre.0.20240101000000-0123456789ab", True, True),
        ("latest", False, False),
        ("v1", False, False),
        ("v1.2", False, False),
        ("master", False, False),
    ],
)
def test_exact_and_pseudo_versions(version: str, exact: bool, pseudo: bool) -> None:
    assert (is_exact(version), is_pseudo(version)) == (exact, pseudo)


@pytest.mark.parametrize(
    ("url", "want"),
    [
        ("https://proxy.golang.org", "https://proxy.golang.org/"),
        ("file:///srv/goproxy", "file:///srv/goproxy/"),
        ("http://127.0.0.1:3000/", "http://127.0.0.1:3000/"),
    ],
)
def test_proxy_urls(url: str, want: str) -> None:
    assert check_proxy_url(url) == want


@pytest.mark.parametrize(
    "bad",
    ["https://proxy.golang.org,direct", "https://a|https://b", "direct", "off",
     "https://user:pw@proxy.example/", "https://proxy.example/?x=1", "file://host/srv",
     "file:relative", "file:///srv/../etc", "ftp://proxy.example/", "https://pr\u043exy.example/",
     "https://proxy.example/ x"],
)  # fmt: skip
def test_bad_proxy_urls(bad: str) -> None:
    with pytest.raises(InputError):
        check_proxy_url(bad)


@pytest.mark.parametrize(
    ("goenv", "proxy", "signals"),
    [
        ({"GOSUMDB": "sum.golang.org"}, "https://proxy.golang.org/", []),
        ({"GOSUMDB": "off"}, "file:///srv/p/", ["go.sumdb-off"]),
        ({"GOSUMDB": "off"}, "https://proxy.golang.org/", ["go.sumdb-off"]),
        ({"GONOSUMDB": "example.com"}, "https://p/", ["go.sumdb-bypassed"]),
        ({"GOPRIVATE": "*.corp"}, "https://p/", ["go.sumdb-bypassed"]),
        ({"GONOSUMCHECK": "1"}, "https://p/", ["go.sumdb-bypassed"]),
        ({"GOINSECURE": "example.com"}, "https://p/", ["go.insecure"]),
        ({"GOFLAGS": "-mod=mod -insecure"}, "https://p/", ["go.goflags", "go.goflags"]),
        ({"GOFLAGS": "-mod=readonly -trimpath"}, "https://p/", []),
    ],
)
def test_environment_signals(goenv: dict[str, str], proxy: str, signals: list[str]) -> None:
    assert [name for name, _ in env_signals(goenv, proxy)] == signals


def test_binary_names_and_escaped_paths() -> None:
    assert binary_name("golang.org/x/tools/cmd/stringer") == "stringer"
    assert binary_name("example.com/tool/v2") == "tool"
    assert escape_path("github.com/BurntSushi/toml") == "github.com/!burnt!sushi/toml"
