"""A workspace filled through the real APIs, with one person (the subject) in every place
bizchat can keep them: for the privacy tests.

The demo scenario gives two accounts, a year of broadcasts with receipts, chats and labels.
On top the subject arrives by CSV import (with consent evidence) in account 1 and by hand
in account 2, writes via webhooks (also in a batch with another customer, who mentions
the subject), gets a label, a broadcast with receipts, a status webhook, pending spool
lines, an access export and contact-level report outputs.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd

import bizchat
from bizchat import demo
from bizchat.campaigns import outbox
from bizchat.campaigns.transports.simulated import SimRates, SimulatedTransport
from bizchat.ingest.payloads import payload_id
from bizchat.ingest.spool import Spool
from bizchat.ingest.webhooks import ingest_bodies
from bizchat.people.contact_import import import_contacts

SUBJECT_PHONE = "+4915123456789"
SUBJECT_WA = "4915123456789"
SUBJECT_NATIONAL = "0151 23456789"
SUBJECT_NAME = "Zofia Wiśniewska-Quast"
SUBJECT_USER = "DE.4242424242424242"
OTHER_PHONE = "+4915198765432"
OTHER_NAME = "Hannelore Brückner"
T0 = datetime(2026, 3, 4, 9, 0, tzinfo=UTC)


@dataclass
class Filled:
    ws: bizchat.Workspace
    path: Path
    csv: Path
    accounts: list[dict]
    message_ids: list[str] = field(default_factory=list)     # the subject's, before erasure
    needles: list[str] = field(default_factory=list)


def _text(sender: str, name: str, mid: str, body: str, ts: int, user_id: str | None = None) -> dict:
    contact = {"profile": {"name": name}, "wa_id": sender}
    message = {"from": sender, "id": mid, "timestamp": str(ts), "type": "text", "text": {"body": body}}
    if user_id:
        contact["user_id"] = message["from_user_id"] = user_id
    return {"contacts": [contact], "messages": [message]}


def envelope(pnid: str, display: str, *values: dict) -> bytes:
    changes = [{"field": "messages", "value": {
        "messaging_product": "whatsapp",
        "metadata": {"display_phone_number": display, "phone_number_id": pnid},
        "contacts": [c for value in values for c in value.get("contacts", [])],
        "messages": [m for value in values for m in value.get("messages", [])],
        "statuses": [s for value in values for s in value.get("statuses", [])]}}]
    doc = {"object": "whatsapp_business_account", "entry": [{"id": "WABA1", "changes": changes}]}
    return json.dumps(doc, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def fill(tmp_path: Path, *, contacts: int = 60) -> Filled:
    path = tmp_path / "ws.duckdb"
    demo.build(path, contacts=contacts, seed=5)
    ws = bizchat.open(path)
    accounts = ws.sql("SELECT account_id, phone_e164, phone_number_id FROM accounts ORDER BY 1").to_dict("records")
    a1, a2 = accounts
    display1 = a1["phone_e164"].lstrip("+")

    # 1. A CSV import with consent evidence (the subject, someone else, a third person).
    csv = tmp_path / "kontakte.csv"
    csv.write_text(
        "phone,name,consent,consent_at,evidence,consent_source\n"
        f"{SUBJECT_NATIONAL},{SUBJECT_NAME},ja,2026-01-10 10:00,Formular Messe {SUBJECT_NATIONAL},in_store\n"
        f"{OTHER_PHONE},{OTHER_NAME},ja,2026-01-11 10:00,Formular Messe,in_store\n"
        "+4915211112222,Karl Otto,nein,,,\n", encoding="utf-8")
    import_contacts(ws, csv, a1["account_id"], actor="test")
    subject1 = ws.contacts.get(a1["account_id"], SUBJECT_PHONE)
    with ws.transaction() as con:
        con.execute("UPDATE contacts SET user_id = ?, attributes = ? WHERE contact_id = ?",
                    [SUBJECT_USER, json.dumps({"city": "Görlitz", "customer_no": "LB-777001"}),
                     subject1["contact_id"]])
    # 2. The same person in account 2, by hand, with evidence quoting the number.
    subject2 = ws.contacts.add(a2["account_id"], SUBJECT_PHONE, name=SUBJECT_NAME)
    ws.consent.opt_in(subject2["contact_id"], "marketing", source="in_store",
                      evidence=f"Unterschrift {SUBJECT_NAME}, Tel. {SUBJECT_PHONE}", at=T0 - timedelta(days=40))
    ws.labels.assign(a1["account_id"], "Stammkunde", [subject1["contact_id"]])

    # 3. Webhooks: the subject writes; another customer writes about the subject, in one batch.
    ts = int((T0 - timedelta(days=3)).timestamp())
    bodies = [
        envelope(a1["phone_number_id"], display1,
                 _text(SUBJECT_WA, SUBJECT_NAME, "wamid.subj.in1",
                       "Hallo, hier ist Zofia. Meine Adresse: Lindenweg 3, Görlitz.", ts, SUBJECT_USER)),
        envelope(a1["phone_number_id"], display1,
                 _text(SUBJECT_WA, SUBJECT_NAME, "wamid.subj.in2",
                       "Gibt es das Buch noch?", ts + 60, SUBJECT_USER),
                 _text(OTHER_PHONE.lstrip("+"), OTHER_NAME, "wamid.other.in1",
                       f"Meine Nachbarin {SUBJECT_NAME} ({SUBJECT_NATIONAL}) möchte auch den Newsletter.",
                       ts + 90)),
    ]
    with ws.transaction() as con:
        ingest_bodies(con, [(payload_id(b), T0 - timedelta(days=3), b.decode()) for b in bodies])
    ws.labels.assign(a1["account_id"], "Neukunde", [ws.contacts.get(a1["account_id"], OTHER_PHONE)["contact_id"]])

    # 4. A broadcast to everyone opted in (the subject too), sent by the simulation.
    service = ws.broadcasts
    found = service.create(a1["account_id"], "Frühlingslese", body="Hallo {first_name}, neue Bücher sind da!",
                           seed=9)
    service.schedule(found["broadcast_id"], T0)
    outbox.send(ws, found["broadcast_id"], transport=SimulatedTransport(3, rates=SimRates(
        stopped_marketing=0, marketing_limit=0)))
    theirs = ws.sql("""SELECT message_id FROM messages WHERE contact_id IN (?, ?)
                       UNION SELECT message_id FROM broadcast_recipients
                       WHERE contact_id IN (?, ?) AND message_id IS NOT NULL""",
                    [subject1["contact_id"], subject2["contact_id"]] * 2)["message_id"].tolist()
    sent = ws.sql("SELECT message_id FROM broadcast_recipients WHERE broadcast_id = ? AND contact_id = ?",
                  [found["broadcast_id"], subject1["contact_id"]])["message_id"][0]
    # 5. A read receipt webhook for it (after the simulated ones: still one status).
    status = {"statuses": [{"id": sent, "status": "read", "timestamp": str(int(T0.timestamp()) + 4000),
                            "recipient_id": SUBJECT_WA,
                            "conversation": {"id": "CONV-subject-1", "origin": {"type": "marketing"}},
                            "pricing": {"billable": True, "pricing_model": "PMP", "category": "marketing"}}]}
    receipt = envelope(a1["phone_number_id"], display1, status)
    with ws.transaction() as con:
        ingest_bodies(con, [(payload_id(receipt), T0, receipt.decode())])

    # 6. The spool: one ingested line, then pending lines (the subject, someone else).
    spool = Spool(path)
    spool.append([Spool.record(bodies[0], T0)])
    spool.commit(spool.read())         # ingested (emptied)
    pending = [
        envelope(a1["phone_number_id"], display1,
                 _text(SUBJECT_WA, SUBJECT_NAME, "wamid.subj.pending",
                       "Bitte ruft mich an: 0151 23456789", ts + 500, SUBJECT_USER),
                 _text(OTHER_PHONE.lstrip("+"), OTHER_NAME,
                       "wamid.other.pending", "Danke!", ts + 510)),
        envelope(a1["phone_number_id"], display1,
                 _text("4915244443333", "Ida Neu", "wamid.ida.pending",
                       "Guten Tag", ts + 520)),
    ]
    spool.append([Spool.record(b, T0) for b in pending])

    # 7. An access export, and contact-level report outputs (one in a run's own folder).
    privacy = ws.privacy
    privacy.export(SUBJECT_PHONE, actor="test")
    reports = path.parent / "reports"
    reports.mkdir(exist_ok=True)
    frame = ws.sql("SELECT phone_e164, name FROM contacts ORDER BY contact_id")
    frame.to_csv(reports / "contact-list.csv", index=False)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "run.ipynb").write_text(json.dumps({"cells": [{"outputs": [
        {"text": f"{SUBJECT_NAME}: {SUBJECT_PHONE}"}]}]}), encoding="utf-8")
    with ws.transaction() as con:
        con.execute("""INSERT INTO report_runs (run_id, report, params, started_at, status, output_path)
                       VALUES (1, 'contact_sheet', ?, ?, 'ok', ?)""",
                    [json.dumps({"phone": SUBJECT_PHONE}), T0, str(elsewhere / "run.ipynb")])
    needles = [SUBJECT_PHONE, SUBJECT_WA, SUBJECT_NATIONAL, SUBJECT_NATIONAL.replace(" ", ""),
               SUBJECT_NAME, SUBJECT_USER, "LB-777001", "Lindenweg 3"]
    return Filled(ws=ws, path=path, csv=csv, accounts=accounts, message_ids=theirs, needles=needles)


def text_cells(ws) -> pd.DataFrame:
    """Every cell of every base table as text: table, column, value."""
    tables = ws.sql("""SELECT table_name FROM information_schema.tables
                       WHERE table_schema = 'main' AND table_type = 'BASE TABLE'""")["table_name"]
    parts = []
    for table in tables:
        cols = ws.sql("SELECT column_name FROM information_schema.columns WHERE table_name = ?",
                      [table])["column_name"]
        for col in cols:
            values = ws.sql(f'SELECT CAST("{col}" AS VARCHAR) AS v FROM "{table}" WHERE "{col}" IS NOT NULL')
            parts.append(values.assign(table=table, column=col))
    return pd.concat(parts, ignore_index=True)
