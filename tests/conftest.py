"""Shared fixtures: a real DuckDB workspace file per test."""

from __future__ import annotations

from pathlib import Path

import pytest

import bizchat

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def ws(tmp_path):
    """A fresh, empty workspace in its own file."""
    return bizchat.open(tmp_path / "ws.duckdb")


@pytest.fixture(scope="session")
def demo_template(tmp_path_factory):
    """A small demo workspace (300 contacts), built once per test session (per xdist
    worker); tests take copies with ``demo_ws``."""
    from bizchat import demo

    path = tmp_path_factory.mktemp("demo_template") / "demo.duckdb"
    demo.build(path, contacts=300, seed=7)
    return path


@pytest.fixture
def demo_ws(demo_template, tmp_path):
    """A copy of the session's demo workspace (with its key file), to change freely."""
    import shutil

    path = tmp_path / "demo.duckdb"
    shutil.copy(demo_template, path)
    for extra in demo_template.parent.glob(demo_template.name + ".*"):
        shutil.copy(extra, tmp_path / extra.name)
    return bizchat.open(path)
