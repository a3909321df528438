"""Data files shipped with Aegis: the top-level ``workflows/`` and ``state/`` folders.

In a source checkout they sit beside ``aegis/``; an installed wheel carries them in
``aegis/_data`` (see ``[tool.hatch.build.targets.wheel.force-include]``). Both places
are looked up, source tree first, so tests and the demo read what is in the checkout.

Example:
    >>> shipped_path("workflows", "change-request.toml", is_dir=False)
    PosixPath('/work/main/workflows/change-request.toml')
"""

from __future__ import annotations

from pathlib import Path

from aegis.errors import EnvironmentFailure

_AEGIS_DIR = Path(__file__).resolve().parents[1]


def shipped_path(*parts: str, is_dir: bool, aegis_dir: Path = _AEGIS_DIR) -> Path:
    """The shipped file (``is_dir=False``) or folder at ``parts``.

    Args:
        parts: path components below the project root, e.g. ``("state", "migrations")``.
        is_dir: look for a folder rather than a file.
        aegis_dir: the ``aegis`` package folder (tests point it at a fake install).

    Raises:
        EnvironmentFailure: it is in neither place (an incomplete install, exit 7).
    """
    for base in (aegis_dir.parent, aegis_dir / "_data"):
        candidate = base.joinpath(*parts)
        if candidate.is_dir() if is_dir else candidate.is_file():
            return candidate
    raise EnvironmentFailure(
        f"Aegis is installed incompletely: {'/'.join(parts)} is missing "
        f"(looked beside {aegis_dir} and in {aegis_dir / '_data'})",
        hint="reinstall (packaging/install-native.sh) and check with packaging/verify-native.sh",
    )
