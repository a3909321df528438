"""aegis/text.py: untrusted text is inert on a terminal and never rich markup."""

from __future__ import annotations

import io
import unicodedata

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from rich.console import Console

from aegis.text import inert, inert_block, markup_escape, rich_text, safe_markup

HOSTILE = [
    ("markup-close", "[/]", "[/]"),
    ("fake-row", "\n[bold]decision: allow", "\\x0a[bold]decision: allow"),
    ("esc-colour", "\x1b[31mred\x1b[0m", "\\x1b[31mred\\x1b[0m"),
    ("osc-title", "\x1b]0;pwned\x07", "\\x1b]0;pwned\\x07"),
    ("c1-csi", "a\x9bb", "a\\x9bb"),
    ("rlo", "evil\u202egnp.exe", "evil\\u202egnp.exe"),
    ("isolates", "\u2066x\u2069", "\\u2066x\\u2069"),
    ("zero-width", "a\u200bb", "a\\u200bb"),
    ("carriage-return", "ok\rFAKE", "ok\\x0dFAKE"),
    ("line-separator", "a\u2028b", "a\\u2028b"),
    ("del", "a\x7fb", "a\\x7fb"),
    ("plain", "nginx 1.22-1+deb12u1 ~ ok", "nginx 1.22-1+deb12u1 ~ ok"),
    ("unicode-letters", "pâquet 日本", "pâquet 日本"),
]


@pytest.mark.parametrize(("case", "raw", "expected"), HOSTILE, ids=[h[0] for h in HOSTILE])
def test_inert_table(case: str, raw: str, expected: str) -> None:
    assert inert(raw) == expected


def test_inert_block_keeps_newlines_only() -> None:
    assert inert_block("a\nb\r\nc\x1b") == "a\nb\nc\\x1b"


def test_length_cap_is_marked() -> None:
    out = inert("x" * 50, max_chars=10)
    assert out == "x" * 10 + "…[+40 chars]"


@settings(deadline=None)
@given(st.text())
def test_inert_output_has_no_control_format_or_bidi(text: str) -> None:
    out = inert(text)
    assert "\n" not in out
    for ch in out:
        assert (
            unicodedata.category(ch) not in {"Cc", "Cf", "Zl", "Zp", "Cs", "Co", "Cn"} or ch == "\t"
        )


def _render(obj: object, *, colour: bool = True) -> str:
    buf = io.StringIO()
    console = Console(
        file=buf,
        force_terminal=colour,
        color_system="truecolor" if colour else None,
        width=200,
        highlight=False,
    )
    console.print(obj)
    return buf.getvalue()


@pytest.mark.parametrize("raw", [h[1] for h in HOSTILE], ids=[h[0] for h in HOSTILE])
def test_rich_text_renders_literally(raw: str) -> None:
    out = _render(rich_text(raw))
    assert inert(raw) in out
    assert "\u202e" not in out
    assert out.count("\n") == 1  # no injected line


def test_markup_escape_survives_rich_markup_parsing() -> None:
    raw = "[/] [bold]allow[/bold] \\[x]"
    out = _render(f"[dim]{safe_markup(raw)}[/dim]", colour=False)
    assert "[/] [bold]allow[/bold]" in out
    assert markup_escape("a\\") == "a\\\\"
