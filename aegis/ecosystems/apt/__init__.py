"""apt behind the ecosystem seam: Debian packages through apt and dpkg.

This package is the adapter (:class:`AptEcosystem`); apt's own code sits beside it:

- planning: :mod:`.plan` (``analyze_apt``, the orchestration), :mod:`.names` (the target
  grammar), :mod:`.apt_runner` and :mod:`.run` (how apt, gpgv and dpkg are called),
  :mod:`.parse` (apt's output), :mod:`.delta` (the package delta and its provenance),
  :mod:`.dpkg_status`, :mod:`.state` (the package-state hash), :mod:`.signals`,
  :mod:`.first_seen`, :mod:`.inspect` and :mod:`.cache_warm` (.deb contents and
  vulnerabilities), :mod:`.snapshot_debs` (rollback from aegisd's kept .debs);
- evidence (:mod:`.evidence`): sources, Release files and their signatures (gpgv/sqv),
  repositories, apt's configuration, reading and fetching a .deb, its contents;
- applying: :mod:`.argv` (the one argv derivation), :mod:`.dpkg` (dpkg's facts around a run),
  :mod:`.drift` (the status after a run against the signed delta);
- policy: :mod:`.rules` (apt's rules among the generic ones, in their old order),
  :mod:`.rules_trust` (targets, repositories, apt's configuration, a .deb against its
  index), :mod:`.rules_release` (a Release's freshness and history), :mod:`.rules_delta`
  (removals, downgrades, recovery, Essential packages, the allow rules).

What other ecosystems share stays below them: maintainer/install script analysis, the
vulnerability index and the Debian version order (``aegis/analyze``), the generic rules
(``aegis/policy``: analysis, command preview, provenance, evidence age, contents,
vulnerabilities).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from aegis.ecosystems.interface import Planning
from aegis.errors import InputError
from aegis.model import Intent, Plan, Tool

if TYPE_CHECKING:
    from aegis.config import Config
    from aegis.ecosystems.interface import InstalledState
    from aegis.policy.rules import Rule
    from aegis.sign.execution_plan import ExactTarget


class AptEcosystem:
    """Debian packages through apt and dpkg."""

    tool = Tool.APT
    planning = Planning(
        verbs={
            "install": True,
            "remove": True,
            "purge": True,
            "upgrade": False,
            "full-upgrade": False,
            "update": False,
        },
        contents=True,
    )

    def check_targets(self, targets: Sequence[str]) -> None:
        """Debian name grammar (:func:`aegis.ecosystems.apt.names.parse_targets`)."""
        from aegis.ecosystems.apt.names import parse_targets

        parse_targets(tuple(targets))

    def place(
        self, cfg: Config, targets: Sequence[str], where: str | None, registry: str | None
    ) -> tuple[str | None, str | None]:
        """Apt changes the host from its configured sources: neither is taken."""
        if where is not None or registry is not None:
            raise InputError(
                "apt changes land on this host from its configured sources: "
                "no place or registry is taken",
                hint="see the approved sources with 'aegis policy sources'",
            )
        return None, None

    def plan(
        self, cfg: Config, intent: Intent, now: datetime, *, inspect_contents: bool = True
    ) -> Plan:
        """:func:`aegis.ecosystems.apt.plan.analyze_apt`."""
        from aegis.ecosystems.apt.plan import analyze_apt

        result: Plan = analyze_apt(cfg, intent, now, inspect_contents=inspect_contents)
        return result

    def derive_argv(self, plan: Plan, cfg: Config) -> tuple[str, ...]:
        """:func:`aegis.ecosystems.apt.argv.derive_argv` (``dpkg_root``: throwaway roots)."""
        from aegis.ecosystems.apt.argv import derive_argv

        return derive_argv(plan, dpkg_root=cfg.dpkg_root)

    def exact_targets(self, plan: Plan) -> tuple[ExactTarget, ...]:
        """:func:`aegis.sign.execution_plan.derive_targets`."""
        from aegis.sign.execution_plan import derive_targets

        return derive_targets(plan)

    def preflight(self, cfg: Config, plan: Plan, env: Mapping[str, str]) -> str | None:
        """``dpkg --audit`` is checked by aegisd's apply itself (it names the recovery)."""
        return None

    def installed_state(self, cfg: Config, plan: Plan, env: Mapping[str, str]) -> InstalledState:
        """Dpkg's status (:func:`aegis.ecosystems.apt.dpkg.dpkg_status`)."""
        from aegis.ecosystems.apt.dpkg import dpkg_status

        return dpkg_status(cfg.dpkg_root, env)

    def drift(
        self, before: InstalledState, after: InstalledState, targets: Sequence[ExactTarget]
    ) -> list[str]:
        """:func:`aegis.ecosystems.apt.drift.compare_with_delta`."""
        from aegis.ecosystems.apt.drift import compare_with_delta

        b: Any = before
        a: Any = after
        return compare_with_delta(b, a, targets)

    def before_run(self, cfg: Config, plan: Plan) -> None:
        """Nothing to write: the argv names everything."""

    def rules(self, generic: tuple[Rule, ...]) -> tuple[Rule, ...]:
        """:func:`aegis.ecosystems.apt.rules.apt_rules`."""
        from aegis.ecosystems.apt.rules import apt_rules

        return apt_rules(generic)


APT = AptEcosystem()
