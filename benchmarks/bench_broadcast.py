"""A million-recipient broadcast: freeze, send through the SimulatedTransport, ingest every
receipt. Issue 5 asks for under 60 s for 1,000,000 opted-in contacts.

Set-up (not part of the target): one account and N contacts with a marketing opt-in,
bulk-inserted as Arrow tables (contacts, consent_events), as an import would leave them.

- Ours, three stages, each timed:
  1. ``create``: the broadcast and its template through ``Broadcasts.create``;
  2. ``freeze``: ``Broadcasts.schedule`` (the audience evaluated, consent checked with
     ``consent.may_send``, frequency cap, quiet hours, A/B split with a 10 % hold-out
     group, every recipient's text rendered, ``broadcast_recipients`` written);
  3. ``send``: ``outbox.send`` with ``SimulatedTransport(ingest="bulk")`` and batches of
     100,000: consent re-checked at send time, pacing at 80 msg/s on the simulated clock
     (the campaign spans about 3 simulated hours), the ``sending`` and result writes, the
     simulated platform's ledger, one message row per recipient, and all receipts (sent,
     delivered, read, failed) into message_events and message_status.
  Inside ``send``, timers around the sender's steps break the stage down.
- Reference: inserting the rows the run produced (recipients, messages, receipts, status)
  as Arrow tables into unindexed tables of a fresh DuckDB file: the floor for writing them.
- Receipts path: the simulated receipts go through the webhook path by default (status
  bodies -> ``webhooks.ingest_bodies``). For the million we use ``ingest="bulk"``
  (``receipts.record_status_events`` + the same outbox settlement), and measure the
  webhook path on a 50,000-message sample to show why: the row explains the choice.

``python -m benchmarks.bench_broadcast [--quick]`` prints the rows (quick: 100,000).
"""

from __future__ import annotations

import contextlib
import sys
import tempfile
import time
from collections import defaultdict
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa

import bizchat
from bizchat.campaigns import outbox
from bizchat.campaigns.broadcasts import Broadcasts
from bizchat.campaigns.outbox import messages, pacing, record
from bizchat.campaigns.transports import SimulatedTransport
from bizchat.messaging import chats
from bizchat.people import consent

SEND_AT = datetime(2026, 3, 4, 9, 0, tzinfo=UTC)    # Wednesday 10:00 in Berlin
BATCH = 250_000
WEBHOOK_SAMPLE = 50_000


