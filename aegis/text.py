r"""Making untrusted text inert before it reaches a terminal or a log line.

Package descriptions, maintainer fields, script excerpts, model output and even
request fields read back from the store are written by people we do not trust.
Before they are shown they pass through this module:

- C0 and C1 control characters (ESC, CR, BEL, ...) and DEL are replaced by a
  visible ``\xNN`` escape, so no terminal sequence survives;
- bidi controls (U+202A-U+202E, U+2066-U+2069, U+200E/F, U+061C) and every other
  Unicode "format" (Cf), separator (Zl/Zp) or surrogate character become ``\uNNNN``;
- the result is never interpreted as rich markup: render it through a
  ``rich.text.Text`` (see :func:`rich_text`) or :func:`markup_escape` it;
- length is capped; the cut is marked.

Pure: no I/O.

Example:
    >>> inert("ok\x1b[31m red \u202e")
    'ok\\x1b[31m red \\u202e'
"""

from __future__ import annotations

import re
import unicodedata

TYPE_CHECKING = False  # not typing's: the guard hook imports this module, and starts fast

if TYPE_CHECKING:
    from rich.text import Text

DEFAULT_MAX_CHARS = 2000
"""Default cap for one untrusted field on screen."""

BLOCK_MAX_CHARS = 20000
"""Cap for multi-line blocks (error diagnostics, excerpts)."""

_UNSAFE_CATEGORIES = frozenset({"Cc", "Cf", "Zl", "Zp", "Cs", "Co", "Cn"})

_MAX_X_ESCAPE = 0xFF
r"""Highest code point written as ``\xNN``."""
_MAX_U_ESCAPE = 0xFFFF
r"""Highest code point written as ``\uNNNN``; above it ``\UNNNNNNNN``."""


def _escape_char(ch: str) -> str:
    code = ord(ch)
    if code <= _MAX_X_ESCAPE:
        return f"\\x{code:02x}"
    if code <= _MAX_U_ESCAPE:
        return f"\\u{code:04x}"
    return f"\\U{code:08x}"


def _is_unsafe(ch: str, keep_newlines: bool) -> bool:
    if ch == "\t":
        return False
    if ch == "\n":
        return not keep_newlines
    if " " <= ch <= "~":  # printable ASCII: the fast path
        return False
    return unicodedata.category(ch) in _UNSAFE_CATEGORIES


def _cap(text: str, max_chars: int) -> str:
    if len(text) <= max_chars:
        return text
    return f"{text[:max_chars]}…[+{len(text) - max_chars} chars]"


def inert(text: object, *, max_chars: int = DEFAULT_MAX_CHARS) -> str:
    """Return ``text`` as one safe line: controls, newlines and bidi made visible, capped.

    Args:
        text: anything; non-strings are converted with ``str``.
        max_chars: cap on the input characters kept.

    Returns:
        A string with no control, format or bidi character and no newline.
    """
    raw = _cap(text if isinstance(text, str) else str(text), max_chars)
    return "".join(_escape_char(c) if _is_unsafe(c, False) else c for c in raw)


def inert_block(text: object, *, max_chars: int = BLOCK_MAX_CHARS) -> str:
    """Like :func:`inert` but keeps newlines (for multi-line messages and excerpts)."""
    raw = _cap(text if isinstance(text, str) else str(text), max_chars)
    raw = raw.replace("\r\n", "\n")
    return "".join(_escape_char(c) if _is_unsafe(c, True) else c for c in raw)


_MARKUP_RE = re.compile(r"(\\*)(\[[a-zA-Z#/@].*?\])")


def markup_escape(text: str) -> str:
    """Escape rich markup in already-inert ``text`` (same rule as ``rich.markup.escape``)."""

    def _sub(match: re.Match[str]) -> str:
        backslashes, tag = match.groups()
        return f"{backslashes}{backslashes}\\{tag}"

    escaped = _MARKUP_RE.sub(_sub, text)
    if escaped.endswith("\\") and not escaped.endswith("\\\\"):
        escaped += "\\"
    return escaped


def safe_markup(text: object, *, max_chars: int = DEFAULT_MAX_CHARS) -> str:
    """Inert, markup-escaped ``text`` to embed in a rich markup string."""
    return markup_escape(inert(text, max_chars=max_chars))


def rich_text(text: object, *, max_chars: int = DEFAULT_MAX_CHARS, style: str = "") -> Text:
    """Inert ``text`` as a ``rich.text.Text``: rich never parses it as markup."""
    from rich.text import Text

    return Text(inert(text, max_chars=max_chars), style=style)
