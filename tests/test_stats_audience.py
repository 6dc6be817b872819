"""Audience figures for the reports: consent changes by source, coverage, label growth."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest


@pytest.fixture
def shop(ws):
    acc = ws.accounts.add("+49 30 901820", "Buchladen")["account_id"]
    early, late = datetime(2026, 10, 5, tzinfo=UTC), datetime(2026, 11, 10, tzinfo=UTC)
    people = [ws.contacts.add(acc, f"+49 170 100000{i}", name=f"Kundin {i}")["contact_id"]
              for i in range(5)]
    ws.consent.opt_in(people[0], source="in_store", at=early)
    ws.consent.opt_in(people[1], source="double_opt_in_form", at=early)
    ws.consent.opt_in(people[2], source="double_opt_in_form", at=late)
    ws.consent.opt_out(people[1], source="keyword", at=late)
    ws.labels.create(acc, "Krimi")
    ws.labels.create(acc, "Kinder 'n' 🎈")
    ws.labels.assign(acc, "Krimi", people[:3])
    return ws, acc, people, early, late


def test_consent_changes_count_the_period_by_source(shop):
    ws, acc, people, early, late = shop
    table = ws.stats.consent_changes(account=acc, start="2026-11-01", end="2026-12-01")
    got = {(r.source, r.action): r.events for r in table.itertuples()}
    assert got == {("double_opt_in_form", "opt_in"): 1, ("keyword", "opt_out"): 1}


def test_consent_coverage_at_a_time(shop):
    ws, acc, people, early, late = shop
    now = ws.stats.consent_coverage(account=acc).iloc[0]
    assert (now.contacts, now.opted_in, now.opted_out, now.never_asked) == (5, 2, 1, 2)
    assert now.coverage == pytest.approx(2 / 5)
    before = ws.stats.consent_coverage(account=acc, end="2026-11-01").iloc[0]
    assert (before.opted_in, before.opted_out) == (2, 0)


def test_label_growth_counts_members_added_and_consent(shop):
    ws, acc, people, early, late = shop
    table = ws.stats.label_growth(account=acc, start="2020-01-01").set_index("label")
    krimi = table.loc["Krimi"]
    assert (krimi.contacts, krimi.added, krimi.opted_in) == (3, 3, 2)
    assert krimi.consent_share == pytest.approx(2 / 3)
    empty = table.loc["Kinder 'n' 🎈"]
    assert empty.contacts == 0 and empty.added == 0
    later = ws.stats.label_growth(account=acc, start="2099-01-01", end="2099-02-01")
    assert later.set_index("label").loc["Krimi"].added == 0
