"""Reading the policy file: parse it strictly, then check it against the rules it names.

Above :mod:`aegis.policy.config` (pure parsing) and :mod:`aegis.policy.engine`
(:func:`~aegis.policy.engine.check_config` needs every rule, every ecosystem's too),
so that parsing never has to import the engine.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from aegis.policy.config import MAX_POLICY_BYTES, PolicyConfig, parse_policy_config
from aegis.policy.engine import check_config
from aegis.policy.fields import PolicyConfigError
from aegis.toml_doc import load_toml


def _read(path: Path) -> str:
    try:
        raw = path.read_bytes()
    except FileNotFoundError as e:
        raise PolicyConfigError(
            f"no policy file at {path}: an absent rule set denies everything",
            hint=f"run 'aegis policy init' to write the default policy to {path}",
        ) from e
    except OSError as e:
        raise PolicyConfigError(f"cannot read policy file {path}: {e.strerror}") from e
    if len(raw) > MAX_POLICY_BYTES:
        raise PolicyConfigError(f"policy file {path} is larger than {MAX_POLICY_BYTES} bytes")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise PolicyConfigError(f"policy file {path} is not UTF-8") from e


def load_policy_config(path: Path) -> PolicyConfig:
    """Read and strictly parse the policy file at ``path`` (and its shadow file, if any).

    Raises:
        PolicyConfigError: absent, empty, unreadable or malformed file (callers deny).
    """
    text = _read(path)
    try:
        config = parse_policy_config(text)
        data = load_toml(text, what="policy file", max_bytes=MAX_POLICY_BYTES)
    except PolicyConfigError as e:
        raise PolicyConfigError(f"{path}: {e.message}", hint=e.hint) from e
    shadow_path = data.get("shadow", {}).get("path")
    if shadow_path is not None:
        if not isinstance(shadow_path, str) or not shadow_path:
            raise PolicyConfigError(f"{path}: shadow.path: expected a path")
        target = (path.parent / shadow_path).resolve()
        shadow_text = _read(target)
        try:
            shadow = parse_policy_config(shadow_text)
        except PolicyConfigError as e:
            raise PolicyConfigError(f"shadow policy {target}: {e.message}") from e
        if load_toml(shadow_text, what="shadow policy", max_bytes=MAX_POLICY_BYTES).get("shadow"):
            raise PolicyConfigError(f"shadow policy {target} may not name its own shadow")
        check_config(shadow)
        config = replace(config, shadow=shadow)
    check_config(config)
    return config
