"""The consent ledger, opt-out keywords and the one sending rule."""

from __future__ import annotations

import itertools
import json
from datetime import UTC, datetime, timedelta

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import bizchat
from bizchat.errors import InvalidValue, NotFound
from bizchat.people.consent import (
    DEFAULT_OPT_OUT_KEYWORDS,
    Decision,
    is_opt_out_keyword,
    may_send,
    record_events,
    record_keyword_opt_outs,
)

T0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
_fresh = itertools.count()  # a new contact per hypothesis example


@pytest.fixture
def shop(ws):
    account = ws.accounts.add("+49 30 1234567", name="Laden")
    contact = ws.contacts.add(account["account_id"], "+49 170 1234567", name="Anna")
    return ws, account["account_id"], contact["contact_id"]


def test_opt_in_then_opt_out_is_derived_not_overwritten(shop):
    ws, aid, cid = shop
    assert ws.consent.current(cid) is None
    assert ws.consent.may_send(aid, cid) == Decision(False, "no_consent")
    ws.consent.opt_in(cid, source="double_opt_in_form", evidence="DOI 2025-03-01", at=T0)
    assert ws.consent.current(cid) == "opt_in"
    assert ws.consent.may_send(aid, cid)
    ws.consent.opt_out("+49 170 1234567", account=aid, source="chat", at=T0 + timedelta(days=1))
    assert ws.consent.current(cid) == "opt_out"
    assert ws.consent.may_send(aid, cid, "marketing").reason == "opted_out"
    history = ws.consent.history(cid)
    assert history["action"].tolist() == ["opt_in", "opt_out"]
    assert history["evidence"].tolist()[0] == "DOI 2025-03-01"
    assert ws.sql("SELECT count(*) AS n FROM consent_events")["n"][0] == 2


def test_a_backdated_opt_in_does_not_undo_a_later_opt_out(shop):
    ws, aid, cid = shop
    ws.consent.opt_out(cid, at=T0)
    ws.consent.opt_in(cid, source="import", evidence="old form", at=T0 - timedelta(days=30))
    assert ws.consent.current(cid) == "opt_out"


def test_service_respects_service_opt_outs_only(shop):
    ws, aid, cid = shop
    assert ws.consent.may_send(aid, cid, "service")     # no opt-in needed
    assert ws.consent.may_send(aid, cid, "utility")     # a broadcast category: service
    ws.consent.opt_out(cid, "marketing")
    assert ws.consent.may_send(aid, cid, "utility")
    ws.consent.opt_out(cid, "service", source="user_preferences")
    assert ws.consent.may_send(aid, cid, "utility") == Decision(False, "opted_out")
    with pytest.raises(InvalidValue):
        ws.consent.may_send(aid, cid, "spam")


def test_contact_of_another_account_is_never_sendable(ws):
    berlin = ws.accounts.add("+49 30 1234567", name="Berlin")["account_id"]
    vienna = ws.accounts.add("+43 1 5320000", name="Wien")["account_id"]
    anna = ws.contacts.add(vienna, "+49 170 1234567")["contact_id"]
    ws.consent.opt_in(anna, source="form", evidence="x")
    assert ws.consent.may_send(vienna, anna)
    assert ws.consent.may_send(berlin, anna) == Decision(False, "unknown_contact")
    assert ws.consent.may_send(berlin, anna, "service").reason == "unknown_contact"
    assert ws.consent.may_send(berlin, "+49 170 1234567").reason == "unknown_contact"


def test_may_send_is_vectorised_with_reasons(ws):
    aid = ws.accounts.add("+49 30 1234567", name="Laden")["account_id"]
    other = ws.accounts.add("+49 40 1234567", name="HH")["account_id"]
    ids = ws.contacts.ensure(aid, pd.DataFrame({
        "wa_id": [f"49170{i:07d}" for i in range(6)], "user_id": [None] * 6, "name": None}))
    stranger = ws.contacts.add(other, "+49 170 7777777")["contact_id"]
    ws.consent.opt_in(int(ids[0]), source="form", evidence="e", at=T0)
    ws.consent.opt_in(int(ids[1]), source="form", evidence="e", at=T0)
    ws.consent.opt_out(int(ids[1]), at=T0 + timedelta(hours=1))
    with ws.connect() as con:
        result = may_send(con, aid, [*ids.tolist(), stranger, 999999, int(ids[0])])
    assert result["contact_id"].tolist() == [*ids.tolist(), stranger, 999999, int(ids[0])]
    assert result["allowed"].tolist() == [True, False, False, False, False, False, False, False, True]
    assert result["reason"].tolist() == [None, "opted_out", "no_consent", "no_consent",
                                         "no_consent", "no_consent", "unknown_contact",
                                         "unknown_contact", None]
    assert ws.consent.may_send_many(aid, []).empty


