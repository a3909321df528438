"""``aegisctl confirm``: an operator keeps a change policy asked a human to confirm.

After the run aegisd holds such a change in ``verifying`` until its health probes pass
and this confirmation arrives; without it by the signed deadline aegisd restores the
snapshot (aegis/execute/verifier.py). Only root and members of ``aegis-apply`` may
confirm (aegisd checks the caller's credentials on its socket); the confirmation is
audited with the caller's uid.
"""

from __future__ import annotations

from pathlib import Path

import click


@click.command("confirm")
@click.argument("request_id")
@click.option(
    "--socket",
    "socket_path",
    type=click.Path(path_type=Path),
    default=None,
    help="aegisd socket (default /run/aegis/aegisd.sock).",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON for agents.")
def confirm_cmd(request_id: str, socket_path: Path | None, as_json: bool) -> None:
    """Confirm a verifying change so aegisd keeps it (before its deadline).

    Exits 0 once aegisd recorded the confirmation (the change is kept as soon as its
    probes pass too); 6 when the request is not verifying, asks no confirmation, or its
    deadline passed; 4 when you may not submit to aegisd; 7 when aegisd is unreachable.

    \b
    Example:
      aegisctl confirm r-1a2b3c
    """
    from aegis.cli import render
    from aegis.config import load_config
    from aegis.execute.verify_client import confirm

    state, v = confirm(load_config(), request_id, socket=socket_path)
    if as_json:
        render.emit_json({"request_id": request_id, "state": state, "verification": v})
        return
    render.print_fields(
        [
            ("request", request_id),
            ("state", state),
            ("verification", str(v.get("state", "-"))),
            ("deadline", str(v.get("deadline") or "-")),
        ]
    )
