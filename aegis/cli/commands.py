"""The lazy command tables of ``aegis`` and ``aegisctl``.

Each engineer writes their commands in their own module ``aegis/cli/cmd_<area>.py``
(or ``ctl_<area>.py`` for aegisctl) and adds ONE line per command here:
``"name": "module.path:attribute"``. Modules are imported only when their command
runs (or when ``--help`` lists it), so keep heavy imports inside the command
functions: ``aegis --help`` must stay fast.

Example:
    "requests": "aegis.cli.cmd_workflow:requests_cmd",
"""

from __future__ import annotations

AEGIS_COMMANDS: dict[str, str] = {
    "requests": "aegis.cli.cmd_workflow:requests_cmd",
    "show": "aegis.cli.cmd_workflow:show_cmd",
    "resume": "aegis.cli.cmd_workflow:resume_cmd",
    "cancel": "aegis.cli.cmd_workflow:cancel_cmd",
    "workflow": "aegis.cli.cmd_workflow:workflow_group",
    "monitor": "aegis.cli.cmd_workflow:monitor_cmd",
    "policy": "aegis.cli.cmd_policy:policy_group",
    "vulndb": "aegis.cli.cmd_vulndb:vulndb_group",
    "audit": "aegis.cli.cmd_audit:audit_group",
    "doctor": "aegis.cli.cmd_doctor:doctor_cmd",
    "review": "aegis.cli.cmd_review:review_cmd",
    "apt": "aegis.cli.cmd_apt:apt_group",
    "pip": "aegis.cli.cmd_pip:pip_group",
    "npm": "aegis.cli.cmd_npm:npm_group",
    "docker": "aegis.cli.cmd_image:docker_group",
    "podman": "aegis.cli.cmd_image:podman_group",
    "container": "aegis.cli.cmd_image:container_group",
    "cargo": "aegis.cli.cmd_cargo:cargo_group",
    "go": "aegis.cli.cmd_go:go_group",
    "guard": "aegis.cli.cmd_guard:guard_group",
    "mcp": "aegis.cli.cmd_mcp:mcp_cmd",
    "drift": "aegis.cli.cmd_drift:drift_cmd",
    "unattended": "aegis.cli.cmd_unattended:unattended_group",
    "fleet": "aegis.cli.cmd_fleet:fleet_group",
}
"""``aegis`` subcommands: name -> "module:attribute" of a click command or group."""

AEGISCTL_COMMANDS: dict[str, str] = {
    "audit-path": "aegis.cli.cmd_audit:audit_path_cmd",
    "resume": "aegis.cli.cmd_workflow:resume_cmd",
    "requests": "aegis.cli.cmd_workflow:requests_cmd",
    "apply": "aegis.cli.ctl_exec:apply_cmd",
    "revoke": "aegis.cli.ctl_exec:revoke_cmd",
    "resolve": "aegis.cli.ctl_exec:resolve_cmd",
    "confirm": "aegis.cli.ctl_confirm:confirm_cmd",
    "recover": "aegis.cli.ctl_exec:recover_cmd",
    "rollback": "aegis.cli.ctl_exec:rollback_cmd",
    "keygen": "aegis.cli.ctl_keys:keygen_cmd",
    "approve": "aegis.cli.ctl_sign:approve_cmd",
    "sign": "aegis.cli.ctl_sign:sign_cmd",
    "verify": "aegis.cli.ctl_sign:verify_cmd",
    "snapshot": "aegis.cli.ctl_sign:snapshot_group",
}
"""``aegisctl`` subcommands: name -> "module:attribute" of a click command or group."""
