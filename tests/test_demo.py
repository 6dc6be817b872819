"""The demo workspace: deterministic, realistic in shape, and obeying bizchat's own rules."""

from __future__ import annotations

import base64
import functools
import random
import subprocess
import sys
from datetime import timedelta

import pandas as pd
import phonenumbers
import pytest
from click.testing import CliRunner

import bizchat
from bizchat import demo, store
from bizchat.cli import main
from bizchat.demo import clock
from bizchat.demo import content as content
from bizchat.errors import Conflict, WorkspaceBusy
from bizchat.people.phones import parse

N = 500
SEED = 11


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    path = tmp_path_factory.mktemp("demo") / "demo.duckdb"
    summary = demo.build(path, contacts=N, seed=SEED)
    return summary, bizchat.open(path)


def one(ws, sql, params=None):
    return ws.sql(sql, params).iloc[0, 0]


LIVE = "(SELECT broadcast_id FROM broadcasts WHERE name IN ({}))".format(
    ", ".join(f"'{c['name']}'" for c in demo.LIVE_CAMPAIGNS))
LIVE_MESSAGES = "(SELECT message_id FROM messages WHERE source = 'transport')"


def fingerprint(ws) -> dict:
    """A content hash per table of the generated history; message_status.updated_at is
    wall-clock, and the live campaigns (sent through the outbox) get fresh ids and
    bookkeeping times on every build, so they are compared by their outcomes instead."""
    tables = {"contacts": "contacts", "consent_events": "consent_events",
              "messages": "(SELECT * FROM messages WHERE source <> 'transport')",
              "broadcast_recipients": f"(SELECT * FROM broadcast_recipients WHERE broadcast_id NOT IN {LIVE})",
              "message_events": f"(SELECT * FROM message_events WHERE message_id NOT IN {LIVE_MESSAGES})",
              "chats": "(SELECT chat_id, account_id, contact_id, last_inbound_at FROM chats)",
              "contact_labels": "contact_labels",
              "message_status": f"""(SELECT * EXCLUDE (updated_at) FROM message_status
                                      WHERE message_id NOT IN {LIVE_MESSAGES})"""}
    # The sum of row hashes: independent of row order, changed by any value.
    return {name: one(ws, f"SELECT sum(hash(t)::HUGEINT)::VARCHAR FROM {sql} AS t") for name, sql in tables.items()}


# --- determinism ------------------------------------------------------------------------

@pytest.mark.slow
def test_same_seed_same_workspace_other_seed_another(built, tmp_path, capsys):
    summary, ws = built
    again = demo.build(tmp_path / "again.duckdb", contacts=N, seed=SEED)
    assert capsys.readouterr() == ("", "")   # progress=False prints nothing, DuckDB's bar included
    strip = lambda s: {k: v for k, v in s.items() if k not in ("path", "seconds", "stage_seconds")}  # noqa: E731
    assert strip(again) == strip(summary)
    mine = fingerprint(ws)
    assert fingerprint(bizchat.open(tmp_path / "again.duckdb")) == mine
    live = f"""SELECT name, recipients, skipped, sent, delivered, "read", failed
               FROM campaign_stats WHERE broadcast_id IN {LIVE} ORDER BY name"""
    assert bizchat.open(tmp_path / "again.duckdb").sql(live).equals(ws.sql(live))

    other = demo.build(tmp_path / "other.duckdb", contacts=N, seed=SEED + 1)
    theirs = fingerprint(bizchat.open(tmp_path / "other.duckdb"))
    assert {k for k, v in theirs.items() if v != mine[k]} == set(mine)
    assert strip(other) != strip(summary)


@pytest.mark.slow
def test_messages_scale_with_contacts(built):
    summary, _ = built
    per_contact = summary["messages"] / summary["contacts"]
    assert 35 < per_contact < 65    # 20,000 contacts give about a million messages


# --- the summary ------------------------------------------------------------------------

