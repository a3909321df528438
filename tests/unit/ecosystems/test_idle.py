"""The jobs a planner runs while its tool runs: each once, failures skipped, per thread."""

from __future__ import annotations

import threading

from aegis import codec
from aegis.ecosystems import idle
from aegis.model import Signal


def test_queued_jobs_run_once_and_a_failing_one_is_skipped() -> None:
    ran: list[str] = []

    def boom() -> None:
        raise RuntimeError("warm-up failed")

    idle.queue(lambda: ran.append("a"))
    idle.queue(boom)
    idle.queue(lambda: ran.append("b"))
    idle.run_queued()
    idle.run_queued()
    assert ran == ["a", "b"]


def test_clear_drops_what_no_planner_ran_and_threads_keep_their_own() -> None:
    ran: list[str] = []
    idle.queue(lambda: ran.append("main"))
    other = threading.Thread(target=idle.run_queued)
    other.start()
    other.join()
    assert ran == []  # another thread's planner never runs this thread's jobs
    idle.clear()
    idle.run_queued()
    assert ran == []


def test_prepared_converters_give_the_same_document() -> None:
    codec.prepare(Signal)
    s = Signal("npm.install-script", "node_modules/x", "postinstall: node x.js")
    assert codec.to_dict(s) == codec._to_dict_generic(s)
