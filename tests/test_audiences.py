"""Audiences: who is selected, who is excluded and why, counted by hand on small workspaces;
and the property that no marketing message is ever queued without a current opt-in."""

from __future__ import annotations

import tempfile
from datetime import UTC, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pandas as pd
import pytest
from broadcast_helpers import T0, account, by_contact, contact, deliver, inbound, service
from conftest import copy_workspace
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import bizchat
from bizchat.campaigns.audiences import Audience, Limits, sample, split
from bizchat.errors import InvalidValue, NotFound


@pytest.fixture(scope="module")
def world_template(empty_template, tmp_path_factory):
    """The world below, built once per module (per xdist worker): about 1.2 CPU-s of
    service calls that every test here would otherwise repeat."""
    path = copy_workspace(empty_template, tmp_path_factory.mktemp("audience_world"))
    return path, _build_world(bizchat.open(path))


@pytest.fixture
def world(ws, world_template):
    """The test's workspace becomes a copy of the module's world (same key file: both are
    copies of the session's empty workspace); returns (account, {n: contact_id})."""
    path, built = world_template
    assert copy_workspace(path, ws.path.parent) == ws.path
    return built


def _build_world(ws):
    """Seven contacts of one Berlin account (quiet hours 21:00-08:00):

    n  name   labels         consent                         other
    1  Anna   VIP, Krimi     marketing opt-in                de, wrote 2 days ago
    2  Bernd  VIP            marketing opt-in                en, wrote 20 days ago
    3  Clara  Krimi          none
    4  Dora   Kinder         marketing opt-in, then opt-out
    5  Emil   VIP, Kinder    marketing opt-in                lives in New York
    6  Fritz  -              marketing opt-in, service opt-out
    7  Gina   Krimi, Kinder  marketing opt-in                city Graz
    """
    acc = account(ws)
    for name in ("VIP", "Krimi", "Kinder"):
        ws.labels.create(acc["account_id"], name)
    people = {
        1: contact(ws, acc, 1, name="Anna Alt", labels=["VIP", "Krimi"], language="de"),
        2: contact(ws, acc, 2, name="Bernd", labels=["VIP"], language="en"),
        3: contact(ws, acc, 3, name="Clara", labels=["Krimi"], opt_in=False),
        4: contact(ws, acc, 4, name="Dora", labels=["Kinder"]),
        5: contact(ws, acc, 5, name="Emil", labels=["VIP", "Kinder"], timezone="America/New_York"),
        6: contact(ws, acc, 6, name="Fritz", service_opt_out=True),
        7: contact(ws, acc, 7, name="Gina", labels=["Krimi", "Kinder"], attributes={"city": "Graz"}),
    }
    ws.consent.opt_out(people[4]["contact_id"], "marketing", source="keyword",
                       at=T0 - timedelta(days=5))
    inbound(ws, acc, people[1]["contact_id"], T0 - timedelta(days=2))
    inbound(ws, acc, people[2]["contact_id"], T0 - timedelta(days=20))
    ids = {n: p["contact_id"] for n, p in people.items()}
    return acc, ids


def _freeze(ws, acc, *, at=T0, category="marketing", body="Hallo {first_name}!", **kwargs):
    bc = service(ws)
    made = bc.create(acc["account_id"], f"Test {datetime.now(UTC).timestamp()}", body=body,
                     category=category, seed=kwargs.pop("seed", 7), **kwargs)
    result = bc.schedule(made["broadcast_id"], at)
    return made["broadcast_id"], result


def _states(ws, broadcast_id, ids):
    back = {v: k for k, v in ids.items()}
    return {back[c]: (s, r) for c, (s, r, _) in by_contact(ws, broadcast_id).items()}


def test_labels_any_marketing_exclusions_by_reason(ws, world):
    acc, ids = world
    bid, result = _freeze(ws, acc, labels_any=["VIP", "krimi"])
    assert _states(ws, bid, ids) == {
        1: ("queued", None), 2: ("queued", None), 3: ("skipped", "no_consent"),
        5: ("queued", None), 7: ("queued", None)}
    # Contact 5 is in their quiet hours then: queued, and the outbox defers them (issue 16).
    assert result["candidates"] == 5 and result["queued"] == 4
    assert result["skipped"] == {"no_consent": 1} and result["quiet_hours"] == 1


