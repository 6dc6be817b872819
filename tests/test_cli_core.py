"""The CLI shell: workspace options, info and sql, clear errors without tracebacks, and
docs that cover every command."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from bizchat.cli import main

ROOT = Path(__file__).resolve().parents[1]


def run(*args):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def test_init_and_info(tmp_path):
    path = tmp_path / "cli.duckdb"
    result = run("--workspace", str(path), "init")
    assert result.exit_code == 0, result.output
    assert str(path) in result.output and path.exists()
    result = run("info", "--workspace", str(path))  # the option works after the command too
    assert result.exit_code == 0
    assert re.search(r"schema version\s+\d+", result.output)
    assert re.search(r"messages\s+0", result.output)


def test_sql_prints_a_table_or_csv(tmp_path):
    path = str(tmp_path / "cli.duckdb")
    assert run("-w", path, "init").exit_code == 0
    result = run("-w", path, "sql", "SELECT 1 AS one, 'x,y' AS two")
    assert result.exit_code == 0
    assert result.output.split() == ["one", "two", "1", "x,y"]
    result = run("-w", path, "sql", "--csv", "SELECT 1 AS one, 'x,y' AS two")
    assert result.output == 'one,two\n1,"x,y"\n'


def test_sql_refuses_writes_with_a_clear_error(tmp_path):
    path = str(tmp_path / "cli.duckdb")
    assert run("-w", path, "init").exit_code == 0
    result = CliRunner().invoke(main, ["-w", path, "sql", "DROP TABLE accounts"])
    assert result.exit_code == 1
    assert "only reads" in result.output
    assert run("-w", path, "sql", "SELECT count(*) AS n FROM accounts").exit_code == 0


@pytest.mark.slow
def test_bad_workspace_path_is_one_clear_line_and_exit_1(tmp_path):
    not_a_db = tmp_path / "notes.txt"
    not_a_db.write_text("this is not a DuckDB file\n" * 100)
    proc = subprocess.run([sys.executable, "-m", "bizchat.cli", "-w", str(not_a_db), "info"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1
    assert proc.stderr.startswith("Error: ")
    assert str(not_a_db) in proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout

    folder = tmp_path / "a_folder"
    folder.mkdir()
    proc = subprocess.run([sys.executable, "-m", "bizchat.cli", "-w", str(folder), "info"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1
    assert "is a folder" in proc.stderr and "Traceback" not in proc.stderr


def _commands(group: click.Group, prefix: str = "bizchat"):
    for name, command in group.commands.items():
        path = f"{prefix} {name}"
        yield path, command
        if isinstance(command, click.Group):
            yield from _commands(command, path)


def test_every_command_has_help_and_is_documented():
    docs = (ROOT / "README.md").read_text() + "".join(
        p.read_text() for p in (ROOT / "docs").glob("*.md"))
    missing_help, undocumented = [], []
    for path, command in _commands(main):
        if not (command.help or "").strip():
            missing_help.append(path)
        if f"`{path}" not in docs:
            undocumented.append(path)
    assert not missing_help, f"commands without help: {missing_help}"
    assert not undocumented, f"commands missing from README.md/docs: {undocumented}"
