"""Who runs this process, by name: the ``requested_by`` of intents and the actor of history rows.

A bottom module (``os`` and ``pwd`` only): the planners stamp their intent with it before
their tool starts, and importing the store for it (:mod:`aegis.workflow.access`, which
re-exports it) would put the store's start-up before the tool's.
"""

from __future__ import annotations

import os
import pwd


def current_user() -> str:
    """Who runs this process, for history rows (``user`` or ``uid:N``)."""
    uid = os.getuid()
    try:
        name = pwd.getpwuid(uid).pw_name
    except KeyError:
        return f"uid:{uid}"
    return name
