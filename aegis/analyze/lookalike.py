"""Package names that imitate another: ``name.lookalike`` evidence. Pure.

A name an approved repository really serves can still be a trap: ``openssI`` next to
``openssl``, ``nginx-official`` next to ``nginx``. Each package the plan newly
installs is compared with the reference names (what is installed here, and the names
installed packages depend on: the names this host already trusts and that a lookalike
would imitate). A finding is one of:

- ``confusable``: equal after folding look-alike characters (``0``/``o``, ``1``/``l``/
  ``I``, ``rn``/``m``, ``vv``/``w``, ``_``/``.``/``-``) but not equal as written;
- ``edit``: one insertion, deletion, substitution or swap of adjacent letters away from
  a reference of five characters or more. A digit changed for a digit is Debian's own
  naming (``libssl1.1``/``libssl3``, ``gcc-12``/``gcc-13``) and does not count;
- ``affix``: a reference with a lure word added (``nginx-official``, ``secure-openssh``).

Example:
    >>> [s.detail for s in lookalike_signals(["nginx-official"], {"nginx"})]
    ['nginx-official looks like nginx (affix)']
"""

from __future__ import annotations

from collections.abc import Iterable, Set
from functools import lru_cache

from aegis.model import Signal

MIN_EDIT_LEN = 5
"""Shorter names are too dense in Debian's namespace for an edit to mean anything."""
MAX_REFERENCES = 20_000
"""Bound on the reference set (a host has a few thousand packages)."""

_FOLD = (("rn", "m"), ("vv", "w"), ("0", "o"), ("1", "l"), ("i", "l"), ("_", "-"), (".", "-"))
_LURES = frozenset(
    {
        "official", "secure", "security", "fixed", "patched", "update", "updated", "latest",
        "new", "real", "original", "pro", "plus", "free", "safe", "verified", "legit",
    }
)  # fmt: skip


@lru_cache(maxsize=8192)  # the reference sets repeat plan after plan (aegisd, the bench)
def _fold(name: str) -> str:
    out = name.lower()
    for a, b in _FOLD:
        out = out.replace(a, b)
    return out


def _one_edit(a: str, b: str) -> bool:
    """True when ``a`` and ``b`` differ by one edit that is not digit-for-digit."""
    if a == b or abs(len(a) - len(b)) > 1:
        return False
    if len(a) == len(b):
        diff = [i for i in range(len(a)) if a[i] != b[i]]
        if len(diff) == 1:
            i = diff[0]
            return not (a[i].isdigit() and b[i].isdigit())
        swap = 2  # two adjacent positions, exchanged
        return (
            len(diff) == swap
            and diff[1] == diff[0] + 1
            and a[diff[0]] == b[diff[1]]
            and (a[diff[1]] == b[diff[0]])
        )
    short, long_ = (a, b) if len(a) < len(b) else (b, a)
    i = 0
    while i < len(short) and short[i] == long_[i]:
        i += 1
    if short[i:] != long_[i + 1 :]:
        return False
    return not long_[i].isdigit()  # libfoo1 next to libfoo is a soname, not a trick


def _affix(name: str, ref: str) -> bool:
    for sep in ("-", ""):
        if name.startswith(ref + sep) and name[len(ref + sep) :] in _LURES:
            return True
        if name.endswith(sep + ref) and name[: -len(sep + ref)] in _LURES:
            return True
    return False


def lookalike(name: str, references: Set[str]) -> tuple[str, str] | None:
    """(reference imitated, kind) for ``name``, or None. ``name`` itself never counts."""
    if name in references:
        return None
    ordered = sorted(references)  # once: the first match in name order is reported
    folded = _fold(name)
    for ref in ordered:
        if _fold(ref) == folded:
            return ref, "confusable"
    for ref in ordered:
        if ref in name and _affix(name, ref):  # an affix holds its reference: a C-speed test first
            return ref, "affix"
    if len(name) >= MIN_EDIT_LEN:
        for ref in ordered:
            near = len(ref) >= MIN_EDIT_LEN and abs(len(ref) - len(name)) <= 1
            if near and _one_edit(name, ref):
                return ref, "edit"
    return None


def lookalike_signals(new_names: Iterable[str], references: Iterable[str]) -> list[Signal]:
    """One ``name.lookalike`` signal per newly installed name that imitates a reference."""
    refs = frozenset(list(references)[:MAX_REFERENCES])
    out: list[Signal] = []
    for name in sorted(set(new_names)):
        found = lookalike(name, refs)
        if found is not None:
            ref, kind = found
            out.append(Signal("name.lookalike", name, f"{name} looks like {ref} ({kind})"))
    return out
