"""The ecosystem seam: what every package ecosystem gives the stages (docs/ecosystems.md).

An :class:`Ecosystem` sits just above the records of :mod:`aegis.model` and below every
stage. The analyzer plans through it, ``aegisctl sign`` and aegisd re-plan through the same
one and compare, the argv is derived by it, aegisd reads the installed state and drift
through it, and the policy engine evaluates the generic rules plus the ones it adds.

Nothing here imports a stage: the types stages pass in are named only for mypy.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from aegis.config import Config
    from aegis.model import Intent, Plan, Tool
    from aegis.policy.rules import Rule
    from aegis.sign.execution_plan import ExactTarget

InstalledState = Mapping[str, object]
"""What is installed where the change lands, keyed by package (the ecosystem's own shape)."""


@dataclass(frozen=True)
class Planning:
    """What ``aegis <tool> VERB ... --plan`` takes; the MCP server's plan tool takes the same.

    The agent API (:func:`aegis.api_agent.plan_change`) refuses anything outside it before
    :meth:`Ecosystem.place` and :meth:`Ecosystem.plan` run.
    """

    verbs: Mapping[str, bool]
    """Verb -> whether it takes targets (apt ``install``: yes; apt ``update``: no)."""
    where: str | None = None
    """The CLI option naming where the change lands, required, and what it names
    (``--venv DIR, an existing virtual environment``); None: the host itself (apt)."""
    registry: str | None = None
    """The CLI option naming the registry or index (pip ``--index-url``); None: not taken."""
    contents: bool = False
    """Whether the CLI takes ``--no-contents`` (skip downloading and inspecting artifacts)."""
    runs_idle: bool = False
    """Whether its planner runs :mod:`aegis.ecosystems.idle`'s queue once its tool started
    (npm, pip): the caller's background work then starts there, not beside the tool's start."""


class Ecosystem(Protocol):
    """One package ecosystem (apt, pip, ...), as every stage sees it."""

    tool: Tool
    planning: Planning
    """The verbs and options its planning takes (the CLI command and the MCP plan tool)."""

    def check_targets(self, targets: Sequence[str]) -> None:
        """Refuse targets outside the ecosystem's grammar before anything runs.

        Raises:
            InputError: a bad target (exit 3); no request is created.
        """

    def place(
        self, cfg: Config, targets: Sequence[str], where: str | None, registry: str | None
    ) -> tuple[str | None, str | None]:
        """The intent's ``location`` and ``registry`` for the options given, checked.

        ``targets`` are already checked; an ecosystem whose registry comes from the
        target itself (an image reference) reads it there.

        Raises:
            InputError: a place the change may not land, a missing required place, a bad
                registry URL (exit 3); no request is created.
        """

    def plan(
        self, cfg: Config, intent: Intent, now: datetime, *, inspect_contents: bool = True
    ) -> Plan:
        """Resolve the exact set the intent would change, read-only for the system."""

    def derive_argv(self, plan: Plan, cfg: Config) -> tuple[str, ...]:
        """The one argv that applies ``plan``; ``()`` when nothing may run. Pure."""

    def exact_targets(self, plan: Plan) -> tuple[ExactTarget, ...]:
        """The exact targets an execution plan binds."""

    def preflight(self, cfg: Config, plan: Plan, env: Mapping[str, str]) -> str | None:
        """Why the place the change lands cannot take it now (aegisd refuses), or None."""

    def installed_state(self, cfg: Config, plan: Plan, env: Mapping[str, str]) -> InstalledState:
        """What is installed where the change lands, before and after a run."""

    def drift(
        self, before: InstalledState, after: InstalledState, targets: Sequence[ExactTarget]
    ) -> list[str]:
        """Differences between what changed and the signed targets (audited as drift)."""

    def before_run(self, cfg: Config, plan: Plan) -> None:
        """Write what the argv needs, under aegisd's lock after ``started`` is recorded.

        npm: the signed ``package.json`` and ``package-lock.json``; nothing for apt or pip.
        """

    def rules(self, generic: tuple[Rule, ...]) -> tuple[Rule, ...]:
        """The rules the engine evaluates for this ecosystem's plans."""