def test_contact_without_any_address_is_invalid_number(shop):
    ws, aid, _ = shop
    with ws.transaction() as con:
        con.execute("INSERT INTO contacts (contact_id, account_id, created_at) VALUES (?, ?, ?)",
                    [500, aid, T0])
    assert ws.consent.may_send(aid, 500, "service") == Decision(False, "invalid_number")


# --- random event sequences -------------------------------------------------------------------

events = st.lists(st.tuples(st.sampled_from(["marketing", "service"]),
                            st.sampled_from(["opt_in", "opt_out"]),
                            st.integers(0, 20)),     # minutes after T0; equal times allowed
                  min_size=1, max_size=12)


@pytest.fixture(scope="module")
def ledger(tmp_path_factory):
    ws = bizchat.open(tmp_path_factory.mktemp("consent") / "ledger.duckdb")
    return ws, ws.accounts.add("+49 30 1234567", name="Laden")["account_id"]


@pytest.mark.slow
@given(events)
@settings(max_examples=40, deadline=None)
def test_derived_state_equals_the_last_event(ledger, sequence):
    ws, aid = ledger
    cid = int(ws.contacts.ensure(aid, pd.DataFrame(
        {"wa_id": [None], "user_id": [f"U{next(_fresh)}"], "name": ["p"]})).iloc[0])
    # One batch, in the order the events happened to arrive.
    frame = pd.DataFrame([{"contact_id": cid, "purpose": p, "action": a, "source": f"s{i}",
                           "recorded_at": T0 + timedelta(minutes=m)}
                          for i, (p, a, m) in enumerate(sequence)])
    with ws.transaction() as con:
        record_events(con, frame)
        current = dict(con.execute("SELECT purpose, state FROM current_consent "
                                   "WHERE contact_id = ?", [cid]).fetchall())
        allowed = {p: bool(may_send(con, aid, [cid], p)["allowed"].iloc[0])
                   for p in ("marketing", "service")}
        history = con.execute("SELECT recorded_at FROM consent_events WHERE contact_id = ? "
                              "ORDER BY event_id", [cid]).df()
    for purpose in ("marketing", "service"):
        mine = [(m, i, a) for i, (p, a, m) in enumerate(sequence) if p == purpose]
        expected = max(mine)[2] if mine else None  # latest time; ties: the later arrival
        assert current.get(purpose) == expected
        if purpose == "marketing":
            assert allowed[purpose] == (expected == "opt_in")
        else:
            assert allowed[purpose] == (expected != "opt_out")
    assert len(history) == len(sequence)
    # event_id follows recorded_at within a batch.
    assert history["recorded_at"].is_monotonic_increasing


def test_replayed_events_are_not_recorded_twice(shop):
    ws, aid, cid = shop
    frame = pd.DataFrame({"contact_id": [cid, cid], "purpose": ["marketing", "marketing"],
                          "action": ["opt_in", "opt_in"], "source": ["form", "form"],
                          "evidence": ["a", "a"], "recorded_at": [T0, T0]})
    with ws.transaction() as con:
        assert record_events(con, frame) == 1
    with ws.transaction() as con:
        assert record_events(con, frame) == 0


def test_bad_events_are_refused_whole(shop):
    ws, aid, cid = shop
    ok = {"contact_id": cid, "purpose": "marketing", "action": "opt_in", "source": "form",
          "recorded_at": T0}
    for change, error in [({"action": "maybe"}, InvalidValue), ({"purpose": "spam"}, InvalidValue),
                          ({"source": " "}, InvalidValue), ({"contact_id": 404}, NotFound),
                          ({"recorded_at": datetime.now(UTC) + timedelta(days=1)}, InvalidValue)]:
        with pytest.raises(error), ws.transaction() as con:
            record_events(con, pd.DataFrame([ok, {**ok, **change}]))
    assert ws.consent.history(cid).empty
    with pytest.raises(InvalidValue):
        ws.consent.opt_in(cid, source="")
    with pytest.raises(InvalidValue, match="account"):
        ws.consent.opt_in("+49 170 1234567", source="form")


def test_every_change_is_audited_without_personal_data(shop):
    ws, aid, cid = shop
    ws.consent.opt_in(cid, source="form", evidence="Anna signed at +49 170 1234567", actor="eva")
    ws.consent.opt_out(cid, source="chat")
    log = ws.sql("SELECT actor, action, subject_key, details FROM audit_log "
                 "WHERE action LIKE 'consent.%' ORDER BY \"at\"")
    assert log["action"].tolist() == ["consent.opt_in", "consent.opt_out"]
    assert log["actor"].tolist() == ["eva", "bizchat"]
    assert log["subject_key"].isna().all()
    for details in log["details"]:
        assert json.loads(details)["contact_id"] == cid
        assert "1234567" not in details and "Anna" not in details