@pytest.mark.slow
def test_labels_all_none_language_attributes(ws, world):
    acc, ids = world
    bid, _ = _freeze(ws, acc, labels_all=["VIP", "Krimi"])
    assert _states(ws, bid, ids) == {1: ("queued", None)}
    bid, _ = _freeze(ws, acc, labels_none=["Kinder"])
    assert _states(ws, bid, ids) == {1: ("queued", None), 2: ("queued", None),
                                     3: ("skipped", "no_consent"), 6: ("queued", None)}
    bid, _ = _freeze(ws, acc, audience={"language": "en"})
    assert _states(ws, bid, ids) == {2: ("queued", None)}
    bid, _ = _freeze(ws, acc, audience={"attributes": {"city": "Graz"}})
    assert _states(ws, bid, ids) == {7: ("queued", None)}


@pytest.mark.slow
def test_opted_out_contact_is_counted_by_reason(ws, world):
    acc, ids = world
    bid, result = _freeze(ws, acc, labels_any=["Kinder"])
    assert _states(ws, bid, ids) == {4: ("skipped", "opted_out"), 5: ("queued", None),
                                     7: ("queued", None)}
    assert result["skipped"] == {"opted_out": 1} and result["quiet_hours"] == 1


def test_utility_respects_service_opt_out_only(ws, world):
    acc, ids = world
    bid, _ = _freeze(ws, acc, category="utility", body="Ihre Bestellung ist da, {first_name}.")
    assert _states(ws, bid, ids) == {
        1: ("queued", None), 2: ("queued", None), 3: ("queued", None), 4: ("queued", None),
        5: ("queued", None), 6: ("skipped", "opted_out"), 7: ("queued", None)}


def test_last_activity(ws, world):
    acc, ids = world
    bid, _ = _freeze(ws, acc, audience={"active_within_days": 7})
    assert _states(ws, bid, ids) == {1: ("queued", None)}
    bid, _ = _freeze(ws, acc, audience={"inactive_for_days": 7, "labels_any": ["VIP"]})
    assert _states(ws, bid, ids) == {2: ("queued", None), 5: ("queued", None)}
    bid, _ = _freeze(ws, acc, audience={"active_within_days": 30})
    assert set(_states(ws, bid, ids)) == {1, 2}


@pytest.mark.slow
def test_past_campaign_behaviour(ws, world):
    acc, ids = world
    # 16:00 in Berlin, 10:00 in New York: nobody is in quiet hours.
    past, _ = _freeze(ws, acc, at=T0 - timedelta(days=10) + timedelta(hours=6),
                      labels_any=["VIP"])
    deliver(ws, past, {ids[1]: "read", ids[2]: "delivered", ids[5]: "failed"})
    bid, _ = _freeze(ws, acc, audience={"received": [past]})
    assert set(_states(ws, bid, ids)) == {1, 2}
    bid, _ = _freeze(ws, acc, audience={"read": [past]})
    assert set(_states(ws, bid, ids)) == {1}
    bid, _ = _freeze(ws, acc, audience={"not_read": past})
    assert set(_states(ws, bid, ids)) == {2}
    with pytest.raises(NotFound):
        service(ws).create(acc["account_id"], "x", body="Hallo", audience={"read": [999]})


@pytest.mark.slow
def test_frequency_cap_counts_sent_and_pending_marketing_not_failed(ws, world):
    acc, ids = world
    bc = service(ws)
    bc.set_limits(acc["account_id"], marketing_cap_count=1, marketing_cap_days=7)
    three_days_ago = T0 - timedelta(days=3) + timedelta(hours=6)
    past, _ = _freeze(ws, acc, at=three_days_ago, labels_any=["VIP"])
    deliver(ws, past, {ids[1]: "read", ids[5]: "failed"})       # Bernd's is never sent
    # Another broadcast is already frozen for tomorrow and holds Bernd.
    _freeze(ws, acc, at=T0 + timedelta(days=1), audience={"language": "en"})
    # A utility message does not count towards the marketing cap.
    _freeze(ws, acc, at=T0 - timedelta(days=1), category="utility", body="Paket ist da")
    bid, result = _freeze(ws, acc, labels_any=["VIP", "Krimi"])
    assert _states(ws, bid, ids) == {
        1: ("skipped", "frequency_cap"), 2: ("skipped", "frequency_cap"),
        3: ("skipped", "no_consent"), 5: ("queued", None), 7: ("queued", None)}
    # Eight days later the sent one has left the window; the pending one is far enough too.
    bid, _ = _freeze(ws, acc, at=T0 + timedelta(days=9), labels_any=["VIP"])
    assert _states(ws, bid, ids)[1] == ("queued", None)
    bc.set_limits(acc["account_id"], marketing_cap_days=0)     # cap off
    bid, _ = _freeze(ws, acc, labels_all=["VIP", "Krimi"])
    assert _states(ws, bid, ids) == {1: ("queued", None)}