@pytest.mark.slow
def test_summary_matches_the_workspace(built):
    summary, ws = built
    assert summary["path"] == str(ws.path)
    assert summary["accounts"] == 2
    assert summary["contacts"] == N == one(ws, "SELECT count(*) FROM contacts")
    assert summary["messages"] == one(ws, "SELECT count(*) FROM messages")
    assert summary["broadcasts"] == one(ws, "SELECT count(*) FROM broadcasts")
    sent, delivered, read = ws.sql(
        'SELECT sum(sent), sum(delivered), sum("read") FROM campaign_stats').iloc[0]
    assert summary["delivery_rate"] == pytest.approx(delivered / sent)
    assert summary["open_rate"] == pytest.approx(read / delivered)
    assert 0.9 < summary["delivery_rate"] < 0.99
    assert 0.5 < summary["open_rate"] < 0.85
    assert summary["seconds"] > 0
    assert set(summary["stage_seconds"]) == set(demo.STAGES)


@pytest.mark.slow
def test_format_summary_is_aligned_and_ends_with_the_path(built):
    summary, _ = built
    lines = demo.format_summary(summary).splitlines()
    assert lines[-1].split()[-1] == summary["path"]
    starts = {len(line) - len(line.split("  ")[-1].lstrip()) for line in lines}
    assert len(starts) == 1   # values start in one column
    text = "\n".join(lines)
    assert f"{N:,}" in text and f"{summary['messages']:,}" in text and "%" in text


@pytest.mark.slow
def test_audit_log_records_the_build(built):
    _, ws = built
    row = ws.sql("SELECT actor, action, details->>'seed' AS seed FROM audit_log").iloc[0]
    assert (row.actor, row.action, row.seed) == ("demo", "demo.build", str(SEED))


# --- accounts and contacts --------------------------------------------------------------

@pytest.mark.slow
def test_two_accounts_one_mobile_one_landline(built):
    _, ws = built
    accounts = ws.sql("SELECT * FROM accounts ORDER BY account_id")
    assert len(accounts) == 2
    for row in accounts.itertuples():
        phone = parse(row.phone_e164)
        assert (phone.number_type, phone.region) == (row.number_type, row.region)
        assert row.timezone == "Europe/Berlin" and row.display_name and row.phone_number_id
        assert row.about and row.description and row.category and row.address and row.email
        assert len(row.websites) >= 1
    assert list(accounts.number_type) == ["mobile", "fixed_line"]
    hours = ws.sql("SELECT business_hours->>'mon' AS mon, business_hours->>'sun' AS sun FROM accounts")
    assert list(hours.mon) == ['[["09:00","18:00"]]'] * 2 and list(hours.sun) == ["[]"] * 2


@pytest.mark.slow
def test_contact_numbers_are_valid_mobiles(built):
    _, ws = built
    contacts = ws.sql("SELECT * FROM contacts")
    regions = set()
    for row in contacts.itertuples():
        number = phonenumbers.parse(row.phone_e164, None)
        assert phonenumbers.is_valid_number(number), row.phone_e164
        assert phonenumbers.number_type(number) == phonenumbers.PhoneNumberType.MOBILE
        assert row.wa_id == row.phone_e164[1:]
        regions.add(phonenumbers.region_code_for_number(number))
    assert regions == {"DE", "AT", "CH"}
    assert one(ws, "SELECT count(*) FROM (SELECT account_id, phone_e164 FROM contacts "
                   "GROUP BY ALL HAVING count(*) > 1)") == 0
    assert one(ws, "SELECT count(*) FILTER (WHERE phone_e164 LIKE '+49%') / count(*) FROM contacts") > 0.7
    assert set(contacts.language) <= {"de", "de-AT", "de-CH", "en"}
    assert contacts.name.str.len().min() > 1
    span = contacts.created_at.max() - contacts.created_at.min()
    assert span > timedelta(days=600)
    assert one(ws, "SELECT count(DISTINCT attributes->>'city') FROM contacts") > 10


@pytest.mark.parametrize("plan", content.MOBILE_PLANS, ids=content.COUNTRIES)
def test_every_numbering_plan_gives_valid_mobiles(plan):
    cc, prefixes, _, lengths = plan
    rng = random.Random(1)
    for prefix, options in zip(prefixes, lengths, strict=True):
        for length in set(options):
            for _ in range(20):
                sub = "".join(rng.choice("0123456789") for _ in range(length))
                phone = parse(f"+{cc}{prefix}{sub}")
                assert phone.number_type == "mobile", phone


# --- consent ----------------------------------------------------------------------------

