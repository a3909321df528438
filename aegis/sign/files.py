"""File edges of the signing stage: trusted key directories, approval files, passphrases.

Layout (under ``cfg.keys_dir``, root-owned ``/etc/aegis/keys`` on a host):

- ``approvers/*.pub``: trusted approver public keys (64 hex characters each);
- ``signers/*.pub``: trusted execution-plan signer public keys.

Approvals live in ``approvals/<plan_id>.<approver-id>.approval.json`` under the
state directory and are also attached to the request as ``approval`` artifacts.
Both places are writable by the ``aegis`` group, so everything read back here
is parsed strictly and only counts after :func:`aegis.sign.approvals.verify_approvals`.

Example:
    >>> trusted_keys(cfg.keys_dir / "approvers")
    frozenset({'8f0c...'})
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Iterable
from pathlib import Path

from aegis.bounds import HEX64_RE as _HEX64
from aegis.errors import InputError
from aegis.safe_read import read_capped
from aegis.sign.approvals import (
    MAX_APPROVAL_BYTES,
    Approval,
    check_approver_id,
    parse_approval,
)

MAX_PUB_FILE_BYTES = 4096
MAX_APPROVAL_FILES = 256
MAX_PASSPHRASE_BYTES = 4096

APPROVERS_DIR = "approvers"
SIGNERS_DIR = "signers"


def read_public_key(path: Path) -> str:
    """Read one ``.pub`` file (64 hex characters, optional newline).

    Raises:
        InputError: unreadable or not a public key.
    """
    try:
        with path.open("rb") as f:
            raw = f.read(MAX_PUB_FILE_BYTES + 1)
    except OSError as e:
        raise InputError(f"cannot read public key {path}: {e.strerror}") from e
    text = raw.decode("ascii", "replace").strip().lower()
    if len(raw) > MAX_PUB_FILE_BYTES or not _HEX64.match(text):
        raise InputError(f"{path} is not a public key (64 hex characters)")
    return text


def trusted_keys(directory: Path) -> frozenset[str]:
    """All public keys in ``directory/*.pub``; empty when the directory does not exist.

    A malformed file is refused rather than skipped: an operator who put a key there
    meant it, and silently trusting fewer keys hides the mistake.

    Raises:
        InputError: a ``.pub`` file is malformed.
    """
    if not directory.is_dir():
        return frozenset()
    return frozenset(read_public_key(p) for p in sorted(directory.glob("*.pub")))


def trusted_approver_grants(directory: Path) -> dict[str, frozenset[str]]:
    """Trusted approver keys and the roles granted to each, from the key directory.

    ``directory/*.pub`` are approvers (the default role); ``directory/<role>/*.pub``
    are approvers that may also approve in ``<role>``. A symlinked role directory is
    refused like a malformed key: trust comes only from what the operator placed there.

    Raises:
        InputError: a malformed ``.pub`` file, or a bad role directory.
    """
    grants: dict[str, set[str]] = {k: set() for k in trusted_keys(directory)}
    if not directory.is_dir():
        return {}
    for sub in sorted(p for p in directory.iterdir() if p.is_dir()):
        if sub.is_symlink():
            raise InputError(f"approver role directory {sub} must be a real directory")
        role = check_role_name(sub.name, str(sub))
        for key in trusted_keys(sub):
            grants.setdefault(key, set()).add(role)
    return {k: frozenset(r) for k, r in grants.items()}


def approver_keys_from_args(values: Iterable[str], what: str) -> dict[str, frozenset[str]]:
    """``HEX`` (an approver) or ``ROLE:HEX`` (an approver also trusted for ``ROLE``) values.

    Raises:
        InputError: a value is not a key, or names a bad role.
    """
    grants: dict[str, set[str]] = {}
    for value in values:
        role, _, key = value.strip().rpartition(":")
        roles = grants.setdefault(check_hex_key(key, what), set())
        if role:
            roles.add(check_role_name(role, what))
    return {k: frozenset(r) for k, r in grants.items()}


def check_role_name(role: str, where: str) -> str:
    """Return ``role`` when it is a valid role name (the rules of approver ids).

    Raises:
        InputError: it is not; the message starts with ``where``.
    """
    try:
        return check_approver_id(role)
    except InputError as e:
        raise InputError(f"{where}: role {e.message.removeprefix('identity ')}") from e


def check_hex_key(value: str, what: str = "public key") -> str:
    """Return ``value`` lower-cased when it is 64 hex characters.

    Raises:
        InputError: otherwise.
    """
    text = value.strip().lower()
    if not _HEX64.match(text):
        raise InputError(f"{what} must be 64 hex characters")
    return text


def approval_path(approvals_dir: Path, plan_id: str, approver_id: str) -> Path:
    """``approvals/<plan_id>.<approver-id>.approval.json``."""
    return approvals_dir / f"{plan_id}.{approver_id}.approval.json"


def read_approval_file(path: Path) -> Approval:
    """Read and strictly parse one approval file (size-capped, regular, no symlinks followed).

    Raises:
        InputError: unreadable, oversized or malformed.
    """
    # Anyone in aegis can plant a FIFO or a link here: regular files only, never waited on.
    raw = read_capped(path, MAX_APPROVAL_BYTES, "approval", follow=False)
    try:
        return parse_approval(raw)
    except InputError as e:
        raise InputError(f"approval {path}: {e.message}") from e


def approvals_for_plan(approvals_dir: Path, plan_id: str) -> tuple[list[Approval], list[str]]:
    """Parse every approval file of ``plan_id``.

    Returns:
        (approvals, problems): a file that does not parse is reported, never fatal,
        since anyone in ``aegis`` can drop junk into the directory.
    """
    found: list[Approval] = []
    problems: list[str] = []
    if not approvals_dir.is_dir():
        return found, problems
    paths = sorted(approvals_dir.glob(f"{glob_escape(plan_id)}.*.approval.json"))
    for path in paths[:MAX_APPROVAL_FILES]:
        try:
            found.append(read_approval_file(path))
        except InputError as e:
            problems.append(e.message)
    if len(paths) > MAX_APPROVAL_FILES:
        problems.append(f"more than {MAX_APPROVAL_FILES} approval files; the rest were ignored")
    return found, problems


def glob_escape(text: str) -> str:
    """Escape glob metacharacters in a plan id."""
    return re.sub(r"([*?\[\]])", r"[\1]", text)


def read_passphrase(
    *, passphrase_file: Path | None, from_stdin: bool, env: dict[str, str] | None = None
) -> bytes | None:
    """The key passphrase: from a file, one line of stdin, or ``AEGIS_KEY_PASSPHRASE``.

    Never from an option value: argv is visible to every user in ``ps``.

    Raises:
        InputError: both sources given, unreadable file, or too long.
    """
    if passphrase_file is not None and from_stdin:
        raise InputError("give either --passphrase-file or --passphrase-stdin, not both")
    if passphrase_file is not None:
        try:
            with passphrase_file.open("rb") as f:
                raw = f.read(MAX_PASSPHRASE_BYTES + 1)
        except OSError as e:
            raise InputError(f"cannot read passphrase file {passphrase_file}: {e.strerror}") from e
    elif from_stdin:
        raw = sys.stdin.buffer.readline(MAX_PASSPHRASE_BYTES + 1)
    else:
        value = (os.environ if env is None else env).get("AEGIS_KEY_PASSPHRASE")
        return value.encode("utf-8") if value else None
    if len(raw) > MAX_PASSPHRASE_BYTES:
        raise InputError("passphrase is too long")
    raw = raw.rstrip(b"\r\n")
    if not raw:
        raise InputError("the passphrase is empty")
    return raw
