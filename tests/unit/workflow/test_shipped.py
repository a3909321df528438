"""Shipped data is found in a source checkout and in an installed wheel's ``_data``."""

from __future__ import annotations

from pathlib import Path

import pytest

from aegis.errors import EnvironmentFailure
from aegis.workflow.graph import default_workflow_path
from aegis.workflow.migrations import migrations_dir
from aegis.workflow.shipped import shipped_path


def test_the_checkout_ships_the_workflow_and_the_migrations() -> None:
    assert default_workflow_path().read_text(encoding="utf-8").count("[[transitions]]") > 5
    assert sorted(p.name for p in migrations_dir().glob("*.sql"))[0].startswith("0001_")


def _install(root: Path, *, checkout: bool, wheel: bool) -> Path:
    aegis_dir = root / "site" / "aegis"
    aegis_dir.mkdir(parents=True)
    if checkout:
        (root / "site" / "workflows").mkdir()
        (root / "site" / "workflows" / "change-request.toml").write_text("checkout")
    if wheel:
        (aegis_dir / "_data" / "workflows").mkdir(parents=True)
        (aegis_dir / "_data" / "workflows" / "change-request.toml").write_text("wheel")
    return aegis_dir


@pytest.mark.parametrize(
    ("checkout", "wheel", "found"),
    [(True, True, "checkout"), (False, True, "wheel"), (True, False, "checkout")],
)
def test_checkout_first_then_the_wheels_data(
    tmp_path: Path, checkout: bool, wheel: bool, found: str
) -> None:
    aegis_dir = _install(tmp_path, checkout=checkout, wheel=wheel)
    path = shipped_path("workflows", "change-request.toml", is_dir=False, aegis_dir=aegis_dir)
    assert path.read_text() == found


def test_a_folder_is_not_taken_for_a_file_and_missing_data_is_a_bug(tmp_path: Path) -> None:
    aegis_dir = _install(tmp_path, checkout=False, wheel=False)
    (tmp_path / "site" / "workflows" / "change-request.toml").mkdir(parents=True)
    with pytest.raises(EnvironmentFailure, match=r"workflows/change-request\.toml is missing"):
        shipped_path("workflows", "change-request.toml", is_dir=False, aegis_dir=aegis_dir)
    assert shipped_path("workflows", is_dir=True, aegis_dir=aegis_dir).name == "workflows"
