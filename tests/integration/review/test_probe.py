"""``aegis review --probe`` against the scripted loopback model server (issue 21 item 4)."""

from __future__ import annotations

import json
import socket
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from fakemodel import FakeModelServer

from aegis.cli.aegis import cli


def _probe(monkeypatch: pytest.MonkeyPatch, url: str, model: str = "fake-model") -> Any:
    monkeypatch.setenv("AEGIS_AI_BASE_URL", url)
    monkeypatch.setenv("AEGIS_AI_MODEL", model)
    monkeypatch.setenv("AEGIS_AI_TIMEOUT", "5")
    return CliRunner().invoke(cli, ["review", "--probe", "--json"], catch_exceptions=False)


@pytest.mark.parametrize(
    ("script", "response_format"),
    [("valid", "json_schema"), ("json-object-only", "json_object"), ("vllm-no-parser", None)],
)
def test_a_server_whose_reviews_count(
    aegis_home: Path,
    monkeypatch: pytest.MonkeyPatch,
    model: FakeModelServer,
    script: str,
    response_format: str | None,
) -> None:
    model.script = script
    result = _probe(monkeypatch, model.base_url)
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert (out["ok"], out["reachable"], out["model_listed"], out["answer_parses"]) == (
        True,
        True,
        True,
        True,
    )
    assert out["response_format"] == (response_format or "json_schema")
    recorded = json.loads(Path(out["path"]).read_text())
    assert recorded["ok"] is True
    doctor = CliRunner().invoke(cli, ["doctor", "--json"])
    [check] = [c for c in json.loads(doctor.stdout)["checks"] if c["name"] == "review probe"]
    assert check["status"] == "ok"
    assert f"(response_format {out['response_format']}; reasoning " in check["detail"]
    # The loopback server takes the reasoning controls (as vLLM does): both are kept.
    assert out["reasoning"] == ["chat_template_kwargs", "reasoning_effort"]
    assert (
        Path(out["path"]) == aegis_home / "var/lib/aegis/reviews/review-probe.json"
        or Path(out["path"]).name == "review-probe.json"
    )


def test_an_answer_that_does_not_parse_fails_the_probe(
    aegis_home: Path, monkeypatch: pytest.MonkeyPatch, model: FakeModelServer
) -> None:
    model.script = "invalid-json"
    result = _probe(monkeypatch, model.base_url)
    assert result.exit_code == 7
    assert json.loads(result.stdout)["answer_parses"] is False
    assert "not strict JSON" in result.stderr


def test_a_model_the_server_does_not_serve(
    aegis_home: Path, monkeypatch: pytest.MonkeyPatch, model: FakeModelServer
) -> None:
    result = _probe(monkeypatch, model.base_url, model="deepseek-v4-flash")
    assert result.exit_code == 7
    out = json.loads(result.stdout)
    assert out["model_listed"] is False
    assert "does not list 'deepseek-v4-flash'" in out["detail"]


def test_an_unreachable_server(aegis_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    result = _probe(monkeypatch, f"http://127.0.0.1:{port}/v1")
    assert result.exit_code == 7
    assert json.loads(result.stdout)["reachable"] is False
    assert "unreachable" in result.stderr


def test_review_without_plan_or_probe_is_a_usage_error(aegis_home: Path) -> None:
    result = CliRunner().invoke(cli, ["review"])
    assert result.exit_code == 2
    assert "--probe" in result.output