@pytest.mark.slow
def test_consent_ledger(built):
    _, ws = built
    share = one(ws, "SELECT count(*) FILTER (WHERE state = 'opt_in') / "
                    "(SELECT count(*) FROM contacts) FROM current_consent WHERE purpose = 'marketing'")
    assert 0.6 <= share <= 0.8
    sources = set(ws.sql("SELECT DISTINCT source FROM consent_events").source)
    assert {"double_opt_in_form", "in_store", "chat", "import", "keyword", "user_preferences"} <= sources
    # event_id increases with time
    assert one(ws, """SELECT count(*) FROM (SELECT recorded_at, lag(recorded_at) OVER (ORDER BY event_id)
                      AS before FROM consent_events) WHERE before > recorded_at""") == 0
    assert one(ws, "SELECT count(*) FROM consent_events WHERE purpose = 'service'") == N
    doi = ws.sql("SELECT evidence FROM consent_events WHERE source = 'double_opt_in_form' "
                 "AND purpose = 'marketing' LIMIT 1").evidence[0]
    assert "bestätigt" in doi and "STOPP" in doi
    # A STOPP opt-out points at the message that carried it.
    stops = ws.sql("""SELECT e.evidence, m.body, m.direction FROM consent_events e
        JOIN messages m ON e.evidence LIKE '%' || m.message_id || '%'
        WHERE e.source = 'keyword'""")
    assert len(stops) == one(ws, "SELECT count(*) FROM consent_events WHERE source = 'keyword'") > 0
    assert set(stops.direction) == {"in"}
    assert set(stops.body) <= set(content.STOP_WORDS)


@pytest.mark.slow
def test_no_marketing_message_without_opt_in_at_send_time(built):
    _, ws = built
    violations = one(ws, """
        SELECT count(*) FROM broadcast_recipients r JOIN broadcasts b USING (broadcast_id)
        WHERE b.category = 'marketing' AND (r.state = 'sent' OR r.message_id IS NOT NULL)
          AND coalesce((SELECT e.action FROM consent_events e
                        WHERE e.contact_id = r.contact_id AND e.purpose = 'marketing'
                          AND e.recorded_at <= b.scheduled_for
                        ORDER BY e.recorded_at DESC, e.event_id DESC LIMIT 1), 'none') <> 'opt_in'""")
    assert violations == 0
    assert one(ws, "SELECT count(*) FROM broadcast_recipients WHERE state = 'sent'") > 1000
    # Recipients and their messages agree.
    assert one(ws, """SELECT count(*) FROM broadcast_recipients r LEFT JOIN messages m USING (message_id)
                      WHERE r.message_id IS NOT NULL AND (m.message_id IS NULL OR m.contact_id <> r.contact_id
                      OR m.broadcast_id <> r.broadcast_id OR m.kind <> 'template')""") == 0


@pytest.mark.slow
def test_frequency_cap_and_quiet_hours_hold(built):
    _, ws = built
    over = ws.sql("""
        SELECT a.account_id, a.marketing_cap_count AS cap, max(n) AS most FROM (
            SELECT r.contact_id, count(*) OVER (PARTITION BY r.contact_id ORDER BY r.sent_at
                   RANGE BETWEEN INTERVAL 7 DAYS PRECEDING AND CURRENT ROW) AS n
            FROM broadcast_recipients r WHERE r.message_id IS NOT NULL) AS w
        JOIN contacts USING (contact_id) JOIN accounts a USING (account_id) GROUP BY ALL""")
    assert (over.most <= over.cap).all() and (over.most == over.cap).any()
    assert one(ws, "SELECT count(*) FROM broadcast_recipients WHERE skip_reason = 'frequency_cap'") > 0
    hours = ws.sql("""SELECT DISTINCT hour(sent_at AT TIME ZONE 'Europe/Berlin') AS h
                      FROM broadcast_recipients WHERE sent_at IS NOT NULL""").h
    assert hours.between(8, 20).all()


@pytest.mark.slow
def test_recipients_hold_what_was_frozen(built):
    _, ws = built
    frozen = ws.sql("""SELECT r.body = m.body AS same_body, r.wa_id = c.wa_id AS same_wa_id,
            r.params->>'first_name' AS first_name, c.name, r.sent_at = m.created_at AS same_time,
            r.attempts FROM broadcast_recipients r JOIN messages m USING (message_id)
            JOIN contacts c ON c.contact_id = r.contact_id
            WHERE m.source = 'demo'""")   # the live campaigns' bodies carry fallbacks
    assert frozen.same_body.all() and frozen.same_wa_id.all() and frozen.same_time.all()
    assert (frozen.attempts == 1).all()
    assert all(name.startswith(first) for name, first in zip(frozen.name, frozen.first_name, strict=True))
    assert one(ws, "SELECT count(*) FROM broadcast_recipients WHERE variant = 'control' "
                   "AND (body IS NOT NULL OR message_id IS NOT NULL)") == 0


