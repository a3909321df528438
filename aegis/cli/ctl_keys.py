"""``aegisctl keygen``: create an Ed25519 key pair for one role.

The secret key file is created 0600 with O_EXCL (never overwritten), optionally
wrapped with a passphrase read from a file or one line of stdin (never from an
option value: argv is visible to every user). The public key hex is printed, and
written beside the secret as ``<name>.pub``.
"""

from __future__ import annotations

from pathlib import Path

import click

ROLES = ("signer", "approver", "review", "audit", "operator")


@click.command(
    "keygen",
    help=(
        "Create an Ed25519 key pair (secret file 0600, public key hex printed).\n\n"
        "Example:\n\n"
        "  aegisctl keygen --out /etc/aegis/private --role approver --name alice "
        "--passphrase-file ~/.aegis-pass\n\n"
        "Trust the public key by copying <name>.pub into /etc/aegis/keys/approvers/ "
        "(approvers; approvers/<role>/ also grants <role>) or /etc/aegis/keys/signers/ "
        "(signers)."
    ),
)
@click.option(
    "--out",
    "out_dir",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Directory for <name>.key and <name>.pub.",
)
@click.option("--role", type=click.Choice(ROLES), default="signer", show_default=True)
@click.option("--name", default=None, help="File name stem (default: the role).")
@click.option(
    "--passphrase-file",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Wrap the secret with the passphrase in this file.",
)
@click.option("--passphrase-stdin", is_flag=True, help="Read the passphrase from stdin.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def keygen_cmd(
    *,
    out_dir: Path,
    role: str,
    name: str | None,
    passphrase_file: Path | None,
    passphrase_stdin: bool,
    as_json: bool,
) -> None:
    """Create a key pair."""
    from aegis.cli.render import emit_json, print_path
    from aegis.sign.approvals import check_approver_id
    from aegis.sign.files import read_passphrase
    from aegis.sign.keys import write_keypair

    if name is not None:
        check_approver_id(name)
    # The environment variable is for unattended loading, not for creating keys.
    passphrase = read_passphrase(
        passphrase_file=passphrase_file, from_stdin=passphrase_stdin, env={}
    )
    path, pub = write_keypair(out_dir, role, passphrase, name=name)
    pub_path = path.with_suffix(".pub")
    if as_json:
        emit_json(
            {
                "role": role,
                "secret_key_path": str(path),
                "public_key_path": str(pub_path),
                "public_key_hex": pub,
                "passphrase_protected": passphrase is not None,
            }
        )
        return
    print_path("secret key", path)
    print_path("public key", pub_path)
    click.echo(f"public key hex: {pub}")
