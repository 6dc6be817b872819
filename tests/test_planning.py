"""Campaign planning: expected outcomes from similar past broadcasts and the cost from the
rate card, counted by hand on a small history."""

from __future__ import annotations

from datetime import timedelta

import pandas as pd
import pytest
from broadcast_helpers import T0, account, contact, deliver, inbound, service

from bizchat.campaigns.planning import BASES, RateCard, countries
from bizchat.errors import ImportFormatError

DE_MARKETING, DE_UTILITY, AT_MARKETING = 0.1131, 0.0456, 0.1096


# --- the rate card ----------------------------------------------------------------------------

def test_shipped_rate_card_says_source_and_date():
    card = RateCard.load()
    assert card.path.endswith("rate_card.csv")
    assert "hello-charles.com" in card.source and card.date == "2025-07-01"
    assert card.currency == "EUR"
    assert card.rate("DE", "marketing") == DE_MARKETING
    assert card.rate("de", "utility") == DE_UTILITY
    assert card.rate("AT", "marketing") == AT_MARKETING
    assert card.rate("ZZ", "marketing") == card.rate(None, "marketing") == 0.04
    for country in ("DE", "AT", "CH"):
        for category in ("marketing", "utility", "authentication"):
            assert card.rate(country, category) > 0


def test_prices_free_inside_the_service_window():
    card = RateCard.load()
    assert card.price("DE", "utility", in_service_window=True) == 0.0
    assert card.price("DE", "utility", in_service_window=False) == DE_UTILITY
    assert card.price("DE", "marketing", in_service_window=True) == DE_MARKETING
    assert card.price("DE", "marketing", in_service_window=True, free_form=True) == 0.0
    with pytest.raises(ValueError, match="template"):
        card.price("DE", "marketing", in_service_window=False, free_form=True)


@pytest.mark.parametrize("text, fragment, line", [
    ("country,marketing,utility\nDE,1,2\n", "missing .'authentication'.", 1),
    ("# c\ncountry,marketing,utility,authentication\nDE,0.1,x,0.1\ndefault,1,1,1\n",
     "not a number", 3),
    ("country,marketing,utility,authentication\nDE,0.1,0.1,-1\ndefault,1,1,1\n", "negative", 2),
    ("country,marketing,utility,authentication\nDE,1,1,1\nde,1,1,1\ndefault,1,1,1\n", "twice", 3),
    ("country,marketing,utility,authentication\nDE,1,1,1\n", "default", None),
    ("country,marketing,utility,authentication\nDE,1,1\n", "cells", 2),
    ("# only comments\n", "header", 0),
])
def test_bad_rate_cards_name_the_line(tmp_path, text, fragment, line):
    path = tmp_path / "card.csv"
    path.write_text(text)
    with pytest.raises(ImportFormatError, match=fragment) as err:
        RateCard.load(path)
    assert err.value.line == line


def test_rate_card_from_the_environment(tmp_path, monkeypatch):
    path = tmp_path / "mine.csv"
    path.write_text("# source: my BSP invoice\n# date: 2026-01-01\n# currency: CHF\n"
                    "country,marketing,utility,authentication\nCH,0.2,0.05,0.05\ndefault,1,1,1\n")
    monkeypatch.setenv("BIZCHAT_RATE_CARD", str(path))
    card = RateCard.load()
    assert (card.source, card.date, card.currency) == ("my BSP invoice", "2026-01-01", "CHF")
    assert card.rate("CH", "marketing") == 0.2
    with pytest.raises(ImportFormatError, match="Cannot read"):
        RateCard.load(tmp_path / "missing.csv")


def test_countries_by_calling_code():
    numbers = pd.Series(["4917012345678", "+436641234567", "41791234567", "12127365000",
                         "16042531234", "77012345678", "DE.user-id", None])
    assert countries(numbers).tolist() == ["DE", "AT", "CH", "US", "CA", "KZ", None, None]


# --- plans --------------------------------------------------------------------------------------

