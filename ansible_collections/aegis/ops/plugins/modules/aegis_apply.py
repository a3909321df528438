"""Ansible module ``aegis.ops.aegis_apply``: plan, sign and apply one change through aegisd."""

from __future__ import annotations

DOCUMENTATION = r"""
module: aegis_apply
short_description: Apply a package change on this host through Aegis's whole chain
description:
  - Plans the intent on the host (C(aegis fleet plan)), signs this host's own execution
    plan with C(aegisctl sign) (counting the given cohort approvals only if this host's own
    delta is that cohort, else refused:cohort, exit 4), submits it to aegisd with
    C(aegisctl apply) and reads the host's signed audit head (C(aegis audit checkpoint)).
  - In check mode it only plans (the same as aegis_plan) and reports changed when the
    plan has a delta. A host whose plan has nothing to change is ok and unchanged.
  - Fails the host on any refusal or failed run, with the request id, state and refusal.
options:
  intent: {description: "The intent as Aegis words, e.g. C([apt, install, nginx]).",
           type: list, elements: str, required: true}
  review: {description: Ask the local model reviewer., type: bool, default: true}
  contents: {description: Download and inspect the .deb files., type: bool, default: true}
  aegis_command: {description: How to run aegis., type: list, elements: str, default: [aegis]}
  aegisctl_command: {description: How to run aegisctl., type: list, elements: str,
                     default: [aegisctl]}
  in_process: {description: "Plan in the module's process when it has Aegis.", type: bool,
               default: true}
  signer_key: {description: The signer's key file on the host., type: path}
  signer: {description: The signer id., type: str}
  passphrase_file: {description: File holding the key's passphrase., type: path}
  cohort_approvals: {description: Cohort approval files on the host., type: list,
                     elements: path, default: []}
  socket: {description: aegisd's socket (default /run/aegis/aegisd.sock)., type: path}
"""

RETURN = r"""
request_id: {description: The change request on the host., type: str}
state: {description: "The request's state afterwards (audited when all went well).", type: str}
execution_id: {description: The one-time id of the execution plan., type: str}
cohort_hash: {description: The host's cohort hash., type: str}
audit_head: {description: "The host's signed audit head: seq and hash.", type: dict}
refusal: {description: "aegisd's or the signer's named refusal, when refused.", type: str}
"""

import re  # noqa: E402
from typing import Any  # noqa: E402

from ansible.module_utils.basic import AnsibleModule  # noqa: E402

from ansible_collections.aegis.ops.plugins.module_utils.aegis_cli import (  # noqa: E402
    COMMON_ARGS,
    plan_here,
    run_json,
)

_REFUSAL = re.compile(r"refused:[a-z-]+")


def _audit_head(module: Any) -> dict[str, Any] | None:
    rc, doc, _ = run_json(
        module, [*module.params["aegis_command"], "audit", "checkpoint", "--json"]
    )
    if rc != 0 or not isinstance(doc, dict) or not isinstance(doc.get("checkpoint"), dict):
        return None
    cp = doc["checkpoint"]
    return {"seq": cp.get("seq"), "hash": cp.get("head_hash"), "host": cp.get("host")}


def _sign(module: Any, report: dict[str, Any]) -> dict[str, Any]:
    p = module.params
    argv = [*p["aegisctl_command"], "sign", "--plan", report["plan_path"], "--json"]
    argv += ["--key", p["signer_key"], "--signer", p["signer"]]
    if p["passphrase_file"]:
        argv += ["--passphrase-file", p["passphrase_file"]]
    for path in p["cohort_approvals"]:
        argv += ["--cohort-approval", path]
    rc, doc, err = run_json(module, argv)
    if rc != 0 or not isinstance(doc, dict):
        found = _REFUSAL.search(err)
        module.fail_json(
            msg=f"aegisctl sign refused (exit {rc}): {err[-500:]}",
            rc=rc,
            state="policy",
            refusal=found.group(0) if found else None,
            audit_head=_audit_head(module),
            **report,
        )
    return doc


def main() -> None:
    """Plan, sign, apply, report."""
    spec = dict(COMMON_ARGS)
    spec.update(
        signer_key={"type": "path"},
        signer={"type": "str"},
        passphrase_file={"type": "path", "no_log": False},
        cohort_approvals={"type": "list", "elements": "path", "default": []},
        socket={"type": "path"},
    )
    module = AnsibleModule(argument_spec=spec, supports_check_mode=True)
    report = plan_here(module)
    if not report.get("targets") and module.params["intent"][1:2] != ["update"]:
        # Already as the intent asks: nothing to sign or apply (the planned request
        # expires unsigned like any other).
        module.exit_json(changed=False, state="policy", audit_head=_audit_head(module), **report)
    if module.check_mode:
        module.exit_json(changed=True, state="policy", **report)
    p = module.params
    if not p["signer_key"] or not p["signer"]:
        module.fail_json(msg="signer_key and signer are required outside check mode", **report)
    signed = _sign(module, report)
    argv = [*p["aegisctl_command"], "apply", "--execution-plan", signed["path"], "--json"]
    argv += ["--public-key-hex", signed["signer_public_key_hex"]]
    if p["socket"]:
        argv += ["--socket", p["socket"]]
    rc, doc, err = run_json(module, argv)
    answer = (doc or {}).get("answer") or {} if isinstance(doc, dict) else {}
    result = {
        **report,
        "execution_id": signed["execution_id"],
        "state": (doc or {}).get("request_state") if isinstance(doc, dict) else None,
        "refusal": answer.get("refusal"),
        "audit_head": _audit_head(module),
    }
    if rc != 0:
        module.fail_json(msg=f"aegisctl apply failed (exit {rc}): {err[-500:]}", rc=rc, **result)
    module.exit_json(changed=True, **result)


if __name__ == "__main__":
    main()