def _log(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def populate(ws, n: int) -> int:
    """An account and n opted-in contacts, as Arrow inserts. Returns the account id."""
    acc = ws.accounts.add("+49 30 901820", "Buchladen Linde", phone_number_id="106540352242922")
    ids = np.arange(1, n + 1, dtype=np.int64)
    digits = np.char.add("4917", np.char.zfill(ids.astype(str), 9))
    first = np.array(["Anna", "Ben", "Clara", "Deniz", "Emil", "Frieda", "Gül", "Hans"])
    created = pa.array(np.full(n, np.datetime64("2025-01-01T00:00:00", "us")),
                       pa.timestamp("us", tz="UTC"))
    contacts = pa.table({
        "contact_id": ids, "account_id": pa.array(np.full(n, acc["account_id"], np.int32)),
        "phone_e164": np.char.add("+", digits), "wa_id": digits,
        "name": np.char.add(np.char.add(first[ids % len(first)], " "), (ids % 997).astype(str)),
        "created_at": created,
    })
    events = pa.table({
        "event_id": ids, "contact_id": ids,
        "account_id": pa.array(np.full(n, acc["account_id"], np.int32)),
        "purpose": pa.array(["marketing"] * n), "action": pa.array(["opt_in"] * n),
        "source": pa.array(["double_opt_in_form"] * n), "evidence": pa.nulls(n, pa.string()),
        "recorded_at": created,
    })
    with ws.transaction() as con:
        con.register("_contacts", contacts)
        con.execute("INSERT INTO contacts (contact_id, account_id, phone_e164, wa_id, name, "
                    "created_at) SELECT * FROM _contacts")
        con.register("_events", events)
        con.execute("INSERT INTO consent_events SELECT * FROM _events")
    return acc["account_id"]


@contextlib.contextmanager
def timers(transport) -> dict:
    """Time the sender's steps by wrapping them for the duration (benchmark only)."""
    spent: dict = defaultdict(float)
    targets = [(outbox, "_pick"), (pacing, "pace"), (record, "record"),
               (messages, "outbound"), (consent, "may_send"),
               (chats, "store_messages"), (transport, "send_frame"),
               (outbox, "ingest_receipts")]
    saved = [(obj, name, getattr(obj, name)) for obj, name in targets]

    def wrap(name, func):
        def timed(*args, **kwargs):
            start = time.perf_counter()
            try:
                return func(*args, **kwargs)
            finally:
                spent[name] += time.perf_counter() - start
        return timed

    for obj, name, func in saved:
        setattr(obj, name, wrap(name, func))
    try:
        yield spent
    finally:
        for obj, name, func in saved:
            setattr(obj, name, func)


def reference(path: Path, folder: Path) -> float:
    """Arrow inserts of the run's rows into unindexed tables (best of 3)."""
    src = duckdb.connect(str(path), read_only=True)
    try:
        tables = {t: src.sql(f"SELECT * FROM {t}").to_arrow_table()
                  for t in ("broadcast_recipients", "messages", "message_events", "message_status")}
    finally:
        src.close()
    best = float("inf")
    for i in range(3):
        con = duckdb.connect(str(folder / f"ref{i}.duckdb"))
        try:
            start = time.perf_counter()
            for name, table in tables.items():
                con.register("_t", table)
                con.execute(f"CREATE TABLE {name} AS SELECT * FROM _t")
                con.unregister("_t")
            best = min(best, time.perf_counter() - start)
        finally:
            con.close()
    return best


def webhook_vs_bulk(folder: Path, n: int) -> dict:
    """Receipts of n accepted messages through the webhook path and the bulk path."""
    out = {}
    for mode in ("webhook", "bulk"):
        ws = bizchat.open(folder / f"receipts_{mode}.duckdb")
        acc = ws.accounts.add("+49 30 901820", "Buchladen", phone_number_id="106540352242922")
        transport = SimulatedTransport(3, ingest=mode)
        transport.attach(ws, account=acc, rate=80)
        keys = np.char.add("k", np.arange(n).astype(str))
        frame = pd.DataFrame({
            "idempotency_key": keys, "phone_number_id": "106540352242922",
            "to": np.char.add("4917", np.char.zfill(np.arange(n).astype(str), 9)),
            "kind": "template", "template_name": "t", "category": "marketing", "variant": "A",
            "labels": [()] * n, "attempt": 1, "broadcast_id": 1,
            "send_at": pd.Timestamp(SEND_AT) + pd.to_timedelta(np.arange(n) * 12_500, unit="us"),
        })
        transport.send_frame(frame)
        start = time.perf_counter()
        with ws.transaction() as con:
            receipts = outbox.ingest_receipts(con, transport)
        out[mode] = (time.perf_counter() - start, receipts)
    return out


def run(quick: bool) -> list[dict]:
    n = 100_000 if quick else 1_000_000
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        path = folder / "broadcast.duckdb"
        ws = bizchat.open(path)
        start = time.perf_counter()
        account_id = populate(ws, n)
        setup_s = time.perf_counter() - start
        _log(f"set-up: {n:,} contacts + opt-ins in {setup_s:.1f} s")

        stages = {}
        service = Broadcasts(ws)
        start = time.perf_counter()
        created = service.create(account_id, "Frühjahrsaktion", body="Hallo {first_name}, "
                                 "unsere Frühjahrs-Neuheiten sind da!", category="marketing",
                                 variants=["Hallo {first_name}, 10 % auf alle Neuheiten!"],
                                 control=0.1, seed=7)
        stages["create"] = time.perf_counter() - start
        bid = created["broadcast_id"]
        start = time.perf_counter()
        frozen = service.schedule(bid, SEND_AT)
        stages["freeze"] = time.perf_counter() - start
        _log(f"freeze: {frozen['queued']:,} queued in {stages['freeze']:.1f} s")

        transport = SimulatedTransport(7, ingest="bulk")
        start = time.perf_counter()
        with timers(transport) as spent:
            result = outbox.send(ws, bid, transport=transport, batch_size=BATCH)
        stages["send"] = time.perf_counter() - start
        _log(f"send: {result} in {stages['send']:.1f} s")

        check = ws.sql("""
            SELECT (SELECT count(*) FROM broadcast_recipients WHERE broadcast_id = ? AND state = 'sent') AS sent,
                   (SELECT count(*) FROM messages WHERE broadcast_id = ?) AS messages,
                   (SELECT count(*) FROM message_events) AS receipts,
                   (SELECT count(*) FROM message_status) AS statuses,
                   (SELECT max(sent_at) - min(sent_at) FROM broadcast_recipients
                    WHERE broadcast_id = ?) AS span""", [bid, bid, bid]).iloc[0]
        if not (check.sent == result["sent"] == check.messages == check.statuses
                and result["queued"] == result["sending"] == result["unknown"] == 0):
            raise RuntimeError(f"the run is incomplete: {dict(check)} / {result}")
        ref_s = reference(path, folder)
        sample = webhook_vs_bulk(folder, min(WEBHOOK_SAMPLE, n))

    total = sum(stages.values())
    rows_written = int(check.sent * 2 + frozen["recipients"] + check.receipts + check.statuses)
    inside = ", ".join(f"{k} {v:.1f}" for k, v in sorted(spent.items(), key=lambda kv: -kv[1]))
    hook_s, hook_n = sample["webhook"]
    bulk_s, bulk_n = sample["bulk"]
    rows = [
        {"benchmark": f"broadcast {n:,} recipients: create+freeze+send", "ours_s": round(total, 3),
         "reference_s": round(ref_s, 3), "ratio": round(ref_s / total, 3),
         "note": f"target < 60 s. {frozen['queued']:,} queued ({frozen['skipped'].get('control', 0):,} "
                 f"control), {result['sent']:,} sent, {result['failed']:,} failed, "
                 f"{int(check.receipts):,} receipts; simulated span {check.span}. Reference: "
                 f"Arrow inserts of the {rows_written:,} rows produced into unindexed tables "
                 f"(best of 3). Set-up (contacts + opt-ins, Arrow) {setup_s:.1f} s, not counted."},
        {"benchmark": "  stage create", "ours_s": round(stages["create"], 3), "reference_s": None,
         "ratio": None, "note": "broadcast + template (Broadcasts.create)"},
        {"benchmark": "  stage freeze", "ours_s": round(stages["freeze"], 3), "reference_s": None,
         "ratio": None, "note": "Broadcasts.schedule: audience, consent, cap, quiet hours, split, render"},
        {"benchmark": "  stage send+receipts", "ours_s": round(stages["send"], 3),
         "reference_s": None, "ratio": None,
         "note": f"outbox.send, {result['batches']} batches of {BATCH:,}; inside, s: {inside}; "
                 "the rest is the state writes, connections and commits."},
        {"benchmark": f"  receipts of {WEBHOOK_SAMPLE:,} msgs: webhook path",
         "ours_s": round(hook_s, 3), "reference_s": round(bulk_s, 3),
         "ratio": round(bulk_s / hook_s, 3),
         "note": f"reference = bulk path (record_status_events). Webhook {hook_n / hook_s:,.0f} "
                 f"receipts/s vs bulk {bulk_n / bulk_s:,.0f}/s: for {n:,} messages the webhook "
                 f"path would take about {hook_s * n / WEBHOOK_SAMPLE:,.0f} s, so the million "
                 "uses ingest='bulk' (same rows, no JSON round trip)."},
    ]
    return rows


if __name__ == "__main__":
    for row in run(quick="--quick" in sys.argv):
        print(row)