@pytest.fixture
def history(ws):
    """Six German contacts (1-3 labelled VIP) and an Austrian one, and two past broadcasts:

    P1 VIP, 14 days ago at 10:00 Berlin: 1 read (replied after 30 min), 2 delivered,
       3 failed                          -> sent 3, delivered 2, read 1, replied 1
    P2 everyone but the Austrian, 10 days ago at 16:00 Berlin: 1 read, 2 read (replied
       after 100 h: too late), 3 delivered, 4 delivered (replied after 10 min), 5 sent,
       6 failed                          -> sent 6, delivered 4, read 2, replied 1
    """
    acc = account(ws)
    ws.labels.create(acc["account_id"], "VIP")
    ids = {n: contact(ws, acc, n, name=f"K{n}", labels=["VIP"] if n <= 3 else [],
                      at=T0 - timedelta(days=60))["contact_id"] for n in range(1, 7)}
    austrian = ws.contacts.add(acc["account_id"], "+43 664 1234567", name="Resi")
    ws.consent.opt_in(austrian["contact_id"], source="in_store", at=T0 - timedelta(days=60))
    bc = service(ws)
    p1 = bc.create(acc["account_id"], "P1", body="Hallo {first_name}", labels_any=["VIP"], seed=1)
    bc.schedule(p1["broadcast_id"], T0 - timedelta(days=14))
    deliver(ws, p1["broadcast_id"], {ids[1]: "read", ids[2]: "delivered", ids[3]: "failed"},
            replies={ids[1]: 30})
    p2 = bc.create(acc["account_id"], "P2", body="Hallo {first_name}!",
                   audience={"contacts": list(ids.values())}, seed=2)
    bc.schedule(p2["broadcast_id"], T0 - timedelta(days=10) + timedelta(hours=6))
    deliver(ws, p2["broadcast_id"], {ids[1]: "read", ids[2]: "read", ids[3]: "delivered",
                                     ids[4]: "delivered", ids[5]: "sent", ids[6]: "failed"},
            replies={ids[2]: 100 * 60, ids[4]: 10})
    return acc, ids, austrian["contact_id"], p1["broadcast_id"], p2["broadcast_id"]


def test_plan_without_history(ws):
    acc = account(ws)
    for n in range(3):
        contact(ws, acc, n)
    austrian = ws.contacts.add(acc["account_id"], "+43 664 1234567", name="Resi")
    ws.consent.opt_in(austrian["contact_id"], source="in_store", at=T0 - timedelta(days=1))
    bc = service(ws)
    made = bc.create(acc["account_id"], "Neu", body="Hallo {first_name}")
    plan = bc.plan(made["broadcast_id"], T0)
    assert plan.audience["queued"] == 4
    assert plan.basis is None and plan.basis_recipients == 0
    assert plan.expected == {"sent": 4, "delivered": None, "read": None, "replies": None}
    # Without history every message is assumed delivered: an upper bound.
    assert plan.cost["total"] == pytest.approx(3 * DE_MARKETING + AT_MARKETING)
    rows = plan.by_country.set_index("country")
    assert rows.loc["DE", "recipients"] == 3 and rows.loc["AT", "rate"] == AT_MARKETING
    assert any("no past broadcasts" in line for line in plan.lines())


