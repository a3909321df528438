"""``aegis fleet plan``: the same intent planned on this host or on every host of a list.

The intent is any ecosystem's (``apt install nginx``, ``pip install NAME==VERSION`` with
``--where`` naming the venv on every host, ...): planning goes through the seam
(:func:`aegis.api_agent.plan_change`), which refuses what an ecosystem does not take.
On one host (no ``--hosts``; the Ansible module ``aegis_plan`` runs this on each host)
it walks the read-only part of the chain in one process: plan, review, policy, then the
cohort (:func:`aegis.fleet.service.host_cohort`), and reports the request id, decision
and cohort hash. With ``--hosts FILE`` (local hosts, each its own ``AEGIS_HOME``: test
beds, containers, chroots) it runs that per host as a subprocess with the host's
environment, ``--forks`` at a time, and groups the hosts into cohorts; each cohort
document is copied into this side's ``<state>/cohorts/`` so ``aegisctl approve
--cohort HASH`` finds it. Fleets of real servers use Ansible for the fan-out
(``ansible_collections/aegis/ops``).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aegis.analyze.stamps import this_host
from aegis.api_agent import check_plannable, decide_plan, plan_change, review_plan
from aegis.errors import InputError
from aegis.fleet.cohort import cohort_bytes, document_hash
from aegis.fleet.service import cohorts_dir, host_cohort
from aegis.sign.execution_plan import derive_targets
from aegis.toml_doc import load_toml
from aegis.workflow.files import write_atomic

if TYPE_CHECKING:
    from aegis.config import Config

MAX_HOSTS_FILE_BYTES = 4 * 1024 * 1024
"""A hosts file for some thousands of hosts fits many times over."""
HOST_TIMEOUT_S = 600
"""One host's planning (apt, content inspection) is given this long."""


def check_intent(
    intent: Sequence[str],
    *,
    where: str | None = None,
    registry: str | None = None,
    contents: bool = True,
    whole: bool = False,
) -> None:
    """Refuse an intent no host could plan, before any host is asked (exit 3).

    With ``whole``, also what the ecosystem's seam refuses without looking at a host
    (unknown ecosystem or verb, targets, options it does not take).

    Raises:
        InputError: the intent is malformed or not plannable.
    """
    if len(intent) < len(("ECOSYSTEM", "VERB")):
        raise InputError(
            "aegis fleet plan needs an intent: -- ECOSYSTEM VERB [PACKAGE...] "
            "(e.g. -- apt install nginx, or --where DIR -- pip install NAME==VERSION)"
        )
    if whole:
        check_plannable(
            intent[0],
            intent[1],
            tuple(intent[2:]),
            where=where,
            registry=registry,
            contents=contents,
        )


def plan_this_host(
    cfg: Config,
    intent: Sequence[str],
    *,
    review: bool,
    contents: bool,
    where: str | None = None,
    registry: str | None = None,
) -> dict[str, Any]:
    """Plan, review, decide and place this host's change in its cohort.

    ``intent`` is ``ECOSYSTEM VERB [PACKAGE...]`` for any ecosystem of the seam; ``where``
    and ``registry`` are its place and registry (pip's venv and index, npm's project and
    registry, ...), the same on every host. Planning goes through
    :func:`aegis.api_agent.plan_change`, which refuses what the ecosystem does not take.

    Raises:
        InputError: an intent Aegis cannot plan here (exit 3); AegisError: as each stage.
    """
    check_intent(intent)
    planned = plan_change(
        cfg,
        intent[0],
        intent[1],
        tuple(intent[2:]),
        contents=contents,
        where=where,
        registry=registry,
    )
    if planned.error is not None:
        raise planned.error
    plan_path = Path(planned.doc["plan_path"])
    review_plan(cfg, plan_path, no_review=not review)
    decided = decide_plan(cfg, plan_path)
    result = decided.extra["result"]
    host = this_host(cfg)
    plan = planned.extra["plan"]
    out: dict[str, Any] = {
        "hostname": host.hostname,
        "machine_id": host.machine_id,
        "request_id": planned.doc["request_id"],
        "plan_path": str(plan_path),
        "decision": result.decision.value,
        "rule_ids": sorted({f.rule_id for f in result.fired}),
        # What would run, one "action name=version" each; empty: nothing to change here.
        "targets": [f"{t.action.value} {t.name}={t.version}" for t in derive_targets(plan)],
        "cohort_hash": None,
        "cohort_path": None,
    }
    if result.decision.value != "deny":
        hc = host_cohort(cfg, planned.doc["request_id"])
        out["cohort_hash"] = hc.cohort_hash
        out["cohort_path"] = str(hc.path)
        out["cohort"] = hc.document
    return out


