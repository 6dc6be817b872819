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
