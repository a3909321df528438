"""The guard's managed block in a user's files, and the error ``aegis guard install`` exits with.

Below :mod:`aegis.guard.install` and :mod:`aegis.guard.profile`, which both use them.
"""

from __future__ import annotations

import re

from aegis.errors import EnvironmentFailure

BEGIN = "# >>> aegis guard >>>"


END = "# <<< aegis guard <<<"


_BLOCK = re.compile(rf"^{re.escape(BEGIN)}.*?^{re.escape(END)}[^\n]*\n?", re.M | re.S)


class GuardInstallError(EnvironmentFailure):
    """``aegis guard install`` cannot run here (not root, or a write failed): exit 7."""


def with_block(text: str, block: str | None, *, at_top: bool) -> str:
    """``text`` with its managed block replaced by ``block`` (or removed when None)."""
    if block is not None and _BLOCK.search(text):
        return _BLOCK.sub(lambda _: block, text, count=1)
    text = _BLOCK.sub("", text)
    if block is None:
        return text
    if at_top:
        return block + text
    return text + ("" if not text or text.endswith("\n") else "\n") + block
