"""Work the planning caller queues for the time an ecosystem's tool runs.

npm and pip resolve in a subprocess while the planner's main thread only waits for it.
:func:`aegis.api_agent.plan_change` queues what recording the plan needs next (the store's
modules, the lifecycle graph, the plan document's converters); the planner runs the queue
right after starting its tool, in its own thread (so no two threads import Aegis modules
at once). Each job is an optimisation only: one that fails is skipped, and the same work
is done again, with its error reported, where it is needed. Nothing queued changes what
is planned or recorded (``scripts/bench --only npm``, ``--only pip``).
"""

from __future__ import annotations

import threading
from collections.abc import Callable

_local = threading.local()


def _jobs() -> list[Callable[[], object]]:
    jobs: list[Callable[[], object]] | None = getattr(_local, "jobs", None)
    if jobs is None:
        jobs = _local.jobs = []
    return jobs


def queue(job: Callable[[], object]) -> None:
    """Run ``job`` the next time a planner in this thread waits for its tool."""
    _jobs().append(job)


def clear() -> None:
    """Drop what was queued and not run (the planner did not wait for a tool)."""
    _jobs().clear()


def run_queued() -> None:
    """Run and drop every queued job; a failing job is skipped (see the module doc)."""
    jobs = _jobs()
    while jobs:
        job = jobs.pop(0)
        try:
            job()
        except Exception:  # noqa: S112 - an optimisation: the real work runs later anyway
            continue
