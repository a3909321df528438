"""Configuration: AEGIS_HOME relocation, file + environment, strict values."""

from __future__ import annotations

from pathlib import Path

import pytest

from aegis.config import load_config
from aegis.errors import InputError


def test_home_relocates_every_path(tmp_path: Path) -> None:
    cfg = load_config({"AEGIS_HOME": str(tmp_path)})
    for path in (
        cfg.store_path,
        cfg.audit_path,
        cfg.aegisd_socket,
        cfg.policy_path,
        cfg.ledger_path,
        cfg.cache_dir,
    ):
        assert str(path).startswith(str(tmp_path))


def test_host_layout_without_home() -> None:
    cfg = load_config({})
    assert str(cfg.audit_path) == "/var/log/aegis/audit.jsonl"
    assert str(cfg.aegisd_socket) == "/run/aegis/aegisd.sock"
    assert str(cfg.reviewd_socket) == "/run/aegis/aegis-reviewd.sock"
    assert str(cfg.store_path) == "/var/lib/aegis/state.db"
    assert cfg.ai_base_url == "http://localhost:8000/v1"


def test_file_then_environment(tmp_path: Path) -> None:
    etc = tmp_path / "etc/aegis"
    etc.mkdir(parents=True)
    (etc / "aegis.toml").write_text('ai_model = "m1"\nai_timeout_s = 5\n')
    cfg = load_config({"AEGIS_HOME": str(tmp_path)})
    assert (cfg.ai_model, cfg.ai_timeout_s) == ("m1", 5)
    cfg = load_config({"AEGIS_HOME": str(tmp_path), "AEGIS_AI_MODEL": "m2"})
    assert cfg.ai_model == "m2"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("nonsense = 1\n", "unknown key"),
        ("ai_timeout_s = 'x'\n", "integer"),
        ("ai_timeout_s = -1\n", "positive"),
        ("review_enabled = 'maybe'\n", "true or false"),
        ("[[[", "not valid TOML"),
    ],
    ids=["unknown", "not-int", "negative", "bad-bool", "bad-toml"],
)
def test_bad_config_refused(tmp_path: Path, text: str, message: str) -> None:
    etc = tmp_path / "etc/aegis"
    etc.mkdir(parents=True)
    (etc / "aegis.toml").write_text(text)
    with pytest.raises(InputError, match=message):
        load_config({"AEGIS_HOME": str(tmp_path)})


def test_ai_reasoning_defaults_off_and_takes_only_its_modes(tmp_path: Path) -> None:
    assert load_config({"AEGIS_HOME": str(tmp_path)}).ai_reasoning == "off"
    for mode in ("off", "low", "model", " LOW "):
        cfg = load_config({"AEGIS_HOME": str(tmp_path), "AEGIS_AI_REASONING": mode})
        assert cfg.ai_reasoning == mode.strip().lower()
    with pytest.raises(InputError, match="ai_reasoning must be one of"):
        load_config({"AEGIS_HOME": str(tmp_path), "AEGIS_AI_REASONING": "max"})
