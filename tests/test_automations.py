"""Automated messages: greeting windows, away schedules (time zones, DST), scopes,
disabled rules, idempotence, and the set-based apply used by webhook ingestion."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pandas as pd
import pytest

from bizchat.errors import NotFound, TemplateError
from bizchat.messaging import automations
from bizchat.messaging.chats import store_messages
from bizchat.people.accounts import InvalidValue, is_open_at, resolve_id

SHOP = "+49 30 1234567"       # Europe/Berlin
VIENNA = "+43 1 2345678"      # Europe/Vienna
ANNA = "+49 170 1000001"
BEN = "+49 170 1000002"
HOURS = "mon-fri=09:00-18:00"  # closed at the weekend


@pytest.fixture
def shop(ws):
    ws.accounts.add(SHOP, name="Blumen Berg", business_hours=HOURS)
    ws.accounts.add(VIENNA, name="Wiener Blumen", timezone="Europe/Vienna",
                    business_hours=HOURS)
    anna = ws.contacts.add(SHOP, ANNA, name="Anna Schmidt")["contact_id"]
    ben = ws.contacts.add(SHOP, BEN, name="Ben")["contact_id"]
    return {"anna": anna, "ben": ben}


_counter = iter(range(10**9))


def receive(ws, account, *messages, new_contact=None, apply=True):
    """Store inbound messages as ingestion does, then run apply in the same transaction.

    ``messages``: (contact_id, "2025-03-28 07:30") or (contact_id, at, message_id).
    """
    rows = [(m[0], pd.to_datetime(m[1], utc=True),
             m[2] if len(m) > 2 else f"wamid.{next(_counter)}") for m in messages]
    with ws.transaction() as con:
        aid = resolve_id(con, account)
        frame = pd.DataFrame({
            "message_id": [r[2] for r in rows], "account_id": aid,
            "contact_id": [r[0] for r in rows], "direction": "in", "kind": "text",
            "body": "Hallo", "source": "webhook", "created_at": [r[1] for r in rows]})
        new = store_messages(con, frame)
        if new_contact is not None:
            new["new_contact"] = new_contact
        return automations.apply(con, new) if apply else new


def sent(ws, kind=None) -> pd.DataFrame:
    frame = ws.sql("""SELECT m.*, json_extract_string(details, '$.kind') AS rule
                      FROM messages m WHERE automatic ORDER BY created_at, message_id""")
    return frame if kind is None else frame[frame["rule"] == kind].reset_index(drop=True)


# --- greeting -----------------------------------------------------------------------------------

def test_greeting_on_first_message_is_a_proper_outbound_message(ws, shop):
    ws.automations.set_greeting(SHOP, "Hallo {first_name}, willkommen bei {business_name}!")
    out = receive(ws, SHOP, (shop["anna"], "2025-03-28 10:00", "wamid.first"))
    assert out.columns.tolist() == automations.RESULT_COLUMNS
    assert out["body"].tolist() == ["Hallo Anna, willkommen bei Blumen Berg!"]
    row = sent(ws).iloc[0]
    assert row["direction"] == "out" and row["automatic"] and row["kind"] == "text"
    assert row["source"] == "automation"
    assert row["created_at"] == pd.Timestamp("2025-03-28 10:00", tz="UTC")
    assert row["contact_id"] == shop["anna"] and row["chat_id"] == out["chat_id"][0]
    details = json.loads(row["details"])
    assert details == {"automation_id": ws.automations.get(SHOP, "greeting")["automation_id"],
                       "kind": "greeting", "inbound_message_id": "wamid.first"}
    assert row["message_id"].startswith("auto-")


def test_greeting_again_only_after_fourteen_days_of_silence(ws, shop):
    ws.automations.set_greeting(SHOP, "Hallo {first_name}!")
    start = datetime(2025, 1, 6, 10, 0, tzinfo=UTC)
    a = shop["anna"]
    assert len(receive(ws, SHOP, (a, start))) == 1
    assert len(receive(ws, SHOP, (a, start + timedelta(days=1)))) == 0
    # 13 days after the last message: still inside the window
    assert len(receive(ws, SHOP, (a, start + timedelta(days=14)))) == 0
    # exactly 14 days of silence since the last message: greet again
    assert len(receive(ws, SHOP, (a, start + timedelta(days=28)))) == 1
    assert len(receive(ws, SHOP, (a, start + timedelta(days=28, hours=1)))) == 0
    assert len(sent(ws, "greeting")) == 2


def test_outbound_messages_count_as_activity(ws, shop):
    ws.automations.set_greeting(SHOP, "Hallo!", silence_days=7)
    a = shop["anna"]
    receive(ws, SHOP, (a, "2025-01-01 10:00"))
    with ws.transaction() as con:  # the business wrote on day 5
        store_messages(con, pd.DataFrame({
            "message_id": ["out-1"], "account_id": [1], "contact_id": [a], "direction": ["out"],
            "kind": ["text"], "body": ["Ihr Paket"], "source": ["transport"],
            "created_at": [pd.Timestamp("2025-01-05 10:00", tz="UTC")]}))
    assert len(receive(ws, SHOP, (a, "2025-01-10 10:00"))) == 0   # 5 days after our message
    assert len(receive(ws, SHOP, (a, "2025-01-17 10:01"))) == 1   # 7 days of silence


def test_one_greeting_for_a_batch_with_several_messages(ws, shop):
    ws.automations.set_greeting(SHOP, "Hallo!")
    a, b = shop["anna"], shop["ben"]
    out = receive(ws, SHOP, (a, "2025-03-28 10:00", "wamid.b"), (a, "2025-03-28 10:00", "wamid.a"),
                  (a, "2025-03-28 10:05"), (b, "2025-03-28 10:01"))
    assert out.groupby("contact_id").size().to_dict() == {a: 1, b: 1}
    # the tie at 10:00 goes to the smaller message id
    assert out.loc[out["contact_id"] == a, "inbound_message_id"].item() == "wamid.a"


def test_a_batch_spanning_the_silence_window_greets_twice(ws, shop):
    ws.automations.set_greeting(SHOP, "Hallo!", silence_days=14)
    a = shop["anna"]
    out = receive(ws, SHOP, (a, "2025-01-01 10:00"), (a, "2025-01-02 10:00"),
                  (a, "2025-02-01 10:00"))
    assert out["created_at"].dt.strftime("%m-%d").tolist() == ["01-01", "02-01"]


def test_missing_values_render_empty_and_are_recorded(ws, shop):
    nameless = ws.contacts.add(SHOP, "+49 170 1000003")["contact_id"]
    ws.automations.set_greeting(SHOP, "Hallo {first_name}, schön dass Sie da sind!")
    out = receive(ws, SHOP, (nameless, "2025-03-28 10:00"))
    assert out["body"].tolist() == ["Hallo, schön dass Sie da sind!"]
    assert json.loads(sent(ws)["details"][0])["missing"] == ["first_name"]


# --- away -----------------------------------------------------------------------------------------

def test_away_only_outside_hours_across_the_dst_change(ws, shop):
    """Berlin moves from UTC+1 to UTC+2 on 2025-03-30: the same UTC time of day is
    before opening on Friday and after it on Monday."""
    ws.automations.set_away(SHOP, "Wir sind ab 9 Uhr wieder da.")
    a, b = shop["anna"], shop["ben"]
    assert len(receive(ws, SHOP, (a, "2025-03-28 07:30"))) == 1   # Fri 08:30 CET: closed
    assert len(receive(ws, SHOP, (b, "2025-03-31 07:30"))) == 0   # Mon 09:30 CEST: open
    assert len(receive(ws, SHOP, (a, "2025-03-28 16:30"))) == 0   # Fri 17:30 CET: open
    assert len(receive(ws, SHOP, (b, "2025-03-31 16:30"))) == 1   # Mon 18:30 CEST: closed
    periods = [json.loads(d)["period"] for d in sent(ws, "away")["details"]]
    assert periods == ["2025-03-27 18:00", "2025-03-31 18:00"]


def test_away_decisions_match_is_open_at_minute_by_minute(ws):
    """A sweep over a week with DST in the middle, one fresh contact per message (so the
    once-per-period rule doesn't hide anything): away exactly when accounts.is_open_at
    says closed, with hours past midnight and a split day."""
    hours = "mon=00:00-02:00,09:00-12:00,13:00-18:00; tue-fri=09:00-18:00; sat=22:00-24:00"
    account = ws.accounts.add(SHOP, name="Laden", business_hours=hours)
    ws.automations.set_away(SHOP, "Geschlossen.")
    times = pd.date_range("2025-03-27 00:00", "2025-04-03 00:00", freq="17min", tz="UTC")
    ids = ws.contacts.ensure(SHOP, pd.DataFrame({"wa_id": [f"4917010{i:05d}" for i in
                                                          range(len(times))]}))
    out = receive(ws, SHOP, *[(int(c), t, f"m{i}") for i, (c, t) in enumerate(
        zip(ids, times, strict=True))])
    expected = {f"m{i}" for i, t in enumerate(times)
                if not is_open_at(account["business_hours"], "Europe/Berlin", t.to_pydatetime())}
    assert set(out["inbound_message_id"]) == expected
    assert 0 < len(expected) < len(times)


def test_away_once_per_continuous_away_period(ws, shop):
    ws.automations.set_away(SHOP, "Wir sind weg.")
    a = shop["anna"]
    # Friday 19:00 local to Monday 08:00 local is one period (closed Sat and Sun)
    for at in ("2025-03-07 18:00", "2025-03-08 11:00", "2025-03-09 22:00", "2025-03-10 07:00"):
        receive(ws, SHOP, (a, at))
    assert len(sent(ws, "away")) == 1
    receive(ws, SHOP, (a, "2025-03-10 12:00"))  # Monday 13:00: open
    receive(ws, SHOP, (a, "2025-03-10 17:30"))  # Monday 18:30: a new period
    receive(ws, SHOP, (a, "2025-03-11 06:00"))  # Tuesday 07:00: still the same one
    away = sent(ws, "away")
    assert [json.loads(d)["period"] for d in away["details"]] == \
        ["2025-03-07 18:00", "2025-03-10 18:00"]
    # another contact gets its own
    receive(ws, SHOP, (shop["ben"], "2025-03-11 06:30"))
    assert len(sent(ws, "away")) == 3


def test_away_period_across_sunday_midnight(ws, shop):
    ws.accounts.update(SHOP, business_hours="mon-sun=09:00-18:00")
    ws.automations.set_away(SHOP, "Weg.")
    a = shop["anna"]
    receive(ws, SHOP, (a, "2025-03-09 20:00"), (a, "2025-03-10 06:00"))  # Sun 21:00, Mon 07:00
    assert [json.loads(d)["period"] for d in sent(ws, "away")["details"]] == \
        ["2025-03-09 18:00"]


def test_away_always_is_once_per_local_day(ws, shop):
    ws.automations.set_away(SHOP, "Urlaub bis Montag.", schedule="always")
    a = shop["anna"]
    out = receive(ws, SHOP, (a, "2025-03-28 10:00"), (a, "2025-03-28 22:30"),  # 23:30 local
                  (a, "2025-03-28 23:30"),                                      # 00:30 local
                  (a, "2025-03-29 12:00"))
    assert [json.loads(d)["period"] for d in sent(ws, "away")["details"]] == \
        ["2025-03-28", "2025-03-29"]
    assert len(out) == 2


def test_custom_schedule(ws, shop):
    ws.automations.set_away(SHOP, "Wochenende!", schedule="custom",
                            spec="sat-sun=00:00-24:00")
    a = shop["anna"]
    receive(ws, SHOP, (a, "2025-03-28 20:00"))              # Friday night: not active
    assert len(sent(ws)) == 0
    receive(ws, SHOP, (a, "2025-03-29 08:00"), (a, "2025-03-30 08:00"))  # Sat + Sun: one period
    receive(ws, SHOP, (a, "2025-03-31 08:00"))              # Monday: not active
    assert [json.loads(d)["period"] for d in sent(ws)["details"]] == ["2025-03-29 00:00"]


def test_away_uses_each_accounts_own_time_zone(ws, shop):
    ws.accounts.update(VIENNA, timezone="America/New_York")
    ws.automations.set_away(SHOP, "Berlin weg.")
    ws.automations.set_away(VIENNA, "New York weg.")
    ny = ws.contacts.add(VIENNA, ANNA, name="Anna in NY")["contact_id"]
    # Tue 2025-03-11 15:00 UTC: 16:00 in Berlin (open), 11:00 in New York (open)
    # Tue 2025-03-11 21:00 UTC: 22:00 in Berlin (closed), 17:00 in New York (open)
    assert len(receive(ws, SHOP, (shop["anna"], "2025-03-11 15:00"))) == 0
    assert len(receive(ws, VIENNA, (ny, "2025-03-11 15:00"))) == 0
    assert len(receive(ws, SHOP, (shop["anna"], "2025-03-11 21:00"))) == 1
    assert len(receive(ws, VIENNA, (ny, "2025-03-11 21:00"))) == 0
    out = receive(ws, VIENNA, (ny, "2025-03-11 23:30"))  # 19:30 in New York
    assert out["body"].tolist() == ["New York weg."] and out["contact_id"].tolist() == [ny]


def test_greeting_and_away_together(ws, shop):
    ws.automations.set_greeting(SHOP, "Hallo!")
    ws.automations.set_away(SHOP, "Weg.")
    out = receive(ws, SHOP, (shop["anna"], "2025-03-29 10:00"))
    assert out["kind"].tolist() == ["greeting", "away"]
    assert out["message_id"].nunique() == 2


# --- scopes, enabled, idempotence ----------------------------------------------------------------------

def test_scope_unknown_contacts(ws, shop):
    ws.automations.set_greeting(SHOP, "Willkommen!", scope="unknown_contacts")
    later = datetime.now(UTC) + timedelta(days=1)  # known contacts were added before this
    assert len(receive(ws, SHOP, (shop["anna"], later))) == 0
    # a contact that ingestion creates for this message is unknown
    new = int(ws.contacts.ensure(SHOP, pd.DataFrame({"wa_id": ["491701000009"]}))[0])
    assert len(receive(ws, SHOP, (new, datetime.now(UTC) - timedelta(seconds=5)))) == 1
    # the batch may say so explicitly, overriding the derivation
    assert len(receive(ws, SHOP, (shop["ben"], later), new_contact=[True])) == 1


def test_scope_only_and_except_labels(ws, shop):
    a, b = shop["anna"], shop["ben"]
    ws.labels.create(SHOP, "VIP")
    ws.labels.create(SHOP, "Offen")
    ws.labels.assign(SHOP, "VIP", [a])
    ws.automations.set_greeting(SHOP, "Hallo VIP!", scope="only_labels", labels=["vip"])
    ws.automations.set_away(SHOP, "Weg.", scope="except_labels", labels=["VIP", "Offen"])
    out = receive(ws, SHOP, (a, "2025-03-29 10:00"), (b, "2025-03-29 10:00"))
    assert sorted(zip(out["contact_id"], out["kind"], strict=True)) == \
        sorted([(a, "greeting"), (b, "away")])
    # a label on the contact's chat counts too
    ws.labels.assign(SHOP, "Offen", chats=[BEN])
    receive(ws, SHOP, (b, "2025-04-05 10:00"))  # a new away period
    assert len(sent(ws, "away")) == 1


def test_disabled_rules_send_nothing(ws, shop):
    ws.automations.set_greeting(SHOP, "Hallo!", enabled=False)
    ws.automations.set_away(SHOP, "Weg.")
    ws.automations.disable(SHOP, "away")
    assert len(receive(ws, SHOP, (shop["anna"], "2025-03-29 10:00", "wamid.x"))) == 0
    assert ws.automations.list(SHOP)["enabled"].tolist() == [False, False]
    ws.automations.enable(SHOP, "greeting")
    assert ws.automations.process_inbound(["wamid.x"])["kind"].tolist() == ["greeting"]


def test_applying_the_same_messages_twice_adds_nothing(ws, shop):
    ws.automations.set_greeting(SHOP, "Hallo!")
    ws.automations.set_away(SHOP, "Weg.")
    new = receive(ws, SHOP, (shop["anna"], "2025-03-29 10:00", "w1"),
                  (shop["ben"], "2025-03-29 10:00", "w2"), apply=False)
    with ws.transaction() as con:
        first = automations.apply(con, new)
    with ws.transaction() as con:
        again = automations.apply(con, pd.concat([new, new]))
    assert len(first) == 4 and len(again) == 0
    assert ws.automations.process_inbound(["w1", "w2"]).empty
    assert len(sent(ws)) == 4
    # a changed rule text does not resend either
    ws.automations.set_greeting(SHOP, "Neu!")
    assert ws.automations.process_inbound(["w1"]).empty


def test_rules_only_answer_their_own_account(ws, shop):
    ws.automations.set_greeting(VIENNA, "Servus!")
    assert len(receive(ws, SHOP, (shop["anna"], "2025-03-29 10:00"))) == 0


def test_apply_with_an_empty_or_minimal_batch(ws, shop):
    ws.automations.set_greeting(SHOP, "Hallo!")
    with ws.transaction() as con:
        assert automations.apply(con, pd.DataFrame()).empty
        with pytest.raises(InvalidValue):
            automations.apply(con, pd.DataFrame({"message_id": ["x"]}))
        # rows without a contact (e.g. an unknown sender) are skipped
        frame = pd.DataFrame({"account_id": [1], "contact_id": [None], "message_id": ["x"],
                              "created_at": ["2025-03-29 10:00"]})
        assert automations.apply(con, frame).empty
    with pytest.raises(NotFound):
        ws.automations.process_inbound(["no-such-message"])


# --- settings ---------------------------------------------------------------------------------------

def test_set_replaces_the_rule_and_validates(ws, shop):
    first = ws.automations.set_greeting(SHOP, "Hallo!")
    second = ws.automations.set_greeting(SHOP, "Moin {first_name}!", silence_days=7)
    assert first["automation_id"] == second["automation_id"]
    assert (second["text"], second["silence_days"]) == ("Moin {first_name}!", 7)
    assert ws.automations.list(SHOP)["kind"].tolist() == ["greeting"]
    with pytest.raises(TemplateError):
        ws.automations.set_greeting(SHOP, "Hallo {name!r}")
    for kwargs in ({"silence_days": 0}, {"scope": "vips"}, {"scope": "only_labels"},
                   {"labels": ["VIP"]}):
        with pytest.raises(InvalidValue):
            ws.automations.set_greeting(SHOP, "Hallo!", **kwargs)
    with pytest.raises(NotFound):
        ws.automations.set_greeting(SHOP, "Hallo!", scope="only_labels", labels=["no such"])
    for kwargs in ({"schedule": "sometimes"}, {"schedule": "custom"},
                   {"schedule": "always", "spec": "sat=10:00-12:00"},
                   {"schedule": "custom", "spec": "sat=25:00-26:00"}):
        with pytest.raises(InvalidValue):
            ws.automations.set_away(SHOP, "Weg.", **kwargs)
    ws.accounts.update(SHOP, business_hours=None)
    with pytest.raises(InvalidValue):  # no hours: never outside them
        ws.automations.set_away(SHOP, "Weg.")
    assert ws.automations.delete(SHOP, "greeting")["kind"] == "greeting"
    with pytest.raises(NotFound):
        ws.automations.get(SHOP, "greeting")


def test_away_intervals_wrap_and_whole_week():
    hours = {"mon": [["09:00", "18:00"]], "tue": [], "wed": [], "thu": [], "fri": [],
             "sat": [], "sun": []}
    rows = automations.away_intervals("outside_hours", None, hours)
    # Monday 18:00 until Monday 09:00 a week later is one period, split at the week's edge
    assert rows == [(0, 540, 10080 - 1080, False), (1080, 10080, -1080, False)]
    closed = {d: [] for d in hours}
    assert automations.away_intervals("outside_hours", None, closed) == [(0, 10080, 0, True)]
    assert automations.away_intervals("outside_hours", None, None) == []
    assert automations.away_intervals("always", None, None) == [(0, 10080, 0, True)]


def test_cli_automations(tmp_path):
    from click.testing import CliRunner

    from bizchat.cli import main

    def cli(*args, ok=True):
        result = CliRunner().invoke(main, ["--workspace", str(tmp_path / "c.duckdb"), *args])
        assert (result.exit_code == 0) == ok, result.output
        return result.output

    cli("init")  # only init creates a workspace
    cli("accounts", "add", SHOP, "--name", "Blumen Berg")
    out = cli("automations", "set-away", "Weg.", "--account", SHOP, ok=False)
    assert "no business hours" in out
    cli("labels", "create", "VIP", "--account", SHOP)
    assert "Greeting saved (on, scope only_labels)" in cli(
        "automations", "set-greeting", "Hallo {first_name}!", "--account", SHOP,
        "--scope", "only_labels", "--label", "VIP", "--silence-days", "7")
    assert "schedule custom" in cli("automations", "set-away", "Wochenende", "--account", SHOP,
                                    "--schedule", "custom", "--spec", "sat-sun=00:00-24:00")
    cli("automations", "disable", "away", "--account", SHOP)
    listing = cli("automations", "list", "--account", SHOP)
    assert "greeting" in listing and "away" in listing and "False" in listing
    assert "is on" in cli("automations", "enable", "away", "--account", SHOP)
    import bizchat

    ws = bizchat.open(tmp_path / "c.duckdb")
    assert ws.automations.list(SHOP)["enabled"].tolist() == [True, True]
    greeting = ws.automations.get(SHOP, "greeting")
    assert (greeting["silence_days"], greeting["scope_labels"]) == (7, ["VIP"])


def test_through_webhook_ingestion(ws):
    """The path production takes: webhook bodies -> ingest_bodies -> apply, one transaction."""
    from webhook_samples import PNID, dumps, text_message

    from bizchat.ingest.payloads import payload_id
    from bizchat.ingest.webhooks import ingest_bodies

    ws.accounts.add("+49 30 901820", name="Lindenblatt Verlag", phone_number_id=PNID,
                    business_hours=HOURS)
    ws.automations.set_greeting("+49 30 901820", "Willkommen, {first_name}!",
                                scope="unknown_contacts")
    ws.automations.set_away("+49 30 901820", "Wir antworten ab Montag.")
    t0 = int(datetime(2025, 3, 29, 10, tzinfo=UTC).timestamp())  # a Saturday

    def ingest(*docs):
        items = [(payload_id(dumps(d)), datetime.now(UTC), dumps(d).decode()) for d in docs]
        with ws.transaction() as con:
            return ingest_bodies(con, items)

    first = text_message("491701234567", "wamid.A1", "Hallo", t0, name="Erika Muster")
    ingest(first, text_message("491701234567", "wamid.A2", "Noch da?", t0 + 60,
                               name="Erika Muster"))
    replies = sent(ws)
    assert replies["body"].tolist() == ["Willkommen, Erika!", "Wir antworten ab Montag."]
    assert {json.loads(d)["inbound_message_id"] for d in replies["details"]} == {"wamid.A1"}
    ingest(first)  # a replayed payload answers nothing
    assert len(sent(ws)) == 2
