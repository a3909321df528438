"""The policy's ``[automation]`` table: what ``aegis unattended`` may apply with no human.

```toml
[automation]
enabled = true                       # false (the default): every automatic plan waits
deny_packages = ["openssh-*"]        # fnmatch patterns never applied automatically
max_delta = 50                       # more packages than this: a human decides
allow_kernel = false                 # kernel packages ([packages] kernel) need a human
expect_unattended_upgrades = false   # out-of-band changes by unattended-upgrades: expected

[[automation.sources]]               # where automatic upgrades may come from
uri = "http://security.debian.org/debian-security"
suite = "bookworm-security"
signer_fingerprint = "<full fingerprint>"
component = "main"                   # optional: any component when left out
```

A source here is identified like a ``[[sources]]`` entry (URI, suite, signer, never
``Origin``); it must also be approved there, or policy denies its packages anyway.

Example:
    >>> parse_automation({"enabled": True}).enabled
    True
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from aegis.policy.fields import (
    PolicyConfigError,
    _bool,
    _check_keys,
    _int,
    _str,
    _strs,
    normalize_fingerprint,
    normalize_uri,
)

KEYS = {
    "enabled",
    "sources",
    "deny_packages",
    "max_delta",
    "allow_kernel",
    "expect_unattended_upgrades",
}
MAX_SOURCES = 64
SOURCE_KEYS = {"uri", "suite", "component", "signer_fingerprint"}


@dataclass(frozen=True)
class AutomationSource:
    """One source automatic upgrades may come from."""

    uri: str
    suite: str
    signer_fingerprint: str
    component: str | None = None


@dataclass(frozen=True)
class AutomationPolicy:
    """The parsed ``[automation]`` table."""

    enabled: bool = False
    sources: tuple[AutomationSource, ...] = ()
    deny_packages: tuple[str, ...] = ()
    max_delta: int = 50
    allow_kernel: bool = False
    expect_unattended_upgrades: bool = False


def parse_automation(data: Mapping[str, Any]) -> AutomationPolicy:
    """Parse the table strictly.

    Raises:
        PolicyConfigError: unknown keys, wrong types, a source without URI, suite or signer.
    """
    _check_keys(data, KEYS, "automation")
    raw = data.get("sources", [])
    if not isinstance(raw, list) or len(raw) > MAX_SOURCES:
        raise PolicyConfigError("automation.sources: expected an array of tables")
    sources = []
    for i, s in enumerate(raw):
        where = f"automation.sources[{i}]."
        if not isinstance(s, dict):
            raise PolicyConfigError(f"{where.rstrip('.')}: expected a table")
        _check_keys(s, SOURCE_KEYS, where.rstrip("."))
        fpr = normalize_fingerprint(_str(s, "signer_fingerprint", where))
        if not fpr or len(fpr) not in (40, 64):
            raise PolicyConfigError(f"{where}signer_fingerprint: expected a full fingerprint")
        sources.append(
            AutomationSource(
                uri=normalize_uri(_str(s, "uri", where)),
                suite=_str(s, "suite", where),
                signer_fingerprint=fpr,
                component=s.get("component") if isinstance(s.get("component"), str) else None,
            )
        )
    return AutomationPolicy(
        enabled=_bool(data, "enabled", "automation.", False),
        sources=tuple(sources),
        deny_packages=_strs(data, "deny_packages", "automation.", ()),
        max_delta=_int(data, "max_delta", "automation.", 50, lo=1),
        allow_kernel=_bool(data, "allow_kernel", "automation.", False),
        expect_unattended_upgrades=_bool(data, "expect_unattended_upgrades", "automation.", False),
    )
