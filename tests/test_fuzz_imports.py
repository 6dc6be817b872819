"""Damaged files in, one clean error or a good result out: chat exports and contact CSVs
mutated by hypothesis (see fuzzing.py; `python tests/fuzzing.py` runs a bigger batch and
prints the figures)."""

from __future__ import annotations

import pytest
from fuzzing import contact_csvs, contact_outcome, export_outcome, exports
from hypothesis import HealthCheck, given, settings

import bizchat


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(exports())
def test_a_damaged_export_parses_or_is_a_clean_error(data):
    assert not export_outcome(data).startswith("crash"), export_outcome(data)


@pytest.mark.slow
def test_contact_csvs(tmp_path):
    """One workspace for all examples (a fresh one each would cost more than the import)."""
    ws = bizchat.open(tmp_path / "fuzz.duckdb")
    account = ws.accounts.add("+49 30 1234567", name="Laden")["account_id"]

    @settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(contact_csvs())
    def a_damaged_contact_csv_imports_or_is_a_clean_error(data):
        outcome = contact_outcome(ws, account, tmp_path / "contacts.csv", data)
        assert not outcome.startswith("crash"), outcome

    a_damaged_contact_csv_imports_or_is_a_clean_error()