# --- opt-out keywords -------------------------------------------------------------------------

@pytest.mark.parametrize("text", ["STOP", "stop", " Stop! ", "STOPP.", "abmelden", "Abbestellen!!",
                                  "unsubscribe", "¡STOP!", "Stöp", "\tABMELDEN\n", "„Stopp“"])
def test_keywords_ignore_case_accents_space_and_punctuation(text):
    assert is_opt_out_keyword(text)


@pytest.mark.parametrize("text", ["stop it", "please stop", "STOPPER", "Bitte abmelden",
                                  "", None, "ST OP", "🛑", "stop" * 40])
def test_keywords_must_be_the_whole_text(text):
    assert not is_opt_out_keyword(text)


@given(st.sampled_from(DEFAULT_OPT_OUT_KEYWORDS),
       st.text(" \t\n.!?,;:-\"'()", max_size=4), st.text(" \t\n.!?,;:-\"'()", max_size=4),
       st.lists(st.booleans(), min_size=12, max_size=12))
def test_keyword_with_any_case_and_wrapping_is_recognised(word, before, after, upper):
    mixed = "".join(c.upper() if u else c.lower() for c, u in zip(word, upper, strict=False))
    assert is_opt_out_keyword(before + mixed + after)
    assert not is_opt_out_keyword(before + mixed + " bitte" + after)


def test_custom_keywords_per_account_and_no_marketing_after_stop(ws):
    de = ws.accounts.add("+49 30 1234567", name="DE")["account_id"]
    ch = ws.accounts.add("+41 44 668 18 00", name="CH", opt_out_keywords=["HALT", "Austragen"])
    ch = ch["account_id"]
    a = ws.contacts.add(de, "+49 170 1234567")["contact_id"]
    b = ws.contacts.add(ch, "+41 79 123 45 67")["contact_id"]
    for cid in (a, b):
        ws.consent.opt_in(cid, source="form", evidence="e", at=T0)
    inbound = pd.DataFrame({
        "account_id": [de, ch, ch, de],
        "contact_id": [a, b, b, a],
        "text": ["Stop!", "stop", "austragen", "Danke"],
        "at": [T0 + timedelta(hours=1), T0 + timedelta(hours=2), T0 + timedelta(hours=3),
               T0 + timedelta(hours=4)],
        "message_id": ["wamid.1", "wamid.2", "wamid.3", "wamid.4"],
    })
    with ws.transaction() as con:
        hits = record_keyword_opt_outs(con, inbound)
    assert hits["message_id"].tolist() == ["wamid.1", "wamid.3"]   # CH has its own list
    assert not ws.consent.may_send(de, a) and not ws.consent.may_send(ch, b)
    assert ws.consent.may_send(de, a, "service")                   # marketing only
    assert ws.consent.history(a)["source"].tolist() == ["form", "keyword"]
    assert ws.consent.history(a)["evidence"].tolist()[-1] == "message wamid.1"
    with ws.transaction() as con:                                  # a replayed webhook
        record_keyword_opt_outs(con, inbound)
    assert len(ws.consent.history(a)) == 2


@pytest.mark.slow
@given(st.sampled_from(DEFAULT_OPT_OUT_KEYWORDS), st.integers(1, 600))
@settings(max_examples=20, deadline=None)
def test_after_a_keyword_no_marketing_is_allowed(ledger, word, minutes):
    ws, aid = ledger
    cid = int(ws.contacts.ensure(aid, pd.DataFrame(
        {"wa_id": [None], "user_id": [f"K{next(_fresh)}"], "name": [None]})).iloc[0])
    with ws.transaction() as con:
        record_events(con, pd.DataFrame([{"contact_id": cid, "purpose": "marketing",
                                          "action": "opt_in", "source": "form",
                                          "recorded_at": T0}]))
        assert may_send(con, aid, [cid])["allowed"].tolist() == [True]
        record_keyword_opt_outs(con, pd.DataFrame({
            "account_id": [aid], "contact_id": [cid], "text": [f"  {word.lower()}! "],
            "at": [T0 + timedelta(minutes=minutes)], "message_id": [f"m{minutes}"]}))
        decided = may_send(con, aid, [cid])
    assert decided["reason"].tolist() == ["opted_out"] and not decided["allowed"].any()
