"""Broadcasts: compose, preview, freeze, cancel, follow; the CLI on top."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pandas as pd
import pytest
from broadcast_helpers import T0, account, by_contact, contact, deliver, inbound, service
from click.testing import CliRunner

from bizchat.campaigns.transports.simulated import SimRates, SimulatedTransport
from bizchat.cli import main
from bizchat.errors import Conflict, InvalidValue, NotFound, TemplateError


@pytest.fixture
def shop(ws):
    """Four opted-in contacts (1 and 2 labelled VIP; 3 without a name), one without
    consent."""
    acc = account(ws)
    ws.labels.create(acc["account_id"], "VIP")
    ids = {1: contact(ws, acc, 1, name="Anna Alt", labels=["VIP"])["contact_id"],
           2: contact(ws, acc, 2, name="Bernd Baum", labels=["VIP"],
                      attributes={"punkte": 250})["contact_id"],
           3: contact(ws, acc, 3, name=None)["contact_id"],
           4: contact(ws, acc, 4, name="Carla")["contact_id"],
           5: contact(ws, acc, 5, name="Dirk", opt_in=False)["contact_id"]}
    return acc, ids


def test_create_registers_the_template_and_variants(ws, shop):
    acc, _ = shop
    bc = service(ws)
    made = bc.create(acc["phone_e164"], "Sommer-Aktion 2025", body="Hallo {first_name}!",
                     footer="Abmelden mit STOP", buttons=["Keine Werbung"],
                     variants=["Hi {first_name}, neu da!", {"body": "Moin {first_name}",
                                                             "share": 2}],
                     control=0.1, seed=42, values={"aktion": "Sommer"})
    assert made["status"] == "draft" and made["category"] == "marketing"
    assert made["template"] == "sommer_aktion_2025" and made["seed"] == 42
    assert [(v["variant"], v["template"], v["share"]) for v in made["variants"]] == [
        ("A", "sommer_aktion_2025", 0.25), ("B", "sommer_aktion_2025_b", 0.25),
        ("C", "sommer_aktion_2025_c", 0.5)]
    templates = ws.sql("SELECT name, body, footer, buttons FROM templates ORDER BY template_id")
    assert templates["name"].tolist() == ["sommer_aktion_2025", "sommer_aktion_2025_b",
                                          "sommer_aktion_2025_c"]
    assert set(templates["footer"]) == {"Abmelden mit STOP"}     # B and C take A's footer
    # The same name again gets a free template name.
    again = bc.create(acc["account_id"], "Sommer-Aktion 2025", body="Hallo nochmal")
    assert again["template"] == "sommer_aktion_2025_2"
    assert bc.get(made["broadcast_id"])["variants"][0]["values"] == {"aktion": "Sommer"}


def test_create_with_an_existing_template_and_checks(ws, shop):
    acc, _ = shop
    bc = service(ws)

    ws.templates.create(acc["account_id"], "paket", "Ihr Paket, {first_name}", category="utility")
    made = bc.create(acc["account_id"], "Lieferung", template="paket")
    assert made["category"] == "utility" and made["template"] == "paket"
    with pytest.raises(InvalidValue, match="utility template"):
        bc.create(acc["account_id"], "Falsch", template="paket", category="marketing")
    with pytest.raises(InvalidValue, match="either as a body"):
        bc.create(acc["account_id"], "Beides", template="paket", body="x")
    with pytest.raises(InvalidValue, match="control"):
        bc.create(acc["account_id"], "Kontrolle", body="x", control=1.0)
    with pytest.raises(InvalidValue, match="fallbacks"):
        bc.create(acc["account_id"], "Ersatz", body="x", missing="fallback")
    with pytest.raises(TemplateError):
        bc.create(acc["account_id"], "Böse", body="Hallo {first_name.__class__}")
    with pytest.raises(TemplateError):
        bc.create(acc["account_id"], "Böse B", body="Hallo", variants=["{0}"])
    # Nothing of the refused ones was written (one transaction each).
    assert ws.sql("SELECT count(*) AS n FROM broadcasts")["n"].item() == 1
    assert ws.sql("SELECT count(*) AS n FROM templates")["n"].item() == 1
    with pytest.raises(NotFound):
        bc.get(99)


def test_schedule_freezes_what_the_preview_shows(ws, shop):
    acc, ids = shop
    bc = service(ws)
    made = bc.create(acc["account_id"], "Punkte", body="Hallo {first_name}, {punkte} Punkte!",
                     fallbacks={"punkte": "ein paar"}, header="Für {first_name}",
                     variants=["{first_name}: {punkte} Punkte warten."], seed=5)
    bid = made["broadcast_id"]
    drafts = {(n, v): bc.preview(bid, ids[n], variant=v).text
              for n in (1, 2, 4) for v in ("A", "B")}
    assert drafts[2, "A"] == "Für Bernd\n\nHallo Bernd, 250 Punkte!"
    assert drafts[1, "B"] == "Für Anna\n\nAnna: ein paar Punkte warten."
    with pytest.raises(TemplateError) as err:          # no name: first_name has no fallback
        bc.preview(bid, ids[3])
    assert err.value.placeholder == "first_name"
    result = bc.schedule(bid, T0)
    assert result["queued"] == 3 and result["skipped"] == {"missing_placeholder": 1,
                                                           "no_consent": 1}
    frozen = bc.recipients(bid).set_index("contact_id")
    for n in (1, 2, 4):
        variant = frozen.loc[ids[n], "variant"]
        assert frozen.loc[ids[n], "body"] == drafts[n, variant]
        shown = bc.preview(bid, ids[n])
        assert (shown.text, shown.variant, shown.state) == (drafts[n, variant], variant, "queued")
    assert bc.preview(bid, ids[5]).skip_reason == "no_consent"
    rows = ws.sql("SELECT * FROM broadcast_recipients WHERE broadcast_id = ? AND state = 'queued'",
                  [bid])
    assert rows["idempotency_key"].is_unique and rows["idempotency_key"].str.len().eq(32).all()
    params = {int(r.contact_id): json.loads(r.params) for r in rows.itertuples()}
    assert params[ids[2]] == {"first_name": "Bernd", "punkte": "250"}
    assert params[ids[1]] == {"first_name": "Anna", "punkte": "ein paar"}
    b = bc.get(bid)
    assert b["status"] == "scheduled" and b["scheduled_for"] == T0
    audit = ws.sql("SELECT details FROM audit_log WHERE action = 'broadcast.schedule'")
    assert json.loads(audit["details"].item())["queued"] == 3
    with pytest.raises(Conflict, match="scheduled"):
        bc.schedule(bid, T0)
    with pytest.raises(Conflict):
        bc.update(bid, name="Neu")


def test_wa_id_is_frozen(ws, shop):
    acc, ids = shop
    bc = service(ws)
    made = bc.create(acc["account_id"], "Adresse", body="Hallo", labels_any=["VIP"])
    bc.schedule(made["broadcast_id"], T0)
    rows = ws.sql("SELECT contact_id, wa_id FROM broadcast_recipients ORDER BY contact_id")
    assert rows["wa_id"].tolist() == ["491701000001", "491701000002"]
    outside = bc.preview(made["broadcast_id"], ids[4])
    assert (outside.text, outside.state, outside.skip_reason) == ("Hallo", "skipped",
                                                                  "not_in_audience")


def test_update_a_draft(ws, shop):
    acc, ids = shop
    bc = service(ws)
    made = bc.create(acc["account_id"], "Entwurf", body="Hallo {first_name}", seed=1)
    updated = bc.update(made["broadcast_id"], name="Entwurf 2", audience={"labels_any": ["VIP"]},
                        control=0.5, fallbacks={"first_name": "Kundschaft"}, missing="fallback")
    assert updated["name"] == "Entwurf 2" and updated["control_fraction"] == 0.5
    assert updated["audience"] == {"labels_any": ["VIP"]}
    result = bc.schedule(made["broadcast_id"], T0)
    assert result["candidates"] == 2 and result["skipped"] == {"control": 1}
    with pytest.raises(NotFound):
        bc.update(bc.create(acc["account_id"], "x", body="y")["broadcast_id"],
                  audience={"labels_any": ["Nope"]})


def test_cancel_skips_the_queued_and_is_audited(ws, shop):
    acc, ids = shop
    bc = service(ws)
    made = bc.create(acc["account_id"], "Stopp", body="Hallo {first_name}", fallbacks={
        "first_name": "Kundschaft"})
    bid = made["broadcast_id"]
    bc.schedule(bid, T0)
    deliver(ws, bid, {ids[1]: "delivered"})        # one went out before the cancel
    with ws.transaction() as con:                  # the sender had re-opened it
        con.execute("UPDATE broadcasts SET status = 'sending' WHERE broadcast_id = ?", [bid])
    result = bc.cancel(bid)
    assert result == {"broadcast_id": bid, "cancelled": 3, "previous_status": "sending"}
    states = {n: by_contact(ws, bid)[ids[n]][:2] for n in (1, 2, 3, 4, 5)}
    assert states == {1: ("sent", None), 2: ("skipped", "cancelled"),
                      3: ("skipped", "cancelled"), 4: ("skipped", "cancelled"),
                      5: ("skipped", "no_consent")}
    assert bc.get(bid)["status"] == "cancelled"
    audit = ws.sql("SELECT action, details FROM audit_log WHERE action LIKE 'broadcast.%' "
                   "ORDER BY \"at\"")
    assert audit["action"].tolist() == ["broadcast.create", "broadcast.schedule",
                                        "broadcast.cancel"]
    assert json.loads(audit["details"].iloc[-1])["cancelled_recipients"] == 3
    with pytest.raises(Conflict):
        bc.cancel(bid)
    draft = bc.create(acc["account_id"], "Nie", body="Hallo")
    assert bc.cancel(draft["broadcast_id"])["cancelled"] == 0


def test_funnel_and_show_match_campaign_stats(ws, shop):
    acc, ids = shop
    bc = service(ws)
    made = bc.create(acc["account_id"], "Funnel", body="Hallo", variants=["Hi"], seed=9)
    bid = made["broadcast_id"]
    bc.schedule(bid, T0)
    deliver(ws, bid, {ids[1]: "read", ids[2]: "delivered", ids[3]: "failed"},
            replies={ids[1]: 5, ids[2]: 73 * 60})
    funnel = bc.funnel(bid)
    assert {k: funnel[k] for k in ("sent", "delivered", "read", "failed", "replied")} == {
        "sent": 3, "delivered": 2, "read": 1, "failed": 1, "replied": 1}
    assert funnel["delivery_rate"] == pytest.approx(2 / 3)
    assert funnel["open_rate"] == pytest.approx(1 / 2)
    stats = ws.sql("SELECT sent, delivered, \"read\", failed FROM campaign_stats "
                   "WHERE broadcast_id = ?", [bid]).iloc[0].to_dict()
    assert stats == {"sent": 3, "delivered": 2, "read": 1, "failed": 1}
    info = bc.show(bid)
    states = {(r.state, None if pd.isna(r.skip_reason) else r.skip_reason): r.recipients
              for r in info["states"].itertuples()}
    assert states == {("sent", None): 3, ("queued", None): 1, ("skipped", "no_consent"): 1}
    per = info["by_variant"].set_index("variant")
    assert per["sent"].sum() == 3 and set(per.index) <= {"A", "B"}
    listed = bc.list(acc["account_id"])
    assert listed.loc[listed["broadcast_id"] == bid, "read"].item() == 1


def test_requires_template_follows_the_service_window(ws, shop):
    acc, ids = shop
    bc = service(ws)
    assert bc.requires_template(acc["account_id"], ids[1]) is True      # never wrote
    inbound(ws, acc, ids[1], T0)
    assert bc.requires_template(acc["account_id"], ids[1], at=T0 + timedelta(hours=23)) is False
    assert bc.requires_template(acc["account_id"], ids[1], at=T0 + timedelta(hours=24)) is True
    assert bc.requires_template(acc["account_id"], ids[1], at=T0 - timedelta(minutes=1)) is True
    assert bc.requires_template(acc["phone_e164"], "+49 170 1000001",
                                at=(T0 + timedelta(hours=1)).isoformat()) is False


def test_limits(ws, shop):
    acc, _ = shop
    bc = service(ws)
    assert bc.limits(acc["account_id"])["marketing_cap_count"] == 2
    changed = bc.set_limits(acc["account_id"], messaging_tier=1000 * 2, send_rate=20,
                            quiet_hours="22:30-06:00")
    assert changed["messaging_tier"] == 2000 and changed["send_rate"] == 20
    assert f"{changed['quiet_hours_start']:%H:%M}-{changed['quiet_hours_end']:%H:%M}" == \
        "22:30-06:00"
    for bad in ({"messaging_tier": 300}, {"send_rate": 0}, {"quiet_hours": "22-6"}, {"quiet_hours": "1:00-2:00-3:00"},
                {"colour": 1}):
        with pytest.raises(InvalidValue):
            bc.set_limits(acc["account_id"], **bad)
    assert ws.sql("SELECT count(*) AS n FROM audit_log WHERE action = 'account.limits'"
                  )["n"].item() == 1


def test_audience_dry_run_does_not_write(ws, shop):
    acc, ids = shop
    bc = service(ws)
    made = bc.create(acc["account_id"], "Trocken", body="Hallo {first_name}", labels_any=["VIP"])
    frame = bc.audience(made["broadcast_id"], T0)
    assert frame["state"].tolist() == ["queued", "queued"]
    assert ws.sql("SELECT count(*) AS n FROM broadcast_recipients")["n"].item() == 0
    assert bc.get(made["broadcast_id"])["status"] == "draft"


# --- CLI ---------------------------------------------------------------------------------------

def run(path, *args):
    return CliRunner().invoke(main, ["--workspace", str(path), *args])


def test_cli_create_show_plan_preview_schedule_cancel(ws, shop):
    acc, ids = shop
    path = ws.path
    result = run(path, "broadcast", "create", "--account", acc["phone_e164"], "--name", "CLI Test",
                 "--category", "marketing", "--body", "Hallo {first_name}!",
                 "--labels-any", "VIP", "--variant-body", "Hi {first_name}!", "--control", "0",
                 "--seed", "3", "--button", "Zum Shop=https://linde.example/shop",
                 "--button", "Stopp")
    assert result.exit_code == 0, result.output
    bid = int(result.stdout.strip())
    made = service(ws).get(bid)
    assert made["audience"] == {"labels_any": ["VIP"]} and len(made["variants"]) == 2
    result = run(path, "broadcast", "preview", str(bid), "--contact", "0170 1000001")
    assert result.exit_code == 0, result.output
    assert result.stdout == ("Hallo Anna!\n\n[Zum Shop: https://linde.example/shop] [Stopp]\n")
    result = run(path, "broadcast", "plan", str(bid), "--at", T0.isoformat())
    assert result.exit_code == 0, result.output
    assert "2 to send" in result.output and "EUR" in result.output
    result = run(path, "broadcast", "plan", str(bid), "--json")
    assert json.loads(result.stdout)["audience"]["candidates"] == 2
    result = run(path, "broadcast", "schedule", str(bid), "--at", T0.isoformat())
    assert result.exit_code == 0, result.output
    assert "2 queued" in result.output
    result = run(path, "broadcast", "show", str(bid))
    assert result.exit_code == 0, result.output
    assert "queued: 2" in result.output and "Funnel: sent 0" in result.output
    assert "labels any of VIP" in result.output
    result = run(path, "broadcast", "list")
    assert "CLI Test" in result.output
    result = run(path, "broadcast", "cancel", str(bid))
    assert result.exit_code == 0 and "2 queued recipients" in result.output
    result = run(path, "broadcast", "cancel", str(bid))
    assert result.exit_code == 1 and "cancelled" in result.output
    assert "Traceback" not in result.output


def test_cli_errors_are_one_clear_line(ws, shop):
    acc, _ = shop
    result = run(ws.path, "broadcast", "create", "--account", acc["phone_e164"], "--name", "x",
                 "--body", "Hallo {__class__}")
    assert result.exit_code == 1 and "not allowed in a template" in result.output
    result = run(ws.path, "broadcast", "show", "77")
    assert result.exit_code == 1 and "no broadcast 77" in result.output
    result = run(ws.path, "broadcast", "create", "--account", acc["phone_e164"], "--name", "x",
                 "--body", "Hallo", "--labels-all", "Gibtsnicht")
    assert result.exit_code == 1 and "Gibtsnicht" in result.output


def test_cli_limits(ws, shop):
    acc, _ = shop
    result = run(ws.path, "broadcast", "limits", "--account", acc["phone_e164"], "--tier", "250",
                 "--cap", "3/14", "--quiet", "off")
    assert result.exit_code == 0, result.output
    assert "tier 250" in result.output and "3 per 14 days" in result.output
    assert "quiet hours off" in result.output
    result = run(ws.path, "broadcast", "limits", "--account", acc["phone_e164"], "--cap", "drei")
    assert result.exit_code != 0


def test_cli_send_a_draft_through_the_simulated_transport(ws, shop):
    acc, ids = shop
    bc = service(ws)
    bc.set_limits(acc["account_id"], quiet_hours=None)   # "now" may be any time of day
    made = bc.create(acc["account_id"], "Senden", body="Hallo {first_name}", labels_any=["VIP"],
                     seed=11)
    result = run(ws.path, "broadcast", "send", str(made["broadcast_id"]), "--seed", "11")
    assert result.exit_code == 0, result.output
    frozen = bc.recipients(made["broadcast_id"])
    assert len(frozen) == 2 and set(frozen["state"]) <= {"sent", "failed"}
    sent = frozen[frozen["state"] == "sent"]
    assert sent["message_id"].notna().all()
    # Each recipient got exactly one outbound message.
    out = ws.sql("SELECT contact_id, count(*) AS n FROM messages WHERE broadcast_id = ? "
                 "GROUP BY contact_id", [made["broadcast_id"]])
    assert out["n"].max() == 1 and set(out["contact_id"]) <= {ids[1], ids[2]}
    result = run(ws.path, "broadcast", "resume", str(made["broadcast_id"]))
    assert result.exit_code == 0, result.output
    out = ws.sql("SELECT count(*) AS n FROM messages WHERE broadcast_id = ?",
                 [made["broadcast_id"]])
    assert out["n"].item() == len(sent)
    result = run(ws.path, "broadcast", "show", str(made["broadcast_id"]))
    assert f"sent {len(sent)}" in result.output
    result = run(ws.path, "broadcast", "resolve", str(made["broadcast_id"]), "--decision",
                 "give_up")
    assert result.exit_code == 0 and "unknown: 0" in result.output


def test_cli_send_waits_for_the_scheduled_time_and_freezes_then(ws, shop):
    acc, _ = shop
    bc = service(ws)
    bc.set_limits(acc["account_id"], quiet_hours=None)
    made = bc.create(acc["account_id"], "Später", body="Hallo")
    bc.schedule(made["broadcast_id"], datetime.now(UTC) + timedelta(days=1))
    for transport in ("cloud", "simulated"):
        result = run(ws.path, "broadcast", "send", str(made["broadcast_id"]),
                     "--transport", transport)
        assert result.exit_code == 1 and "scheduled for" in result.output
    # A draft is frozen at its send time, not before.
    assert bc.recipients(made["broadcast_id"]).empty
    later = datetime.now(UTC) + timedelta(days=1, minutes=1)
    # A platform that never defers (the default simulates 131049, the per-user marketing
    # limit, for 1% of attempts, drawn from the random idempotency keys), so every
    # opted-in contact is sent exactly at the due time.
    bc.run_due(now=later, transport=SimulatedTransport(rates=SimRates(marketing_limit=0.0)))
    counts = bc.counts(made["broadcast_id"], now=later)
    assert counts.get("skipped") == 1 and counts.get("sent") == 4
    assert not counts.get("deferred") and not counts.get("queued")
