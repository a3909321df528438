"""The exit-code tables people read agree with the code: ``--help`` of both CLIs and both
daemons (real processes), each command's own line, README.md and docs/*.md."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from aegis.cli.aegis import cli as aegis_cli
from aegis.cli.aegisctl import cli as aegisctl_cli
from aegis.cli.exits import COMMAND_EXITS
from aegis.errors import EXIT_CODES, exit_code_table, exit_codes_of, exit_label
from aegis.execute import aegisd
from aegis.review import reviewd

REPO = Path(__file__).resolve().parents[3]
BIN = Path(sys.executable).parent
TABLE = dict(exit_code_table())
ROW = re.compile(r"^\s+(\d+)\s{2}(\S.*)$")


def _help_rows(text: str, title: str) -> dict[int, str]:
    """The rows under ``title`` in a --help text, up to the first line that is not a row."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.strip().endswith(title))
    rows: dict[int, str] = {}
    for line in lines[start + 1 :]:
        match = ROW.match(line)
        if not match:
            break
        rows[int(match.group(1))] = match.group(2)
    return rows


def test_the_table_covers_every_error_class_and_the_general_codes() -> None:
    assert set(TABLE) == {0, 1, 2, *EXIT_CODES.values()}
    for cls, code in EXIT_CODES.items():
        assert TABLE[code] == cls.meaning
        assert exit_label(code) == cls.meaning.split(":")[0]


@pytest.mark.parametrize("prog", ["aegis", "aegisctl", "aegisd", "aegis-reviewd"])
def test_help_of_every_program_carries_the_full_table(prog: str) -> None:
    proc = subprocess.run(
        [str(BIN / prog), "--help"], capture_output=True, text=True, timeout=60, check=False
    )
    assert proc.returncode == 0, proc.stderr
    assert _help_rows(proc.stdout, "Exit codes:") == TABLE
    if prog in ("aegisd", "aegis-reviewd"):  # and which of them the daemon uses
        exits = aegisd.EXITS if prog == "aegisd" else reviewd.EXITS
        used = ", ".join(map(str, exit_codes_of(exits)))
        assert f"{prog} exits with {used}." in proc.stdout


def _leaves(group: click.Group, path: tuple[str, ...]) -> list[tuple[str, ...]]:
    out: list[tuple[str, ...]] = []
    ctx = click.Context(group)
    for name in group.list_commands(ctx):
        cmd = group.get_command(ctx, name)
        assert cmd is not None, name
        if isinstance(cmd, click.Group):
            out.extend(_leaves(cmd, (*path, name)))
        else:
            out.append((*path, name))
    return out


LEAVES = [(aegis_cli, "aegis", p) for p in _leaves(aegis_cli, ())] + [
    (aegisctl_cli, "aegisctl", p) for p in _leaves(aegisctl_cli, ())
]


@pytest.mark.parametrize(
    ("group", "prog", "path"), LEAVES, ids=[" ".join((p, *c)) for _, p, c in LEAVES]
)
def test_every_command_names_its_exit_codes(
    group: click.Group, prog: str, path: tuple[str, ...]
) -> None:
    key = " ".join((prog, *path))
    assert key in COMMAND_EXITS, f"add {key!r} to aegis/cli/exits.py COMMAND_EXITS"
    result = CliRunner().invoke(group, [*path, "--help"], terminal_width=200)
    assert result.exit_code == 0, result.output
    named = " ".join(result.output.split())  # click wraps the line
    listed = ", ".join(f"{c} {exit_label(c)}" for c in exit_codes_of(COMMAND_EXITS[key]))
    assert f"Exit codes: {listed} (1 internal bug, 2 usage; every code: aegis --help)." in named


def _markdown_tables(text: str) -> list[dict[int, str]]:
    """Every table whose first column is headed ``code``: code -> second column."""
    tables: list[dict[int, str]] = []
    current: dict[int, str] | None = None
    for line in text.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")] if "|" in line else []
        if cells[:1] == ["code"]:
            current = {}
            tables.append(current)
        elif current is not None and cells and cells[0].isdigit():
            current[int(cells[0])] = cells[1].replace("`", "'")
        elif current is not None and not (cells and set(cells[0]) <= {"-", ":"}):
            current = None
    return tables


DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]


CARRIERS = {"README.md", "docs/design.md", "docs/operator-guide.md", "docs/agents.md"}


def test_readme_and_docs_tables_are_the_code_table_and_the_help_table() -> None:
    proc = subprocess.run(
        [str(BIN / "aegis"), "--help"], capture_output=True, text=True, timeout=60, check=False
    )
    # The docs quote a command name in backticks where --help has quotes.
    shown = {c: m.replace("`", "'") for c, m in _help_rows(proc.stdout, "Exit codes:").items()}
    carrying = set()
    for path in DOCS:
        for table in _markdown_tables(path.read_text(encoding="utf-8")):
            carrying.add(str(path.relative_to(REPO)))
            assert table == TABLE == shown, path.relative_to(REPO)
    assert carrying >= CARRIERS
