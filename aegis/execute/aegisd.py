"""``aegisd``: the constrained executor's command line.

Usage::

    aegisd [--socket PATH] [--public-key-hex K ...] [--approval-public-key-hex K ...]
           [--config F]

The socket defaults to ``/run/aegis/aegisd.sock`` (relocated by ``AEGIS_HOME``), or
the socket systemd passes (``LISTEN_FDS``). Trusted keys come only from aegisd's
own root-owned configuration file (default ``<etc>/aegisd.toml``), the root-owned
key directories ``<etc>/keys/signers/*.pub`` and ``<etc>/keys/approvers/`` (with
``<role>/*.pub``), and these options (``ROLE:KEY`` grants an approver ``ROLE``),
never from a client. With no signer key aegisd starts and refuses every apply,
saying why.

Example:
    aegisd --public-key-hex 3b6a...e1 --approval-public-key-hex 8f0c...22
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from aegis.errors import EnvironmentFailure, InputError, TrustError

EXITS = (InputError, TrustError, EnvironmentFailure)
"""What aegisd's start can exit with (its --help names them): a bad configuration or key
(3), a key file that fails its ownership or trust checks (4), a socket or directory it
cannot use (7)."""


def main(argv: Sequence[str] | None = None) -> int:
    """Parse options and run the daemon until SIGTERM."""
    from aegis.config import load_config
    from aegis.errors import AegisError, daemon_epilog
    from aegis.execute.daemon import run_daemon
    from aegis.execute.settings import load_settings

    parser = argparse.ArgumentParser(
        prog="aegisd",
        description=__doc__.split("\n\n")[0].replace("``", "") if __doc__ else None,
        epilog=daemon_epilog(
            "aegisd",
            "example: aegisd --socket /run/aegis/aegisd.sock --public-key-hex <64 hex>",
            EXITS,
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--socket", type=Path, default=None, help="listening socket path")
    parser.add_argument(
        "--public-key-hex",
        action="append",
        default=[],
        help="trusted execution-plan signer public key (repeatable)",
    )
    parser.add_argument(
        "--approval-public-key-hex",
        action="append",
        default=[],
        help="trusted approver public key (repeatable; ROLE:KEY also trusts it for ROLE)",
    )
    parser.add_argument(
        "--config",
        type=Path,
        default=None,
        help="aegisd configuration file (default <etc>/aegisd.toml)",
    )
    args = parser.parse_args(argv)
    try:
        cfg = load_config()
        settings = load_settings(
            cfg,
            socket_path=args.socket,
            config_path=args.config,
            public_keys=tuple(args.public_key_hex),
            approval_keys=tuple(args.approval_public_key_hex),
        )
        return run_daemon(cfg, settings)
    except AegisError as e:
        sys.stderr.write(f"Error: {e.diagnostics()}\n")
        return e.exit_code


if __name__ == "__main__":
    raise SystemExit(main())