# --- labels, chats, messages ------------------------------------------------------------

@pytest.mark.slow
def test_every_label_is_present_and_used(built):
    _, ws = built
    labels = ws.sql("SELECT l.account_id, l.name, l.color, count(cl.contact_id) AS used FROM labels l "
                    "LEFT JOIN contact_labels cl USING (label_id) GROUP BY ALL")
    assert len(labels) == 12
    assert set(labels.name) == set(content.LABELS)
    assert labels.color.between(1, 20).all()
    assert (labels.used > 0).all()
    assert one(ws, "SELECT count(DISTINCT label_id) FROM chat_labels") >= 10
    # Labels stay within their account.
    assert one(ws, """SELECT count(*) FROM contact_labels JOIN contacts c USING (contact_id)
                      JOIN labels l USING (label_id) WHERE l.account_id <> c.account_id""") == 0


@pytest.mark.slow
def test_messages_and_chats(built):
    _, ws = built
    kinds = ws.sql("SELECT direction, kind, count(*) AS n FROM messages GROUP BY ALL")
    assert set(kinds.direction) == {"in", "out"}
    assert {"template", "text", "image", "audio", "document", "button"} <= set(kinds.kind)
    assert one(ws, "SELECT count(*) FROM messages WHERE source NOT IN ('demo', 'transport')") == 0
    assert one(ws, "SELECT count(*) FROM messages WHERE automatic") > 0
    assert one(ws, """SELECT count(*) FROM messages m JOIN chats c USING (chat_id)
                      WHERE c.contact_id <> m.contact_id OR c.account_id <> m.account_id""") == 0
    assert one(ws, "SELECT count(*) - count(DISTINCT message_id) FROM messages") == 0
    mismatched = one(ws, """
        SELECT count(*) FROM chats c JOIN (
            SELECT chat_id, min(created_at) AS first, max(created_at) AS last,
                   max(created_at) FILTER (WHERE direction = 'in') AS last_in
            FROM messages GROUP BY chat_id) m USING (chat_id)
        WHERE c.started_at <> m.first OR c.last_message_at <> m.last
           OR c.last_inbound_at IS DISTINCT FROM m.last_in""")
    assert mismatched == 0
    wamid = one(ws, "SELECT message_id FROM messages LIMIT 1")
    assert wamid.startswith("wamid.HBg") and base64.b64decode(wamid[6:])


@pytest.mark.slow
def test_broadcasts_cover_twelve_months(built):
    _, ws = built
    spread = ws.sql("""SELECT account_id, min(scheduled_for) AS first, max(scheduled_for) AS last,
                       count(*) AS n, count(*) FILTER (WHERE variants IS NOT NULL) AS ab
                       FROM broadcasts WHERE status = 'done' GROUP BY ALL ORDER BY account_id""")
    assert list(spread.account_id) == [1, 2]
    assert ((spread["last"] - spread["first"]) > timedelta(days=330)).all()
    assert (spread.n >= 50).all()
    assert spread.ab.sum() > 0
    assert set(ws.sql("SELECT DISTINCT variant FROM messages WHERE broadcast_id IS NOT NULL").variant) \
        >= {"A", "B"}
    assert set(ws.sql("SELECT DISTINCT state FROM broadcast_recipients").state) >= {"sent", "failed", "skipped"}
    assert one(ws, "SELECT count(*) FROM broadcast_recipients WHERE state = 'skipped' "
                   "AND skip_reason IS NULL") == 0
    assert one(ws, "SELECT count(*) - count(DISTINCT idempotency_key) FROM broadcast_recipients") == 0


@pytest.mark.slow
def test_message_status_equals_latest_status(built):
    _, ws = built
    assert one(ws, "SELECT count(*) FROM message_status") > 0
    assert one(ws, """
        SELECT count(*) FROM message_status s FULL JOIN latest_status l USING (message_id)
        WHERE s.status IS DISTINCT FROM l.status OR s.sent_at IS DISTINCT FROM l.sent_at
           OR coalesce(s.delivered_at, s.read_at) IS DISTINCT FROM l.delivered_at
           OR s.read_at IS DISTINCT FROM l.read_at OR s.failed_at IS DISTINCT FROM l.failed_at
           OR s.error_code IS DISTINCT FROM l.error_code""") == 0


