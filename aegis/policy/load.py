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


# Parsed and checked policies by (path, exact text): one pass of `aegis unattended run`
# loaded the same file three times and aegisd four times per apply, parsing the TOML
# twice and checking the rules each time. The files are still read on every call; only
# identical bytes (and, with a shadow file, identical shadow bytes) reuse the result.
_LOADED: dict[tuple[str, str], tuple[PolicyConfig, str | None, str | None]] = {}
_LOADED_MAX = 8


def load_policy_config(path: Path) -> PolicyConfig:
    """Read and strictly parse the policy file at ``path`` (and its shadow file, if any).

    Raises:
        PolicyConfigError: absent, empty, unreadable or malformed file (callers deny).
    """
    text = _read(path)
    key = (str(path), text)
    hit = _LOADED.get(key)
    if hit is not None:
        config, shadow_path, shadow_text = hit
        if shadow_path is None or _read(path.parent / shadow_path) == shadow_text:
            return config
    config, shadow_path, shadow_text = _load(path, text)
    if len(_LOADED) >= _LOADED_MAX:
        _LOADED.clear()
    _LOADED[key] = (config, shadow_path, shadow_text)
    return config


def _load(path: Path, text: str) -> tuple[PolicyConfig, str | None, str | None]:
    """Parse and check ``text`` (read from ``path``) and its shadow file, if it names one.

    Returns the policy, the shadow path as written (relative to ``path``'s directory),
    and the shadow file's text.
    """
    try:
        config = parse_policy_config(text)
        data = load_toml(text, what="policy file", max_bytes=MAX_POLICY_BYTES)
    except PolicyConfigError as e:
        raise PolicyConfigError(f"{path}: {e.message}", hint=e.hint) from e
    shadow_path = data.get("shadow", {}).get("path")
    shadow_text: str | None = None
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
    return config, shadow_path, shadow_text