def test_quiet_hours_in_the_recipients_zone(ws, world):
    acc, ids = world
    bc = service(ws)
    # 20:30 UTC = 22:30 in Berlin (quiet), 16:30 in New York (not quiet).
    bid, _ = _freeze(ws, acc, at=T0.replace(hour=20, minute=30), labels_any=["VIP"])
    # Quiet hours are decided at hand-off (the outbox defers); freezing only counts them.
    assert {s for s, _ in _states(ws, bid, ids).values()} == {"queued"}
    assert _["quiet_hours"] == 2
    bc.set_limits(acc["account_id"], quiet_hours=None)
    bid, result = _freeze(ws, acc, at=T0.replace(hour=20, minute=30), labels_any=["VIP"])
    assert {s for s, _ in _states(ws, bid, ids).values()} == {"queued"}
    assert result["quiet_hours"] == 0


def test_quiet_hours_rule():
    lim = Limits(None, 80, 2, 7, time(21), time(8), "Europe/Berlin")
    berlin = "Europe/Berlin"
    assert lim.quiet_at(datetime(2025, 1, 6, 19, 59, tzinfo=UTC), berlin) is False   # 20:59
    assert lim.quiet_at(datetime(2025, 1, 6, 20, 0, tzinfo=UTC), berlin) is True     # 21:00
    assert lim.quiet_at(datetime(2025, 1, 6, 6, 59, tzinfo=UTC), berlin) is True     # 07:59
    assert lim.quiet_at(datetime(2025, 1, 6, 7, 0, tzinfo=UTC), berlin) is False     # 08:00
    assert lim.quiet_at(datetime(2025, 7, 6, 6, 0, tzinfo=UTC), berlin) is False     # 08:00 CEST
    assert lim.quiet_at(datetime(2025, 1, 6, 7, 0, tzinfo=UTC), "Not/AZone") is False
    midday = Limits(None, 80, 2, 7, time(12), time(14), "Europe/Berlin")
    assert midday.quiet_at(datetime(2025, 1, 6, 12, 0, tzinfo=UTC), berlin) is True
    assert midday.quiet_at(datetime(2025, 1, 6, 14, 0, tzinfo=UTC), berlin) is False
    off = Limits(None, 80, 2, 7, None, None, "Europe/Berlin")
    assert off.quiet_at(datetime(2025, 1, 6, 23, 0, tzinfo=UTC), berlin) is False


def test_missing_placeholder_skip_or_fallback(ws, world):
    acc, ids = world
    body = "Hallo {first_name} aus {city}!"
    bid, result = _freeze(ws, acc, body=body, labels_any=["Krimi"])
    assert _states(ws, bid, ids) == {1: ("skipped", "missing_placeholder"),
                                     3: ("skipped", "no_consent"), 7: ("queued", None)}
    bid, _ = _freeze(ws, acc, body=body, labels_any=["Krimi"], fallbacks={"city": "der Nähe"})
    frozen = service(ws).recipients(bid).set_index("contact_id")
    assert frozen.loc[ids[1], "body"] == "Hallo Anna aus der Nähe!"
    assert frozen.loc[ids[7], "body"] == "Hallo Gina aus Graz!"


