"""The policy's ``[health]`` table, and the verification a plan gets from it and its intent.

```toml
[health]
within = "5m"                  # default deadline after the run (wall clock)

[[health.packages]]
match = ["nginx*"]             # fnmatch patterns over the packages the change installs
probes = ["unit:nginx.service", "http:http://127.0.0.1:80/"]
within = "2m"                  # optional: this entry's deadline
confirm = false                # true: also wait for 'aegisctl confirm <request>'
settle = "30s"                 # optional: probes still failing then restore at once
```

:func:`derive_verification` is pure and is run twice: by ``aegisctl sign`` (the record
is signed into the execution plan) and by aegisd on its own policy file (a signed plan
whose probes differ is refused, like a stricter policy decision).

Example:
    >>> v = derive_verification(policy, plan)   # nginx upgraded, the entry above
    >>> [p.text() for p in v.probes], v.within_s
    (['unit:nginx.service', 'http:http://127.0.0.1:80/'], 120)
"""

from __future__ import annotations

import fnmatch
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from aegis.errors import InputError
from aegis.health.spec import (
    DEFAULT_WITHIN_S,
    MAX_PROBES,
    MAX_WITHIN_S,
    Probe,
    Verification,
    check_verification,
    parse_probe,
)
from aegis.model import Action, Tool
from aegis.policy.fields import PolicyConfigError, _bool, _check_keys, _strs
from aegis.workflow.graph import parse_duration
from aegis.workflow.machine import WorkflowError

if TYPE_CHECKING:
    from aegis.model import Plan
    from aegis.policy.config import PolicyConfig

MAX_ENTRIES = 256
ENTRY_KEYS = {"match", "probes", "within", "confirm", "settle"}


@dataclass(frozen=True)
class HealthEntry:
    """One ``[[health.packages]]`` entry."""

    match: tuple[str, ...]
    probes: tuple[Probe, ...] = ()
    within_s: int | None = None
    confirm: bool = False
    settle_s: int | None = None


@dataclass(frozen=True)
class HealthPolicy:
    """The parsed ``[health]`` table."""

    within_s: int = DEFAULT_WITHIN_S
    packages: tuple[HealthEntry, ...] = ()


def _within(value: object, where: str) -> int:

    try:
        seconds = parse_duration(value, where)
    except WorkflowError as e:
        raise InputError(f"{where}: within must look like 30s, 5m or 2h") from e
    if seconds > MAX_WITHIN_S:
        raise InputError(f"{where}: within is at most 1d")
    return seconds


def parse_health(data: Mapping[str, Any]) -> HealthPolicy:
    """Parse ``[health]`` strictly.

    Raises:
        PolicyConfigError: unknown keys, a bad pattern list, a probe off loopback.
    """
    _check_keys(data, {"within", "packages"}, "health")
    raw = data.get("packages", [])
    if not isinstance(raw, list) or len(raw) > MAX_ENTRIES:
        raise PolicyConfigError("health.packages: expected an array of tables")
    entries = []
    try:
        within = _within(data["within"], "health") if "within" in data else DEFAULT_WITHIN_S
        for i, item in enumerate(raw):
            where = f"health.packages[{i}]"
            if not isinstance(item, dict):
                raise PolicyConfigError(f"{where}: expected a table")
            _check_keys(item, ENTRY_KEYS, where)
            match = _strs(item, "match", where + ".", ())
            if not match:
                raise PolicyConfigError(f"{where}: match names at least one package pattern")
            probes_raw = item.get("probes", [])
            if not isinstance(probes_raw, list) or len(probes_raw) > MAX_PROBES:
                raise PolicyConfigError(f"{where}.probes: a list of up to {MAX_PROBES} probes")
            entry = HealthEntry(
                match=match,
                probes=tuple(parse_probe(p) for p in probes_raw),
                within_s=_within(item["within"], where) if "within" in item else None,
                confirm=_bool(item, "confirm", where + ".", False),
                settle_s=_within(item["settle"], where) if "settle" in item else None,
            )
            if not entry.probes and not entry.confirm:
                raise PolicyConfigError(f"{where}: names no probe and asks no confirmation")
            entries.append(entry)
    except PolicyConfigError:
        raise
    except InputError as e:
        raise PolicyConfigError(e.message) from e
    return HealthPolicy(within_s=within, packages=tuple(entries))


def _installed_names(plan: Plan) -> list[str]:

    keep = (Action.INSTALL, Action.UPGRADE, Action.DOWNGRADE, Action.REINSTALL)
    return sorted({c.name for c in plan.changes if c.action in keep})


def derive_verification(config: PolicyConfig | None, plan: Plan) -> Verification | None:
    """The verification of ``plan``: matching policy entries plus the intent's probes.

    None when neither names a probe nor a confirmation. Only apt changes have a
    snapshot aegisd can restore by itself; other ecosystems get none (docs/ecosystems.md).
    Probes keep their order (policy entries in file order, then the request's), each once.
    """
    if plan.intent.tool is not Tool.APT or plan.failure is not None:
        return None
    health = config.health if config is not None else None
    names = _installed_names(plan)
    probes: list[Probe] = []
    within: list[int] = []
    settle: list[int] = []
    confirm = False
    for entry in health.packages if health is not None else ():
        if not any(fnmatch.fnmatchcase(n, pat) for n in names for pat in entry.match):
            continue
        probes.extend(entry.probes)
        confirm = confirm or entry.confirm
        within.append(entry.within_s or (health.within_s if health else DEFAULT_WITHIN_S))
        if entry.settle_s is not None:
            settle.append(entry.settle_s)
    probes.extend(plan.intent.probes)
    if not probes and not confirm:
        return None
    if not within:
        within.append(health.within_s if health is not None else DEFAULT_WITHIN_S)
    unique = tuple(dict.fromkeys(probes))
    deadline = min(within)
    # The strictest entry wins; a settle past the deadline would never act.
    settle_s = min(settle) if settle and min(settle) < deadline else None
    return check_verification(Verification(unique, deadline, confirm, settle_s))