@pytest.mark.slow
def test_receipts_are_plausible(built):
    _, ws = built
    codes = set(ws.sql("SELECT DISTINCT error_code FROM message_events WHERE status = 'failed'").error_code)
    assert {131026, 131049} <= codes <= set(content.ERRORS)
    assert one(ws, "SELECT count(*) FROM message_status WHERE read_at < delivered_at "
                   "OR delivered_at < sent_at") == 0
    # The generated history ends at the demo's "now"; the live campaigns' receipts run on.
    assert one(ws, f"""SELECT count(*) FROM message_events WHERE "at" > TIMESTAMPTZ '2026-11-01'
                       AND message_id NOT IN {LIVE_MESSAGES}""") == 0
    # Some readers reply within 72 hours of reading.
    replies = ws.sql("""
        SELECT r.created_at - s.read_at AS after FROM messages r
        JOIN messages b ON b.message_id = r.reply_to AND b.kind = 'template'
        JOIN message_status s ON s.message_id = b.message_id
        WHERE r.direction = 'in' AND r.body NOT IN (SELECT unnest(?))""", [content.STOP_WORDS])
    assert len(replies) > 20
    assert (replies["after"] > timedelta(0)).all() and (replies["after"] < timedelta(hours=72)).all()
    # A few recipients answer a broadcast with STOPP within 7 days.
    stops = one(ws, """SELECT count(*) FROM messages s JOIN messages b ON b.message_id = s.reply_to
                       WHERE s.body IN (SELECT unnest(?)) AND b.kind = 'template'
                         AND s.created_at - b.created_at <= INTERVAL 7 DAYS""", [content.STOP_WORDS])
    assert 0 < stops < 0.01 * one(ws, "SELECT count(*) FROM messages WHERE kind = 'template'")
    # Read rates differ by label: VIP and Kinderbuch readers open more than Krimi readers.
    rates = ws.sql("""SELECT l.name, avg((s.read_at IS NOT NULL)::INT) AS rate
        FROM messages m JOIN message_status s USING (message_id)
        JOIN contact_labels cl ON cl.contact_id = m.contact_id JOIN labels l USING (label_id)
        WHERE m.kind = 'template' AND s.status <> 'failed' GROUP BY l.name""").set_index("name").rate
    assert rates["VIP"] > rates["Krimi"] and rates["Kinderbuch"] > rates["Krimi"]


# --- refusing to overwrite, and the CLI -------------------------------------------------

@pytest.mark.slow
def test_refuses_to_overwrite_without_replace(tmp_path):
    path = tmp_path / "ws.duckdb"
    first = demo.build(path, contacts=60, seed=1)
    with pytest.raises(Conflict, match="--replace"):
        demo.build(path, contacts=80, seed=2)
    assert one(bizchat.open(path), "SELECT count(*) FROM contacts") == first["contacts"]
    again = demo.build(path, contacts=80, seed=2, replace=True)
    assert again["contacts"] == 80 == one(bizchat.open(path), "SELECT count(*) FROM contacts")


@pytest.mark.slow
def test_replace_waits_for_a_process_that_holds_the_file(tmp_path, monkeypatch):
    # Deleting a file under a running receiver would lose its writes: wait, then give up.
    monkeypatch.setattr(store, "connect", functools.partial(store.connect, timeout=0.5))
    path = tmp_path / "held.duckdb"
    demo.build(path, contacts=60)
    code = f"import duckdb, time; con = duckdb.connect({str(path)!r}); print('held', flush=True); time.sleep(30)"
    with subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True) as holder:
        try:
            assert holder.stdout.readline().strip() == "held"
            with pytest.raises(WorkspaceBusy):
                demo.build(path, contacts=60, replace=True)
        finally:
            holder.kill()
    assert one(bizchat.open(path), "SELECT count(*) FROM contacts") == 60


@pytest.mark.slow
def test_replace_takes_a_file_that_is_not_a_workspace(tmp_path):
    path = tmp_path / "notes.duckdb"
    path.write_text("not a database")
    with pytest.raises(Conflict, match="--replace"):
        demo.build(path, contacts=60)
    assert demo.build(path, contacts=60, replace=True)["contacts"] == 60


