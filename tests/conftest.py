"""Shared fixtures: a real DuckDB workspace file per test, the shared sample files."""

from __future__ import annotations

from pathlib import Path

import pytest

import bizchat

ROOT = Path(__file__).resolve().parents[1]
SHARED_FIXTURES = ROOT.parent / "shared" / "fixtures"


@pytest.fixture
def ws(tmp_path):
    """A fresh, empty workspace in its own file."""
    return bizchat.open(tmp_path / "ws.duckdb")


@pytest.fixture
def shared_fixtures() -> Path:
    if not SHARED_FIXTURES.exists():
        pytest.skip("../shared/fixtures is not beside this checkout")
    return SHARED_FIXTURES