def test_invalid_number_and_user_id_only_contacts(ws, world):
    acc, ids = world
    bad = int(ws.contacts.ensure(acc["account_id"], pd.DataFrame({"wa_id": ["12345"]})).iloc[0])
    bsuid = int(ws.contacts.ensure(acc["account_id"], pd.DataFrame(
        {"user_id": ["DE.1234567890abcdef"], "name": ["Uwe"]})).iloc[0])
    for c in (bad, bsuid):
        ws.consent.opt_in(c, "marketing", source="in_store", at=T0 - timedelta(days=1))
    bid, _ = _freeze(ws, acc, audience={"contacts": [bad, bsuid]})
    got = by_contact(ws, bid)
    assert got[bad][:2] == ("skipped", "invalid_number")
    assert got[bsuid][:2] == ("queued", None)
    wa = service(ws).recipients(bid)
    assert ws.sql("SELECT wa_id FROM broadcast_recipients WHERE broadcast_id = ? AND contact_id = ?",
                  [bid, bsuid])["wa_id"].tolist() == ["DE.1234567890abcdef"]
    assert len(wa) == 2


@pytest.mark.slow
def test_sample_and_split_are_seeded_and_exact(ws):
    acc = account(ws)
    people = [contact(ws, acc, n, name=f"P{n}")["contact_id"] for n in range(20)]
    bc = service(ws)
    bc.set_limits(acc["account_id"], marketing_cap_days=0)  # the drafts below all go at T0

    def frozen(seed, **kw):
        made = bc.create(acc["account_id"], f"S{seed}{kw}", body="Hallo {first_name}",
                         seed=seed, **kw)
        bc.schedule(made["broadcast_id"], T0)
        return by_contact(ws, made["broadcast_id"])

    one = frozen(3, audience={"sample": 10}, variants=["Hi {first_name}"], control=0.2)
    assert len(one) == 10 and set(one) <= set(people)
    variants = pd.Series([v for _, _, v in one.values()]).value_counts().to_dict()
    assert variants == {"A": 4, "B": 4, "control": 2}
    assert {s for s, r, v in one.values() if v == "control"} == {"skipped"}
    assert {r for s, r, v in one.values() if v == "control"} == {"control"}
    assert frozen(3, audience={"sample": 10}, variants=["Hi {first_name}"], control=0.2) == one
    other = frozen(4, audience={"sample": 10}, variants=["Hi {first_name}"], control=0.2)
    assert other != one
    half = frozen(5, audience={"sample": 0.25})
    assert len(half) == 5


def test_split_and_sample_functions():
    variants = [{"variant": "A"}, {"variant": "B", "share": None}, {"variant": "C"}]
    labels = split(10, 1, 0.0, variants)
    assert sorted(pd.Series(labels).value_counts().tolist()) == [3, 3, 4]
    weighted = split(100, 1, 0.1, [{"variant": "A", "share": 3}, {"variant": "B", "share": 1}])
    assert pd.Series(weighted).value_counts().to_dict() == {"A": 68, "B": 22, "control": 10}
    assert (split(50, 9, 0.2, variants) == split(50, 9, 0.2, variants)).all()
    assert sample(10, 1, None).all() and sample(10, 1, 20).all()
    assert sample(10, 1, 3).sum() == 3 and sample(10, 1, 0.5).sum() == 5


def test_audience_parsing():
    a = Audience.parse('{"labels": "VIP, Krimi", "none_of": ["Kinder"], "sample": "0.5", '
                       '"consent": "marketing"}')
    assert a.labels_any == ("VIP", "Krimi") and a.labels_none == ("Kinder",) and a.sample == 0.5
    assert Audience.parse(a.to_dict()) == a
    assert "labels any of VIP, Krimi" in a.describe()
    with pytest.raises(InvalidValue, match="Unknown audience key"):
        Audience.parse({"labelz": ["VIP"]})
    with pytest.raises(InvalidValue):
        Audience.parse({"sample": -1})
    with pytest.raises(InvalidValue):
        Audience.parse({"active_within_days": "soon"})
    assert Audience.parse(None).describe() == "all contacts"


def test_unknown_label_fails_when_composing(ws, world):
    acc, _ = world
    with pytest.raises(NotFound, match="no label"):
        service(ws).create(acc["account_id"], "x", body="Hallo", labels_any=["Gibtsnicht"])


# --- the consent property -------------------------------------------------------------------

LABELS = ("VIP", "Krimi", "Kinder")
_event = st.tuples(st.sampled_from(["marketing", "service"]), st.sampled_from(["opt_in", "opt_out"]),
                   st.integers(1, 40))
_person = st.fixed_dictionaries({
    "labels": st.sets(st.sampled_from(LABELS)),
    "events": st.lists(_event, max_size=4),
})


_WORKSPACE: dict = {}