@dataclass(frozen=True)
class FleetHost:
    """One local host of a hosts file."""

    name: str
    env: dict[str, str]
    """``AEGIS_*`` variables for this host (``home`` becomes ``AEGIS_HOME``)."""


def read_hosts(path: Path) -> list[FleetHost]:
    """Parse a hosts file: ``[[hosts]]`` tables with ``name``, ``home`` and optional ``env``.

    Raises:
        InputError: unreadable, malformed, duplicate names, or a variable not ``AEGIS_*``.
    """
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise InputError(f"cannot read hosts file {path}: {e.strerror}") from e
    doc = load_toml(raw, what=f"hosts file {path}", max_bytes=MAX_HOSTS_FILE_BYTES)
    hosts: list[FleetHost] = []
    for i, h in enumerate(doc.get("hosts", [])):
        if not isinstance(h, dict) or set(h) - {"name", "home", "env"}:
            raise InputError(f"{path}: hosts[{i}] takes name, home and env")
        name, home, env = h.get("name"), h.get("home"), dict(h.get("env", {}))
        if not isinstance(name, str) or not name or not isinstance(home, str):
            raise InputError(f"{path}: hosts[{i}] needs a name and a home")
        if any(not k.startswith("AEGIS_") or not isinstance(v, str) for k, v in env.items()):
            raise InputError(f"{path}: hosts[{i}].env may set only AEGIS_* strings")
        hosts.append(FleetHost(name, {**env, "AEGIS_HOME": home}))
    if not hosts:
        raise InputError(f"{path} lists no [[hosts]]")
    if len({h.name for h in hosts}) != len(hosts):
        raise InputError(f"{path}: host names must be unique")
    return hosts


def _plan_one(host: FleetHost, flags: Sequence[str], intent: Sequence[str]) -> dict[str, Any]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AEGIS_")}
    env.update(host.env)
    argv = [sys.executable, "-m", "aegis", "fleet", "plan", "--json", *flags, "--", *intent]
    try:
        proc = subprocess.run(
            argv, env=env, capture_output=True, text=True, timeout=HOST_TIMEOUT_S, check=False
        )
    except subprocess.TimeoutExpired:
        return {"host": host.name, "ok": False, "exit": None, "error": "timed out"}
    try:
        doc = json.loads(proc.stdout) if proc.stdout.strip() else {}
    except json.JSONDecodeError:
        doc = {}
    ok = proc.returncode == 0 and bool(doc)
    error = None if ok else (proc.stderr.strip().splitlines() or ["no output"])[-1][:500]
    return {"host": host.name, "ok": ok, "exit": proc.returncode, "error": error, **doc}


def plan_fleet(
    cfg: Config,
    hosts: Sequence[FleetHost],
    intent: Sequence[str],
    *,
    forks: int,
    review: bool,
    contents: bool,
    where: str | None = None,
    registry: str | None = None,
) -> dict[str, Any]:
    """Plan ``intent`` on every host, ``forks`` at a time; group the hosts into cohorts."""
    check_intent(intent, where=where, registry=registry, contents=contents, whole=True)
    flags = [*([] if review else ["--no-review"]), *([] if contents else ["--no-contents"])]
    flags += [
        *(["--where", where] if where else []),
        *(["--registry", registry] if registry else []),
    ]
    with ThreadPoolExecutor(max_workers=max(1, forks)) as pool:
        rows = list(pool.map(lambda h: _plan_one(h, flags, intent), hosts))
    cohorts: dict[str, dict[str, Any]] = {}
    for row in rows:
        doc = row.pop("cohort", None)
        digest = row.get("cohort_hash")
        if not row["ok"] or not digest or not isinstance(doc, dict):
            continue
        if document_hash(doc) != digest:  # a host's answer is checked, not believed
            row.update(ok=False, error="cohort document does not hash to its cohort hash")
            continue
        entry = cohorts.setdefault(digest, {"cohort_hash": digest, "hosts": [], "document": doc})
        entry["hosts"].append(row["host"])
    for digest, entry in cohorts.items():
        path = cohorts_dir(cfg) / f"{digest}.cohort.json"
        write_atomic(path, cohort_bytes(entry["document"]), host_install=cfg.home is None)
        entry["path"] = str(path)
    return {"hosts": rows, "cohorts": sorted(cohorts.values(), key=lambda c: -len(c["hosts"]))}