@pytest.mark.slow
def test_plan_from_the_most_similar_history(ws, history):
    acc, ids, _, p1, p2 = history
    bc = service(ws)
    made = bc.create(acc["account_id"], "Neu VIP", body="Hallo {first_name}", labels_any=["vip"])
    # Same labels, same hour (10:00 Berlin), same category: P1 alone, 3 recipients.
    plan = bc.plan(made["broadcast_id"], T0, min_recipients=3)
    assert plan.audience["queued"] == 3
    assert plan.basis == BASES[0] and plan.basis_broadcasts == 1 and plan.basis_recipients == 3
    assert plan.rates == pytest.approx({"delivery_rate": 2 / 3, "open_rate": 1 / 2,
                                        "reply_rate": 1 / 2})
    assert plan.expected == pytest.approx({"sent": 3, "delivered": 2, "read": 1, "replies": 1})
    assert plan.cost["total"] == pytest.approx(2 * DE_MARKETING)
    # Asking for more than P1 has: same labels at any hour is still P1; the category level
    # (P1 + P2, 9 recipients) is the first with enough.
    plan = bc.plan(made["broadcast_id"], T0, min_recipients=4)
    assert plan.basis == BASES[2] and plan.basis_recipients == 9 and plan.basis_broadcasts == 2
    assert plan.rates == pytest.approx({"delivery_rate": 6 / 9, "open_rate": 3 / 6,
                                        "reply_rate": 2 / 6})
    assert plan.expected == pytest.approx({"sent": 3, "delivered": 2, "read": 1,
                                           "replies": 2 / 3})
    # Nothing reaches 100: the widest level with any data is used, and says so.
    plan = bc.plan(made["broadcast_id"], T0, min_recipients=100)
    assert plan.basis == BASES[3] and plan.basis_recipients == 9
    # At 16:00 Berlin (P2's hour) with P2's (empty) label set, P2 is the best match.
    everyone = bc.create(acc["account_id"], "Neu alle", body="Hallo {first_name}")
    plan = bc.plan(everyone["broadcast_id"], T0 + timedelta(hours=6), min_recipients=6)
    assert plan.basis == BASES[0] and plan.basis_recipients == 6
    assert plan.rates["delivery_rate"] == pytest.approx(4 / 6)
    # The frequency cap (2 per 7 days) is far from P1 and P2, so all seven are queued.
    assert plan.audience["queued"] == 7
    assert plan.cost["total"] == pytest.approx(6 * 4 / 6 * DE_MARKETING + 4 / 6 * AT_MARKETING)
    text = "\n".join(plan.lines())
    assert "6 past recipients of 1 broadcasts" in text and "rate_card.csv" in text


@pytest.mark.slow
def test_utility_inside_the_window_is_free(ws, history):
    acc, ids, austrian, _, _ = history
    inbound(ws, acc, ids[1], T0 - timedelta(hours=2))       # window open at T0
    inbound(ws, acc, ids[2], T0 - timedelta(hours=30))      # closed again
    bc = service(ws)
    made = bc.create(acc["account_id"], "Lieferung", body="Ihr Paket kommt, {first_name}.",
                     category="utility")
    plan = bc.plan(made["broadcast_id"], T0, min_recipients=1)
    assert plan.audience["queued"] == 7
    # No utility history: the account-wide rates (all 9 past recipients) are used.
    assert plan.basis == BASES[3]
    assert plan.cost["free_in_window"] == 1
    delivery = 6 / 9
    assert plan.cost["expected_billable"] == pytest.approx(6 * delivery)
    assert plan.cost["total"] == pytest.approx(5 * delivery * DE_UTILITY + delivery * DE_UTILITY)
    rows = plan.by_country.set_index("country")
    assert rows.loc["DE", "recipients"] == 6 and rows.loc["DE", "billable"] == 5


@pytest.mark.slow
def test_plan_of_a_frozen_broadcast_counts_its_recipients(ws, history):
    acc, ids, _, _, _ = history
    bc = service(ws)
    made = bc.create(acc["account_id"], "VIP again", body="Hallo {first_name}",
                     labels_any=["VIP"], control=0.34, seed=3)
    before = bc.plan(made["broadcast_id"], T0, min_recipients=3)
    bc.schedule(made["broadcast_id"], T0)
    after = bc.plan(made["broadcast_id"], min_recipients=3)
    assert before.audience["queued"] == after.audience["queued"] == 2
    assert after.audience["skipped"] == {"control": 1}
    assert after.expected == pytest.approx(before.expected)
    assert after.cost["total"] == pytest.approx(before.cost["total"])
    assert after.to_dict()["by_country"][0]["country"] == "DE"