@pytest.mark.slow
def test_builds_into_a_fresh_empty_workspace(tmp_path):
    path = tmp_path / "fresh.duckdb"
    bizchat.open(path)
    assert demo.build(path, contacts=60)["contacts"] == 60


@pytest.mark.slow
def test_default_path_comes_from_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("BIZCHAT_WORKSPACE", str(tmp_path / "env.duckdb"))
    assert demo.build(contacts=60)["path"] == str(tmp_path / "env.duckdb")


@pytest.mark.slow
def test_cli_demo_prints_the_summary(tmp_path):
    path = tmp_path / "cli.duckdb"
    result = CliRunner().invoke(main, ["demo", "--workspace", str(path), "--contacts", "300"])
    assert result.exit_code == 0, result.output
    lines = result.stdout.strip().splitlines()
    assert lines[-1].split()[-1] == str(path)
    assert any(line.startswith("contacts") and line.endswith("300") for line in lines)
    again = CliRunner().invoke(main, ["demo", "--workspace", str(path), "--contacts", "300"])
    assert again.exit_code == 1 and "--replace" in again.output


@pytest.mark.slow
def test_latest_campaigns_went_through_the_outbox_and_webhook_path(built):
    """The live campaigns were composed, frozen and sent like a user's, and their
    receipts came in as Cloud API status webhooks (kept in raw_payloads)."""
    _, ws = built
    live = ws.sql(f"SELECT * FROM campaign_stats WHERE broadcast_id IN {LIVE}")
    assert len(live) == len(demo.LIVE_CAMPAIGNS)
    assert live["status"].isin(["done", "sending"]).all() and (live["sent"] > 0).all()
    # Still sending only where the platform deferred someone past the demo's "now".
    waiting = ws.sql(f"""SELECT min(not_before) AS t, count(*) AS n FROM broadcast_recipients
                         WHERE broadcast_id IN {LIVE} AND state = 'queued'""")
    assert waiting.n[0] == 0 or waiting.t[0] > pd.Timestamp(clock.NOW)
    assert (live["delivered"] <= live["sent"]).all() and (live["read"] <= live["delivered"]).all()
    sent = one(ws, "SELECT count(*) FROM messages WHERE source = 'transport'")
    assert sent == live["sent"].sum()
    assert one(ws, "SELECT count(*) FROM raw_payloads WHERE state = 'ingested'") > 0
    # Nobody without a current opt-in got one.
    leaked = one(ws, f"""SELECT count(*) FROM broadcast_recipients r
                         LEFT JOIN current_consent c ON c.contact_id = r.contact_id AND c.purpose = 'marketing'
                         WHERE r.broadcast_id IN {LIVE} AND r.state = 'sent'
                           AND coalesce(c.state, '') <> 'opt_in'""")
    assert leaked == 0


@pytest.mark.slow
def test_open_rate_totals_equal_the_recipients_table(built):
    """Every status of a demo broadcast (history and live campaigns) carries its broadcast,
    so the per-broadcast totals equal the recipients joined with their statuses."""
    from stats_world import assert_same_tables

    _, ws = built
    table = assert_same_tables(ws)
    assert len(table) == one(ws, "SELECT count(DISTINCT broadcast_id) FROM broadcast_recipients")


@pytest.mark.slow
def test_the_live_campaigns_tell_a_true_story(built):
    summary, ws = built
    # Sent in the daytime through run_due, never inside the recipients' quiet hours.
    live = ws.sql(f"""
        SELECT hour(timezone(coalesce(c.timezone, 'Europe/Berlin'), r.sent_at)) AS h
        FROM broadcast_recipients r JOIN contacts c USING (contact_id)
        WHERE r.broadcast_id IN {LIVE} AND r.sent_at IS NOT NULL""").h
    assert len(live) and live.between(8, 20).all()
    # Nothing from after the demo's "now": no receipt, no send.
    assert one(ws, 'SELECT max("at") FROM message_events') <= pd.Timestamp(clock.NOW)
    # Pseudonymous keys filled in at build time.
    assert one(ws, "SELECT count(*) - count(subject_key) FROM analyst_contacts") == 0
    steps = demo.next_steps(summary)
    assert "make lab" in steps and f"stats lift {summary['lift_broadcast']}" in steps
