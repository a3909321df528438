"""``aegis policy init``: install the shipped default policy file.

There is deliberately no built-in fallback policy (an absent rule set denies);
this writes ``aegis/policy/default_policy.toml`` to ``Config.policy_path`` for the
operator to review and edit. It refuses to overwrite an existing file unless asked.

Example:
    >>> write_default_policy(load_config({"AEGIS_HOME": "/tmp/h"}))
    PosixPath('/tmp/h/etc/aegis/policy.toml')
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING

from aegis.errors import InputError
from aegis.workflow.files import write_atomic

if TYPE_CHECKING:
    from aegis.config import Config


def default_policy_text() -> str:
    """The shipped default policy (package data)."""
    return resources.files("aegis.policy").joinpath("default_policy.toml").read_text("utf-8")


def write_default_policy(cfg: Config, *, force: bool = False) -> Path:
    """Write the default policy to ``cfg.policy_path``; return the path.

    Raises:
        InputError: the file exists and ``force`` is false.
        EnvironmentFailure: the directory is not writable.
    """
    path = cfg.policy_path
    if path.exists() and not force:
        raise InputError(
            f"{path} already exists; refusing to overwrite the policy in force",
            hint="edit it, or pass --force to replace it with the default",
        )
    # Not the store: /etc/aegis keeps its own modes (no host_install chmod of the directory).
    return write_atomic(path, default_policy_text().encode("utf-8"), mode=0o644)
