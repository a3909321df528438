"""Ansible module ``aegis.ops.aegis_plan``: plan one intent on this host, report its cohort."""

from __future__ import annotations

DOCUMENTATION = r"""
module: aegis_plan
short_description: Plan a package change with Aegis and report the host's cohort
description:
  - Runs C(aegis fleet plan --json -- INTENT) on the managed host: plan (read-only),
    review, policy decision and cohort hash.
  - Never changes a package; runs the same in check mode.
  - Fails the host when policy denies the change (Aegis exit 5) or planning fails.
options:
  intent:
    description: The intent as Aegis words, e.g. C([apt, install, nginx]).
    type: list
    elements: str
    required: true
  review:
    description: Ask the local model reviewer (false records a skipped review).
    type: bool
    default: true
  contents:
    description: Download and inspect the .deb files.
    type: bool
    default: true
  aegis_command:
    description: How to run C(aegis) on the host.
    type: list
    elements: str
    default: [aegis]
  aegisctl_command:
    description: Unused here; accepted so both modules take the same arguments.
    type: list
    elements: str
    default: [aegisctl]
  in_process:
    description: Plan in the module's own process when its interpreter has Aegis
      (else, or when false, run C(aegis_command)).
    type: bool
    default: true
"""

RETURN = r"""
request_id: {description: The change request created on the host., type: str}
decision: {description: Policy's decision., type: str}
cohort_hash: {description: The host's cohort hash (none when denied)., type: str}
plan_path: {description: The plan file on the host., type: str}
"""

from ansible.module_utils.basic import AnsibleModule  # noqa: E402

from ansible_collections.aegis.ops.plugins.module_utils.aegis_cli import (  # noqa: E402
    COMMON_ARGS,
    plan_here,
)


def main() -> None:
    """Plan and report."""
    module = AnsibleModule(argument_spec=dict(COMMON_ARGS), supports_check_mode=True)
    module.exit_json(changed=False, **plan_here(module))


if __name__ == "__main__":
    main()