def _shared_workspace():
    """One file for every example (each gets its own account: accounts never share
    contacts, labels or broadcasts), so the examples stay quick."""
    if "ws" not in _WORKSPACE:
        folder = tempfile.mkdtemp(prefix="bizchat-property-")
        _WORKSPACE["ws"] = bizchat.open(Path(folder) / "p.duckdb")
        _WORKSPACE["n"] = 0
    _WORKSPACE["n"] += 1
    return _WORKSPACE["ws"], _WORKSPACE["n"]


@pytest.mark.slow
@settings(max_examples=30, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(people=st.lists(_person, min_size=1, max_size=6),
       any_of=st.sets(st.sampled_from(LABELS)), all_of=st.sets(st.sampled_from(LABELS)),
       none_of=st.sets(st.sampled_from(LABELS)),
       category=st.sampled_from(["marketing", "utility"]),
       hour=st.integers(0, 23))
def test_no_marketing_message_is_queued_without_a_current_opt_in(people, any_of, all_of, none_of,
                                                                  category, hour):
    from bizchat.people import consent, contacts

    ws, n_account = _shared_workspace()
    acc = account(ws, f"+49 30 {900000 + n_account}", f"Laden {n_account}")
    for name in LABELS:
        ws.labels.create(acc["account_id"], name)
    latest = {}
    events = []
    with ws.transaction() as con:
        ids = contacts.ensure_contacts(con, acc["account_id"], pd.DataFrame({
            "wa_id": [f"4917{n_account:04d}{n:04d}" for n in range(len(people))],
            "name": [f"P{n}" for n in range(len(people))]})).astype(int).tolist()
        for cid, person in zip(ids, people, strict=True):
            for k, (purpose, action, days) in enumerate(person["events"]):
                when = T0 - timedelta(days=days, seconds=k)
                events.append({"contact_id": cid, "purpose": purpose, "action": action,
                               "source": "test", "recorded_at": when})
                key = (cid, purpose)
                if key not in latest or when >= latest[key][0]:
                    latest[key] = (when, action)
        consent.record_events(con, pd.DataFrame(events, columns=[
            "contact_id", "purpose", "action", "source", "recorded_at"]))
    for name in LABELS:
        members = [cid for cid, p in zip(ids, people, strict=True) if name in p["labels"]]
        if members:
            ws.labels.assign(acc["account_id"], name, members)
    at = T0.replace(hour=hour)
    bc = service(ws)
    made = bc.create(acc["account_id"], "Eigenschaft", body="Hallo {first_name}",
                     category=category, labels_any=sorted(any_of), labels_all=sorted(all_of),
                     labels_none=sorted(none_of), seed=1)
    counts = bc.schedule(made["broadcast_id"], at)
    frozen = by_contact(ws, made["broadcast_id"])
    current = ws.sql("SELECT contact_id FROM current_consent WHERE account_id = ? AND "
                     "purpose = 'marketing' AND state = 'opt_in'", [acc["account_id"]])
    opted_in = set(current["contact_id"].astype(int))
    quiet = acc_quiet(at)
    for cid, person in zip(ids, people, strict=True):
        matches = ((not any_of or person["labels"] & any_of) and all_of <= person["labels"]
                   and not (person["labels"] & none_of))
        assert (cid in frozen) == bool(matches)
        if cid not in frozen:
            continue
        state, reason, _ = frozen[cid]
        marketing = latest.get((cid, "marketing"), (None, None))[1]
        service_state = latest.get((cid, "service"), (None, None))[1]
        if category == "marketing":
            if state == "queued":           # the property: only with a current opt-in
                assert marketing == "opt_in" and cid in opted_in
            expected = ("opted_out" if marketing == "opt_out" else "no_consent"
                        if marketing != "opt_in" else None)
        else:
            expected = "opted_out" if service_state == "opt_out" else None
        assert (state, reason) == (("queued", None) if expected is None else ("skipped", expected))
    # Quiet hours only counted when freezing; the outbox defers them at hand-off.
    assert counts["quiet_hours"] == (counts["queued"] if quiet else 0)


def acc_quiet(at: datetime) -> bool:
    """The default quiet hours (21:00-08:00) in Berlin, where these contacts live."""
    local = at.astimezone(ZoneInfo("Europe/Berlin")).time()
    return local >= time(21) or local < time(8)
