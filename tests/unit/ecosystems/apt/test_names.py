"""Target grammar: checked before anything runs (issue 3 "Bad input")."""

from __future__ import annotations

import pytest

from aegis.ecosystems.apt.names import closest_names, parse_target, parse_targets
from aegis.errors import InputError


@pytest.mark.parametrize(
    ("text", "name", "version", "arch"),
    [
        ("nginx", "nginx", None, None),
        ("aegis-base=1.2", "aegis-base", "1.2", None),
        ("libc6:amd64=2.36-9+deb12u1", "libc6", "2.36-9+deb12u1", "amd64"),
        ("g++-12=1:12.2.0~rc1", "g++-12", "1:12.2.0~rc1", None),
        ("libstdc++6", "libstdc++6", None, None),
    ],
)
def test_valid_names(text: str, name: str, version: str | None, arch: str | None) -> None:
    t = parse_target(text)
    assert (t.kind, t.name, t.version, t.arch) == ("package", name, version, arch)
    assert t.apt_operand == text


@pytest.mark.parametrize(
    "text",
    [
        "",
        "-oAPT::Get::AllowUnauthenticated=true",
        "--allow-unauthenticated",
        "nginx;id",
        "nginx && curl x",
        "$(id)",
        "`id`",
        "nginx|sh",
        "ngin x",
        "nginx\n",
        "Nginx",
        "a",
        "nginx=",
        "nginx=abc",
        "\u0430egis-base",  # Cyrillic a
        "ｎｇｉｎｘ",  # fullwidth
        "nginx\u200b",  # zero-width space
        "nginx\u202e",  # bidi override
        "x" * 300,
        "./evil;rm.deb",
        "http://x/$(id).deb",
    ],
)
def test_refused(text: str) -> None:
    with pytest.raises(InputError):
        parse_target(text)


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        ("./x.deb", "direct-path"),
        ("/tmp/x.deb", "direct-path"),
        ("x.deb", "direct-path"),
        ("http://example.invalid/x.deb", "url"),
        ("https://example.invalid/pool/x_1.0_all.deb", "url"),
    ],
)
def test_direct_targets_recognised(text: str, kind: str) -> None:
    t = parse_target(text)
    assert t.kind == kind
    with pytest.raises(RuntimeError):
        _ = t.apt_operand


def test_duplicates_refused() -> None:
    with pytest.raises(InputError):
        parse_targets(["nginx", "nginx=1.0"])


def test_closest_names() -> None:
    assert closest_names("aegis-bsae", ["aegis-base", "aegis-tool", "zzz"])[0] == "aegis-base"
